// R9: the preflight says how teacher scores reach the student's tokens. One tokenizer → exact path
// (padded vocabularies accepted when the shared part matches); another tokenizer that can be aligned
// → aligned path, with the tokenizer diff, both templates' rendering of a sample and the path in the
// report; what cannot be aligned is refused, saying why.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ByteTokenizer } from '../data/tokenizer/byte.ts';
import { loadQwen3 } from '../data/tokenizer/test_fixtures.ts';
import type { Tokenizer } from '../data/tokenizer/types.ts';
import { PreflightError, preflight } from './preflight.ts';

/** The byte tokenizer with one token's meaning changed: id 65 is no longer "A". */
function altered(base: Tokenizer): Tokenizer {
  const vocab = new Map(base.vocab());
  for (const [k, v] of vocab) if (v === 65) vocab.delete(k);
  vocab.set('<|changed|>', 65);
  return Object.assign(Object.create(Object.getPrototypeOf(base)), base, {
    vocab: () => vocab,
    idToToken: (id: number) => (id === 65 ? '<|changed|>' : base.idToToken(id)),
    fingerprint: () => 'altered',
  });
}

/** Qwen3 behind a lower-casing normalizer: its tokens no longer spell the text they were given. */
function lowercasing(q: Tokenizer): Tokenizer {
  return Object.assign(Object.create(Object.getPrototypeOf(q)), q, { encode: (text: string, o?: object) => q.encode(text.toLowerCase(), o), fingerprint: () => 'lower' });
}

test('same tokenizer, padded teacher rows: exact path, scoring limited to the shared rows', () => {
  const tok = new ByteTokenizer();
  const r = preflight({ tokenizer: tok, vocabRows: tok.vocabSize }, { tokenizer: tok, vocabRows: tok.vocabSize + 64 });
  assert.equal(r.path, 'exact');
  assert.equal(r.sharedVocab, tok.vocabSize);
  assert.match(r.notes[0]!, /padding/);
  assert.match(r.report.at(-1)!, /scoring path: exact/);
});

test('a different tokenizer that can be aligned: aligned path, the report names the first differing id and both EOS', () => {
  const tok = new ByteTokenizer();
  const r = preflight({ tokenizer: tok, vocabRows: tok.vocabSize }, { tokenizer: altered(tok), vocabRows: tok.vocabSize });
  assert.equal(r.path, 'aligned');
  assert.ok(r.report.some((l) => /id 65/.test(l)), r.report.join('\n'));
  assert.ok(r.report.some((l) => /^EOS ids: student \[258 "<\|eos\|>"\], teacher \[258/.test(l)), r.report.join('\n'));
  assert.match(r.report.at(-1)!, /scoring path: aligned \(the tokenizers differ\)/);
});

test('byte student, Qwen3 teacher: vocabulary overlap, special tokens, both templates rendered, aligned path with <|im_end|>', async () => {
  const q = await loadQwen3();
  const tok = new ByteTokenizer();
  const r = preflight({ tokenizer: tok, vocabRows: tok.vocabSize }, { tokenizer: q, vocabRows: 151936 }, { conversational: true });
  const text = r.report.join('\n');
  assert.equal(r.path, 'aligned');
  assert.match(text, /tokenizers differ: student 264 tokens, teacher 151669; \d+ token strings in both/);
  assert.match(text, /special tokens: student <\|pad\|>=256/);
  assert.match(text, /<\|im_end\|>=151645/);
  assert.match(text, /student's template: "<\|user\|>What is 64 plus 85\?<\|assistant\|>"/);
  assert.match(text, /teacher's template: "<\|im_start\|>user\\nWhat is 64 plus 85\?<\|im_end\|>\\n<\|im_start\|>assistant\\n/);
  assert.match(r.report.at(-1)!, /conversation rendered by its own template.*teacher id 151645 "<\|im_end\|>"/);
});

test('same tokenizer but conversational data rendered differently by the two templates: aligned path', () => {
  const a = new ByteTokenizer();
  const b = new ByteTokenizer({ chatTemplate: "{%- for m in messages -%}{{- 'Q: ' + m.content + '\\n' -}}{%- endfor -%}{%- if add_generation_prompt -%}{{- 'A: ' -}}{%- endif -%}" });
  assert.equal(preflight({ tokenizer: a, vocabRows: 264 }, { tokenizer: b, vocabRows: 264 }).path, 'exact'); // plain prompts: templates unused
  const r = preflight({ tokenizer: a, vocabRows: 264 }, { tokenizer: b, vocabRows: 264 }, { conversational: true });
  assert.equal(r.path, 'aligned');
  assert.match(r.report.at(-1)!, /the two chat templates render the sample differently/);
});

test('a tokenizer whose tokens do not spell the text back cannot be aligned: refused, saying why', async () => {
  const q = await loadQwen3();
  const tok = new ByteTokenizer();
  assert.throws(
    () => preflight({ tokenizer: tok, vocabRows: tok.vocabSize }, { tokenizer: lowercasing(q), vocabRows: 151936 }),
    (e: unknown) => e instanceof PreflightError && /cannot be aligned/.test(e.message) && /do not spell the text back/.test(e.message),
  );
});

test('a tokenizer whose pieces are neither byte-level nor SentencePiece is refused', () => {
  const tok = new ByteTokenizer();
  const words = ['<eos>', 'hello', 'world'];
  const odd = { ...tok, vocabSize: 3, eosTokenIds: [0], specialTokens: new Map([['<eos>', 0]]), vocab: () => new Map(words.map((w, i) => [w, i])), idToToken: (i: number) => words[i], fingerprint: () => 'words', encode: () => [1], applyChatTemplate: () => { throw new Error('none'); } } as unknown as Tokenizer;
  assert.throws(() => preflight({ tokenizer: tok, vocabRows: tok.vocabSize }, { tokenizer: odd, vocabRows: 3 }), /teacher's tokenizer: the tokenizer's pieces are neither byte-level BPE/);
});

test('a model with fewer output rows than its tokenizer has tokens is refused', () => {
  const tok = new ByteTokenizer();
  assert.throws(() => preflight({ tokenizer: tok, vocabRows: 200 }, { tokenizer: tok, vocabRows: tok.vocabSize }), /student's model has 200 output rows/);
});
