// Issue 12 check: an HTTP teacher with its own tokenizer scores a conversation equal to the local path
// on the same model.
// - Against the fake vLLM server (teacher/fake-servers.ts): its "model" is fakeLogprob(id, position);
//   the local path is an in-process teacher computing the same formula. The HTTP teacher is opened
//   from a config-style spec whose `tokenizer` is Qwen3's directory; the student is the byte tokenizer.
// - Against `opd teacher serve`'s server (teacher/server.ts, vLLM format) serving a real tiny model:
//   the local path is the LocalTeacher on the same directory; the student here speaks Qwen3, the
//   teacher the byte tokenizer of its directory (given as the spec's tokenizer).
// - An ONNX-file teacher (our own forward graph exported with the weights, opened with the model
//   directory as its tokenizer) against the LocalTeacher on that directory.
// Both sides go through the AlignedTeacher: the teacher's template renders the conversation and the
// student's completion is aligned back; the values must agree token for token.

import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { BYTE_EOS_ID, ByteTokenizer } from '../data/tokenizer/byte.ts';
import { loadTokenizer } from '../data/tokenizer/hf.ts';
import { loadQwen3, qwen3Dir } from '../data/tokenizer/test_fixtures.ts';
import type { Tokenizer } from '../data/tokenizer/types.ts';
import { Graph, emitOnnx, matmul, transpose } from '../engine/index.ts';
import { tensorShapes } from '../student/model/config.ts';
import { initModelDir, tinyConfig } from '../student/model/init.ts';
import { attentionBias, decoder, lmHead } from '../student/model/lm.ts';
import type { ModelDir } from '../student/model/weights.ts';
import { AlignedTeacher } from './aligned.ts';
import { fakeLogprob, startFakeServer } from './fake-servers.ts';
import { LocalTeacher } from './local.ts';
import { openTeacher } from './open.ts';
import { TeacherServer } from './server.ts';
import type { Teacher, TeacherRequest, TeacherScore } from './types.ts';

const messages = [
  { role: 'system', content: 'You add numbers.' },
  { role: 'user', content: 'What is 64 plus 85? Answer: é€' },
];

class FormulaTeacher implements Teacher {
  readonly identity = { modelId: 'formula', tokenizerFingerprint: 'x', vocabSize: 151669 };
  async score(reqs: readonly TeacherRequest[]): Promise<TeacherScore[]> {
    return reqs.map((r) => ({ logprobs: r.ids.slice(r.start).map((id, k) => fakeLogprob(id, r.start + k)) }));
  }
  async close() {}
}

function requests(student: Tokenizer, completions: string[], eos: number): TeacherRequest[] {
  return completions.map((text, i) => {
    const prompt = student.encode(messages.at(-1)!.content);
    const completion = [...student.encode(text, { addSpecialTokens: false }), ...(i % 2 === 0 ? [eos] : [])];
    const samplerLogprobs = completion.map((_, t) => Math.fround(-0.3 - 0.05 * ((t * 3 + i) % 5)));
    return { ids: [...prompt, ...completion], start: prompt.length, context: { prompt: messages.at(-1)!.content, messages, samplerLogprobs } };
  });
}

/** Token for token within `tol` (relative to the magnitude past 1). */
const close = (a: number[], b: number[], what: string, tol = 1e-6) => {
  assert.equal(a.length, b.length, what);
  a.forEach((x, t) => assert.ok(Math.abs(x - b[t]!) <= tol * Math.max(1, Math.abs(b[t]!)), `${what}, token ${t}: ${x} vs ${b[t]}`));
};

test('HTTP teacher with its own (Qwen3) tokenizer against the fake vLLM server = the local path on the same "model"', async () => {
  const q = await loadQwen3();
  const byte = new ByteTokenizer();
  const fake = await startFakeServer({ flavor: 'vllm', behaviour: { vocabSize: q.vocabSize } });
  try {
    const http = await openTeacher({ kind: 'http', id: 'remote', url: fake.url, servedModel: 'fake-teacher', tokenizer: qwen3Dir()! });
    assert.equal(http.tokenizer.fingerprint(), q.fingerprint(), "the spec's tokenizer is the teacher's");
    const remote = new AlignedTeacher(http.teacher, { student: byte, teacher: http.tokenizer, chat: { chatTemplate: 'auto' } });
    const local = new AlignedTeacher(new FormulaTeacher(), { student: byte, teacher: q, chat: { chatTemplate: 'auto' } });
    const reqs = requests(byte, ['64 + 85 = 149.', ' The answer is 149', '149 (cent quarante-neuf) 😀'], BYTE_EOS_ID);
    const [a, b] = [await remote.score(reqs), await local.score(reqs)];
    a.forEach((s, i) => close(s.logprobs, b[i]!.logprobs, `request ${i}`));
    // the server saw the teacher's rendering: Qwen3's template, its ids, <|im_end|> for the student's EOS
    const bodies = fake.stats.bodies.slice(-3) as { prompt: number[] }[];
    for (const body of bodies) assert.ok(q.decode(body.prompt).startsWith('<|im_start|>system\nYou add numbers.<|im_end|>\n<|im_start|>user\n'), q.decode(body.prompt));
    assert.equal(bodies.filter((body) => body.prompt.at(-1) === 151645).length, 2, 'the two completions that end with EOS end with <|im_end|> there');
    await remote.close();
  } finally {
    await fake.close();
  }
});

