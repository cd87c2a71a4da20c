// The project's own byte-level BPE (data/tokenizer/bpe.ts): merges learned on a hand-checked corpus;
// the saved directory loads through loadTokenizer (@huggingface/tokenizers) as an ordinary HF
// tokenizer that applies those merges, round-trips any text, has <|im_end|> as EOS and end of turn
// and renders ChatML; and it aligns with the byte tokenizer (teacher/align.ts) on random text.

import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { Rng } from '../../engine/rng.ts';
import { alignTokens, pieceScheme, teacherTokens, tokenBytesOf } from '../../teacher/align.ts';
import { endOfTurn } from '../chat.ts';
import { createTask } from '../tasks/registry.ts';
import { ByteTokenizer } from './byte.ts';
import { learnByteBpe, saveByteBpeTokenizer } from './bpe.ts';
import { loadTokenizer } from './hf.ts';

test('learnByteBpe: merges worked by hand on "aaab aaab"', () => {
  // words "aaab" and "Ġaaab": (a,a) occurs 4×, then (a,b) and (aa,a) tie at 2 — "a\0b" sorts first — then (aa,ab) 2×;
  // after that only (Ġ,aaab) is left, once: no more merges
  assert.deepEqual(learnByteBpe(['aaab aaab'], 10), [['a', 'a'], ['a', 'b'], ['aa', 'ab']]);
  assert.deepEqual(learnByteBpe(['aaab aaab'], 1), [['a', 'a']]);
});

test('a saved BPE loads as an HF tokenizer that applies the merges, round-trips text, EOS = end of turn = <|im_end|>, ChatML', async () => {
  const task = createTask('arithmetic', { digits: 2, ops: ['+'] });
  const texts = task.generate('train', 200, 0).map((r) => `${r.prompt}${task.demonstration(r)}`);
  const merges = learnByteBpe(texts, 60);
  assert.equal(merges.length, 60);
  const dir = join(mkdtempSync(join(tmpdir(), 'opd-bpe-')), 'tok');
  const saved = await saveByteBpeTokenizer(dir, merges);
  const tok = await loadTokenizer(dir);
  assert.equal(tok.vocabSize, saved.vocabSize);
  assert.equal(tok.vocabSize, 256 + 60 + 3);
  assert.deepEqual(tok.eosTokenIds, [saved.eosTokenId]);
  assert.equal(tok.idToToken(saved.eosTokenId), '<|im_end|>');
  assert.equal(tok.bosTokenId, null);
  assert.equal(endOfTurn(tok)?.id, saved.eosTokenId);
  const sample = texts[0]!;
  const ids = tok.encode(sample);
  assert.ok(ids.length < new TextEncoder().encode(sample).length * 0.8, `${ids.length} tokens for ${sample.length} characters: the merges apply`);
  assert.equal(tok.decode(ids), sample);
  for (const t of ['café 😀 你好', '  spaces\n\nand\ttabs', '']) assert.equal(tok.decode(tok.encode(t)), t);
  assert.equal(tok.applyChatTemplate([{ role: 'user', content: 'hi' }], { addGenerationPrompt: true }), '<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n');
  assert.equal(pieceScheme(tok), 'byte-level');

  // aligned with the byte tokenizer on random text: the spans partition the bytes
  const bt = new ByteTokenizer();
  const bb = tokenBytesOf(bt);
  const pb = tokenBytesOf(tok);
  const rng = new Rng(3);
  let merged = 0;
  for (let k = 0; k < 50; k++) {
    const text = texts[rng.nextU32() % texts.length]! + ' é😀'.slice(0, rng.nextU32() % 4);
    const t = teacherTokens(tok, pb, text);
    const spans = alignTokens(bt.encode(text, { addSpecialTokens: false }).map((i) => bb(i)!), t.bytes);
    assert.equal(spans.at(-1)!.bytes[1], new TextEncoder().encode(text).length);
    merged += spans.filter((s) => s.a[1] - s.a[0] > 1).length;
  }
  assert.ok(merged > 50, `${merged} spans of several byte tokens`);
});