test('HTTP teacher (opd teacher serve, vLLM format) with its own tokenizer = the LocalTeacher on the same tiny model', { timeout: 120_000 }, async () => {
  const q = await loadQwen3();
  const dir = (await initModelDir(join(mkdtempSync(join(tmpdir(), 'opd-aligned-http-')), 'm'), tinyConfig({ max_position_embeddings: 256 }), 3)).dir;
  const tTok = await loadTokenizer(dir);
  const localTeacher = await LocalTeacher.open(dir, { threads: 1 });
  const server = await TeacherServer.start(localTeacher, { port: 0, modelName: 'tiny' });
  try {
    const http = await openTeacher({ kind: 'http', url: server.url, servedModel: 'tiny', tokenizer: dir });
    const remote = new AlignedTeacher(http.teacher, { student: q, teacher: http.tokenizer });
    const local = new AlignedTeacher(localTeacher, { student: q, teacher: tTok });
    const eos = q.specialTokens.get('<|im_end|>')!;
    const reqs = requests(q, ['64 + 85 = 149.', 'Hello world, café', '149 😀'], eos);
    const [a, b] = [await remote.score(reqs), await local.score(reqs)];
    a.forEach((s, i) => close(s.logprobs, b[i]!.logprobs, `request ${i}`));
    // and the values are not the sampler's: the teacher said something on every aligned span
    assert.ok(a[0]!.logprobs.some((v, t) => Math.abs(v - reqs[0]!.context!.samplerLogprobs[t]!) > 1e-3));
    await http.teacher.close();
  } finally {
    await server.close();
    await localTeacher.close();
  }
});

/** The model's full-logits forward graph as a standalone ONNX causal LM (as teacher/local.test.ts writes it, without past inputs). */
function writeOnnxLm(file: string, m: ModelDir): void {
  const g = new Graph('causal_lm');
  const ids = g.input('input_ids', ['B', 'T'], 'int64');
  const mask = g.input('attention_mask', ['B', 'T'], 'int64');
  const positions = g.input('position_ids', ['B', 'T'], 'int64');
  const p: Record<string, ReturnType<Graph['constant']>> = {};
  for (const [name, shape] of tensorShapes(m.config)) p[name] = g.constant(m.weights.get(name)!, shape, 'float32');
  const { hidden } = decoder(m.config, p, { ids, positions, bias: attentionBias(mask, 'T', 'T') });
  g.output('logits', matmul(hidden, transpose(lmHead(m.config, p), [1, 0])));
  writeFileSync(file, emitOnnx(g));
}

test('ONNX-file teacher with its own tokenizer = the LocalTeacher on the same model, through the aligned path', { timeout: 120_000 }, async () => {
  const q = await loadQwen3();
  const root = mkdtempSync(join(tmpdir(), 'opd-aligned-onnx-'));
  const model = await initModelDir(join(root, 'm'), tinyConfig({ max_position_embeddings: 256 }), 4);
  const file = join(root, 'lm.onnx');
  writeOnnxLm(file, model);
  const onnx = await openTeacher({ kind: 'local', path: file, tokenizer: model.dir });
  const dirTeacher = await LocalTeacher.open(model.dir, { threads: 1 });
  try {
    const eos = q.specialTokens.get('<|im_end|>')!;
    const reqs = requests(q, ['64 + 85 = 149.', 'naïve 😀'], eos);
    const a = await new AlignedTeacher(onnx.teacher, { student: q, teacher: onnx.tokenizer }).score(reqs);
    const b = await new AlignedTeacher(dirTeacher, { student: q, teacher: await loadTokenizer(model.dir) }).score(reqs);
    // another float32 computation order (ONNX Runtime's fused graph vs the scorer): agreement to float32 precision
    a.forEach((s, i) => close(s.logprobs, b[i]!.logprobs, `request ${i}`, 1e-5));
  } finally {
    await onnx.teacher.close();
    await dirTeacher.close();
  }
});
