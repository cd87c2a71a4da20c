// The run config: defaults, every cross-field rule, error messages (path + allowed values), overrides,
// deep freezing, the docs table, and the shipped example configs.

import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import {
  applyOverrides,
  blendSpec,
  ConfigError,
  configDoc,
  docRows,
  loadRunConfig,
  parseRunConfig,
  policyLossOptions,
  RULES,
  RunConfigSchema,
} from './config.ts';

const minimal = () => ({ student: 'models/s', teachers: [{ kind: 'local', path: 'models/t' }], data: { task: 'arithmetic' } });

/** `minimal()` deep-merged with `patch` (objects merge; lists, values and the `data` union replace). */
function withPatch(patch: Record<string, unknown>, base: Record<string, unknown> = minimal()): Record<string, unknown> {
  const out: Record<string, unknown> = structuredClone(base);
  for (const [k, v] of Object.entries(patch)) {
    const cur = out[k];
    const both = k !== 'data' && [cur, v].every((x) => typeof x === 'object' && x !== null && !Array.isArray(x));
    out[k] = both ? withPatch(v as Record<string, unknown>, cur as Record<string, unknown>) : v;
  }
  return out;
}

/** The problems parseRunConfig reports for `input`, as "path: message" lines (without the source). */
function problems(input: unknown): string[] {
  try {
    parseRunConfig(input, 'cfg.json');
  } catch (e) {
    assert.ok(e instanceof ConfigError, `expected ConfigError, got ${e}`);
    for (const line of e.message.split('\n')) assert.ok(line.startsWith('cfg.json: '), line);
    return e.problems.map((p) => `${p.path}: ${p.message}`);
  }
  assert.fail('expected the config to be refused');
}

function assertProblem(input: unknown, expected: string | RegExp): void {
  const got = problems(input);
  const hit = got.some((p) => (typeof expected === 'string' ? p === expected : expected.test(p)));
  assert.ok(hit, `no problem matching ${expected} in:\n${got.join('\n')}`);
}

// ---- defaults --------------------------------------------------------------------------------------

test('a minimal config gets every default, the task reward and the only teacher as default route', () => {
  const c = parseRunConfig(minimal(), 'min.json');
  assert.deepEqual(c.run, { outDir: 'runs', seed: 0, steps: 100, evalEvery: 25, evalPrompts: 200, accuracyThreshold: 1, checkpointEvery: 50, keepCheckpoints: 3, maxConsecutiveSkips: 3 });
  assert.deepEqual(c.teachers, [{ id: 'teacher', kind: 'local', path: 'models/t', temperature: 1 }]);
  assert.deepEqual(c.routing, { byTag: {}, defaultTeacher: 'teacher' });
  assert.deepEqual(c.data, { task: 'arithmetic', taskConfig: {}, testSize: 500, onTooLong: 'reject', maxRejectFraction: 0.01, chatTemplate: 'auto', chatTemplateKwargs: {} });
  assert.deepEqual(c.rewards, [{ type: 'numeric_match', weight: 1 }]);
  assert.deepEqual(c.rollout, { groupSize: 8, promptsPerStep: 8, maxNewTokens: 256, temperature: 1, topK: 0, topP: 1, maskTruncated: false, rewardTimeoutMs: 30000, slicePrompts: 8 });
  assert.deepEqual(c.algo, {
    advantage: { mode: 'mean', eps: 1e-6, baseline: 0 },
    blend: { mode: 'additive', rewardWeight: 1, distillEstimator: 'k2', divergence: 'sampled', topK: 20, jsdBeta: 0.5 },
    lambdaSchedule: { kind: 'constant', lambda: 1, final: 0, warmupSteps: 0 },
    gamma: 0,
    objective: 'opd',
  });
  assert.deepEqual(c.loss, { type: 'ppo', clipLow: 0.2, clipHigh: 0.2, aggregation: 'token_mean' });
  assert.deepEqual(c.train, {
    epochs: 1,
    minibatches: 1,
    optimizer: { lr: 1e-5, warmupSteps: 0, schedule: 'constant', weightDecay: 0, beta1: 0.9, beta2: 0.999, eps: 1e-8, maxGradNorm: 1 },
    step: 'auto',
  });
  assert.deepEqual(c.runtime, { device: 'cpu', oneStepStale: false });
});

test('file data with defaults, http teachers with defaults, the builtin student', () => {
  const c = parseRunConfig(
    {
      student: { builtin: 'tiny' },
      teachers: [{ id: 'big', kind: 'http', url: 'http://gpu-01:8000', servedModel: 'Qwen/Qwen3-8B' }],
      data: { path: 'prompts.jsonl' },
      rewards: [{ type: 'exact_match', caseSensitive: false }],
    },
    'f.json',
  );
  assert.deepEqual(c.student, { builtin: 'tiny' });
  assert.deepEqual(c.teachers[0], { id: 'big', kind: 'http', url: 'http://gpu-01:8000', servedModel: 'Qwen/Qwen3-8B', temperature: 1, flavor: 'auto', concurrency: 8, timeoutMs: 60000, retries: 4 });
  assert.deepEqual(c.data, { path: 'prompts.jsonl', fields: { prompt: 'prompt', answer: 'answer', tag: 'tag', id: 'id', messages: 'messages' }, requireAnswer: true, onTooLong: 'reject', maxRejectFraction: 0.01, chatTemplate: 'auto', chatTemplateKwargs: {} });
  assert.deepEqual(c.rewards, [{ type: 'exact_match', weight: 1, caseSensitive: false }]);
});

test('grpo runs without teachers', () => {
  const c = parseRunConfig({ student: 's', data: { task: 'word_problems' }, algo: { blend: { mode: 'grpo' } } }, 'g.json');
  assert.deepEqual(c.teachers, []);
  assert.equal(c.routing.defaultTeacher, undefined);
});

// ---- the result is frozen, and parses never share objects -------------------------------------------

test('the parsed config is deeply frozen and independent of its input and of other parses', () => {
  const input = withPatch({ rollout: { groupSize: 4 } });
  const c = parseRunConfig(input, 'x.json');
  const c2 = parseRunConfig(input, 'x.json');
  const check = (v: unknown, at: string): void => {
    if (typeof v !== 'object' || v === null) return;
    assert.ok(Object.isFrozen(v), `${at} is not frozen`);
    for (const [k, x] of Object.entries(v)) check(x, `${at}.${k}`);
  };
  check(c, 'config');
  assert.throws(() => ((c.algo.blend as { mode: string }).mode = 'grpo'), TypeError);
  assert.throws(() => (c.teachers as unknown[]).push({}), TypeError);
  assert.ok(!Object.isFrozen(input.rollout), 'the input must not be frozen');
  assert.notEqual(c.routing.byTag, c2.routing.byTag);
  assert.notEqual(c.data, c2.data);
});

// ---- field errors: path, what was wrong, allowed values -------------------------------------------

test('enum errors list every option', () => {
  assertProblem(withPatch({ algo: { blend: { mode: 'additiv' } } }), 'algo.blend.mode: "additiv" is not one of additive | replace | grpo | loss | masked');
  assertProblem(withPatch({ algo: { advantage: { mode: 'std' } } }), 'algo.advantage.mode: "std" is not one of mean | std_group | std_batch | baseline | zero');
  assertProblem(withPatch({ loss: { aggregation: 'mean' } }), 'loss.aggregation: "mean" is not one of token_mean | seq_mean_token_mean | seq_mean_token_sum_norm');
  assertProblem(withPatch({ runtime: { device: 'gpu' } }), 'runtime.device: "gpu" is not one of cpu | cuda | webgpu');
  assertProblem(withPatch({ data: { task: 'arithmatic' } }), 'data.task: "arithmatic" is not one of arithmetic | long_multiplication | word_problems');
  assertProblem(withPatch({ teachers: [{ kind: 'htp', path: 'x' }] }), 'teachers[0].kind: "htp" is not one of local | http');
  assertProblem(withPatch({ rewards: [{ type: 'numeric' }] }), /^rewards\[0\]\.type: "numeric" is not one of exact_match \| length_penalty \| module \| numeric_match \| regex_match$/);
});

test('number errors give the range; type errors say what was there', () => {
  assertProblem(withPatch({ rollout: { groupSize: 0 } }), 'rollout.groupSize: 0 is not an integer ≥ 1');
  assertProblem(withPatch({ rollout: { groupSize: 2.5 } }), 'rollout.groupSize: 2.5 is not an integer ≥ 1');
  assertProblem(withPatch({ rollout: { topP: 1.5 } }), 'rollout.topP: 1.5 is not a number in (0, 1]');
  assertProblem(withPatch({ loss: { clipLow: 1 } }), 'loss.clipLow: 1 is not a number in (0, 1)');
  assertProblem(withPatch({ loss: { clipLow: 0 } }), 'loss.clipLow: 0 is not a number in (0, 1)');
  assertProblem(withPatch({ algo: { gamma: 2 } }), 'algo.gamma: 2 is not a number in [0, 1]');
  assertProblem(withPatch({ run: { steps: '10' } }), 'run.steps: "10" is not an integer ≥ 1');
  assertProblem(withPatch({ rollout: { maskTruncated: 'yes' } }), 'rollout.maskTruncated: "yes" is not true or false');
  assertProblem(withPatch({ teachers: [{ kind: 'http', url: 'ftp://x', servedModel: 'm' }] }), /^teachers\[0\]\.url: "ftp:\/\/x" is not a string matching/);
  assertProblem(withPatch({ teachers: [{ kind: 'http', url: 'http://h:1' }] }), 'teachers[0].servedModel: missing: expected a non-empty string');
  assertProblem({ data: { task: 'arithmetic' } }, /^student: missing: expected a non-empty string or an object \{path, ...\} or an object \{builtin, ...\}$/);
  assertProblem(withPatch({ student: 5 }), 'student: 5 is not a non-empty string or an object {path, ...} or an object {builtin, ...}');
});

test('unknown keys are errors naming the key and the closest known one', () => {
  assertProblem(withPatch({ rollout: { groupSiz: 4 } }), /^rollout\.groupSiz: unknown key \(did you mean "groupSize"\?\); keys of rollout: groupSize, promptsPerStep, /);
  assertProblem(withPatch({ algo: { blend: { rewardWieght: 2 } } }), /^algo\.blend\.rewardWieght: unknown key \(did you mean "rewardWeight"\?\)/);
  assertProblem(withPatch({ studnet: 's' }), /^studnet: unknown key \(did you mean "student"\?\); keys of the config: run, student, /);
  assertProblem(withPatch({ data: { task: 'arithmetic', testSise: 4 } }), /^data\.testSise: unknown key \(did you mean "testSize"\?\); keys of data: task, taskConfig, /);
  assertProblem(withPatch({ teachers: [{ kind: 'http', url: 'http://h', servedModel: 'm', timeout: 5 }] }), /^teachers\[0\]\.timeout: unknown key \(did you mean "timeoutMs"\?\)/);
});

test('a data section is either a task or a prompt file, and says so', () => {
  const base = minimal();
  assertProblem({ ...base, data: { tsak: 'arithmetic' } }, /^data: needs one of the keys task \| path: /);
  assertProblem({ ...base, data: { tsak: 'arithmetic' } }, /^data\.tsak: unknown key \(did you mean "task"\?\)/);
  assertProblem({ ...base, data: { task: 'arithmetic', path: 'x.jsonl' } }, /^data: mixes the keys of 2 forms \(task \/ path\); use one: /);
  assertProblem({ ...base, data: { path: 'x.jsonl', fields: { promt: 'q' } } }, /^data\.fields\.promt: unknown key \(did you mean "prompt"\?\); keys of data\.fields: prompt, answer, tag, id, messages$/);
  assertProblem({ ...base, data: { path: 'x.jsonl', format: 'csv' } }, 'data.format: "csv" is not one of jsonl | parquet | arrow');
});

test('every problem is reported at once, one line each, prefixed with the source', () => {
  const got = problems(withPatch({ rollout: { groupSize: 0, topP: 2 }, loss: { type: 'dpo' } }));
  assert.equal(got.length, 3);
});

// ---- cross-field rules --------------------------------------------------------------------------------

const RULE_CASES: { rule: string; patch: Record<string, unknown>; problem: RegExp }[] = [
  { rule: 'groupSize 1', patch: { rollout: { groupSize: 1 } }, problem: /^rollout\.groupSize: 1 rollout per prompt needs a mean-free advantage mode: algo\.advantage\.mode "mean" .* baseline \| zero$/ },
  { rule: 'blend modes get', patch: { algo: { blend: { mode: 'loss' } } }, problem: /^algo\.blend\.distillCoef: blend mode "loss" needs algo\.blend\.distillCoef > 0 .*got nothing$/ },
  { rule: 'blend modes get', patch: { algo: { blend: { mode: 'loss', distillCoef: 0 } } }, problem: /^algo\.blend\.distillCoef: .*got 0$/ },
  { rule: 'blend modes get', patch: { algo: { blend: { mode: 'masked' } } }, problem: /^algo\.blend\.rewardThreshold: blend mode "masked" needs algo\.blend\.rewardThreshold/ },
  { rule: 'blend modes get', patch: { algo: { blend: { mode: 'loss', distillCoef: 0.1, distillEstimator: 'k1' } } }, problem: /^algo\.blend\.distillEstimator: k1 as a loss has zero expected gradient/ },
  { rule: 'a top-k divergence only', patch: { algo: { blend: { divergence: 'topk_fkl' } } }, problem: /^algo\.blend\.divergence: divergence "topk_fkl" is a distillation loss: it needs algo\.blend\.mode loss/ },
  { rule: 'a full-vocabulary divergence needs', patch: { algo: { blend: { mode: 'loss', distillCoef: 1, divergence: 'full_fkl' } }, teachers: [{ kind: 'http', url: 'http://h:8000', servedModel: 'm' }] }, problem: /^teachers\[0\]\.kind: divergence "full_fkl" recomputes the teacher's full distribution.*HTTP server/ },
  { rule: 'a teacher exists', patch: { teachers: [] }, problem: /^teachers: blend mode "additive" scores rollouts with a teacher, but teachers is empty; .*grpo/ },
  { rule: 'a teacher exists', patch: { teachers: [{ kind: 'local', path: 'a' }, { kind: 'local', path: 'b' }] }, problem: /^teachers\[1\]\.id: "teacher" is already the id of another teacher/ },
  { rule: 'routing names', patch: { routing: { byTag: { add: 'tutor' } } }, problem: /^routing\.byTag\.add: "tutor" is not a defined teacher; teacher ids: teacher$/ },
  { rule: 'routing names', patch: { routing: { defaultTeacher: 'tutor' } }, problem: /^routing\.defaultTeacher: "tutor" is not a defined teacher/ },
  {
    rule: 'routing names',
    patch: { teachers: [{ id: 'a', kind: 'local', path: 'a' }, { id: 'b', kind: 'local', path: 'b' }] },
    problem: /^routing\.defaultTeacher: 2 teachers are defined but none is routed to/,
  },
  { rule: 'reference-KL', patch: { loss: { refKl: { beta: 0.1, estimator: 'k1' } } }, problem: /^loss\.refKl\.estimator: k1 as a loss has zero expected gradient/ },
  { rule: 'Dr. GRPO', patch: { loss: { maxCompletionLen: 16 } }, problem: /^loss\.maxCompletionLen: 16 is shorter than rollout\.maxNewTokens = 256/ },
  { rule: 'λ warm-up', patch: { algo: { lambdaSchedule: { warmupSteps: 101 } } }, problem: /^algo\.lambdaSchedule\.warmupSteps: 101 warm-up steps is more than run\.steps = 100; use 0\.\.100$/ },
  { rule: 'minibatches', patch: { train: { minibatches: 3 } }, problem: /^train\.minibatches: 3 does not divide the 64 rollouts of a step \(promptsPerStep 8 × groupSize 8\)/ },
  { rule: 'minibatches', patch: { train: { minibatches: 4, microBatchSize: 17 } }, problem: /^train\.microBatchSize: 17 is more than the 16 rollouts of a minibatch; use 1\.\.16$/ },
  { rule: 'greedy', patch: { teachers: [], algo: { blend: { mode: 'grpo' } }, rollout: { temperature: 0 } }, problem: /^rollout\.temperature: 0 \(greedy\) makes the 8 rollouts of a group identical/ },
  { rule: 'task data', patch: { data: { task: 'arithmetic', taskConfig: { digits: 12 } } }, problem: /^data\.taskConfig: task arithmetic: invalid config/ },
  { rule: 'task data', patch: { data: { task: 'arithmetic', testSize: 50 } }, problem: /^run\.evalPrompts: 200 is more than data\.testSize = 50 test prompts/ },
  { rule: 'task data', patch: { data: { task: 'arithmetic', trainSize: 4 } }, problem: /^data\.trainSize: 4 train prompts cannot fill a step of rollout\.promptsPerStep = 8$/ },
  { rule: 'held-out file', patch: { data: { path: 'p.jsonl', test: './p.jsonl' }, rewards: [{ type: 'numeric_match' }] }, problem: /^data\.test: "\.\/p\.jsonl" is the train file data\.path: held-out prompts must never be trained on/ },
  { rule: 'rewards', patch: { data: { path: 'p.jsonl' } }, problem: /^rewards: a prompt file has no task to take a reward from/ },
  { rule: 'rewards', patch: { rewards: [{ type: 'numeric_match', tolerence: 1 }] }, problem: /^rewards\[0\]: reward numeric_match: invalid config; .*tolerence/ },
];

for (const c of RULE_CASES) {
  test(`rule "${c.rule}": ${c.problem.source.slice(1, 40)}`, () => {
    assertProblem(withPatch(c.patch), c.problem);
  });
}

test('every cross-field rule has a case above', () => {
  for (const rule of RULES) assert.ok(RULE_CASES.some((c) => rule.about.includes(c.rule)), `no test case for rule "${rule.about}"`);
});

test('the rules accept what they should', () => {
  const ok = (patch: Record<string, unknown>) => parseRunConfig(withPatch(patch), 'ok.json');
  ok({ rollout: { groupSize: 1 }, algo: { advantage: { mode: 'baseline' } } });
  ok({ rollout: { groupSize: 1 }, algo: { advantage: { mode: 'zero' } } });
  ok({ algo: { blend: { mode: 'loss', distillCoef: 0.5, distillEstimator: 'k3' } } });
  ok({ algo: { blend: { mode: 'masked', rewardThreshold: 0.5 } } });
  ok({ algo: { blend: { mode: 'grpo' } } }); // teachers may stay defined for a grpo ablation
  ok({ loss: { maxCompletionLen: 256, aggregation: 'seq_mean_token_sum_norm', refKl: { beta: 0.05 } } });
  ok({ train: { minibatches: 4, microBatchSize: 16, epochs: 2 } });
  ok({ algo: { lambdaSchedule: { kind: 'linear', lambda: 2, final: 0.5, warmupSteps: 100 } } });
  const multi = {
    ...minimal(),
    teachers: [{ id: 'math', kind: 'local', path: 'a' }, { id: 'text', kind: 'http', url: 'http://h:8000', servedModel: 'm' }],
    routing: { byTag: { add: 'math', sub: 'text' } },
  };
  assert.equal(parseRunConfig(multi, 'multi.json').routing.defaultTeacher, undefined);
});

// ---- overrides ----------------------------------------------------------------------------------------

test('overrides set nested fields, parse JSON values, index lists, and leave the input alone', () => {
  const raw = minimal();
  const out = applyOverrides(raw, [
    'rollout.groupSize=4',
    'algo.blend.mode=replace',
    'teachers[0].temperature=0.5',
    'teachers.0.id=big',
    'data.taskConfig={"digits":2}',
    'rewards.0={"type":"numeric_match"}',
    'rewards[0].tolerance=0.5',
    'run.name=001',
    'rollout.maskTruncated=true',
  ]);
  assert.deepEqual(raw, minimal());
  const c = parseRunConfig(out, 'x.json');
  assert.equal(c.rollout.groupSize, 4);
  assert.equal(c.algo.blend.mode, 'replace');
  assert.equal(c.teachers[0]!.temperature, 0.5);
  assert.equal(c.teachers[0]!.id, 'big');
  assert.deepEqual(c.routing.defaultTeacher, 'big');
  assert.deepEqual(c.data, { task: 'arithmetic', taskConfig: { digits: 2 }, testSize: 500, onTooLong: 'reject', maxRejectFraction: 0.01, chatTemplate: 'auto', chatTemplateKwargs: {} });
  assert.deepEqual(c.rewards, [{ type: 'numeric_match', weight: 1, tolerance: 0.5 }]);
  assert.equal(c.run.name, '001');
  assert.equal(c.rollout.maskTruncated, true);
});

test('an override of null removes the field so its default applies again', () => {
  const out = applyOverrides(withPatch({ rollout: { groupSize: 4 } }), ['rollout.groupSize=null', 'teachers=null', 'algo.blend.mode=grpo']);
  const c = parseRunConfig(out, 'x.json');
  assert.equal(c.rollout.groupSize, 8);
  assert.deepEqual(c.teachers, []);
});

test('overrides of paths the schema does not have are refused with the closest key', () => {
  const refused = (o: string, message: RegExp) => {
    assert.throws(() => applyOverrides(minimal(), [o]), (e: unknown) => e instanceof ConfigError && message.test(e.message), `--set ${o}`);
  };
  refused('rollout.groupSiz=8', /^--set rollout\.groupSiz=8: rollout\.groupSiz: unknown key \(did you mean "groupSize"\?\); keys of rollout: /);
  refused('algo.blnd.mode=grpo', /algo\.blnd: unknown key \(did you mean "blend"\?\)/);
  refused('foo=1', /foo: unknown key; keys of the config: run, student/);
  refused('run.steps.x=1', /run\.steps: holds an integer ≥ 1, which has no field "x"/);
  refused('teachers.2.path=x', /teachers\[2\]: index 2 is past the end: teachers has 1 entries \(use 1 to append\)/);
  refused('rollout.groupSize', /expected PATH=VALUE/);
  refused('=3', /expected PATH=VALUE/);
  refused('rollout..groupSize=3', /expected PATH=VALUE/);
});

test('loadRunConfig reads a file and applies overrides; a bad value from an override is reported against that override', () => {
  const c = loadRunConfig('examples/arithmetic.json', ['rollout.groupSize=4', 'algo.blend.mode=grpo']);
  assert.equal(c.rollout.groupSize, 4);
  assert.equal(c.algo.blend.mode, 'grpo');
  assert.throws(() => loadRunConfig('examples/arithmetic.json', ['algo.blend.mode=additiv']), {
    name: 'ConfigError',
    message: '--set algo.blend.mode=additiv: algo.blend.mode: "additiv" is not one of additive | replace | grpo | loss | masked',
  });
  assert.throws(() => loadRunConfig('examples/missing.json'), { name: 'ConfigError', message: /^examples\/missing\.json: no such config file \(resolved to \/.*examples\/missing\.json\)$/ });
});

// ---- the examples, the docs, and the views -----------------------------------------------------------

for (const file of ['examples/arithmetic.json', 'examples/long-multiplication.json', 'examples/word_problems.json']) {
  test(`${file} parses, sets every section, and needs no filled-in defaults`, () => {
    const raw = JSON.parse(readFileSync(file, 'utf8')) as Record<string, unknown>;
    const c = loadRunConfig(file);
    assert.deepEqual(Object.keys(raw).sort(), Object.keys(RunConfigSchema.shape).sort());
    assert.match(c.run.notes!, /your own Hugging Face model directories/, 'the notes say where the model paths come from');
    const student = { 'examples/arithmetic.json': /^runs\/models\/arithmetic-student$/, 'examples/long-multiplication.json': /^runs\/models\/long-multiplication-student$/ }[file] ?? /^models\//;
    assert.match(c.student as string, student);
    assert.deepEqual(c.rewards, raw.rewards);
  });
}

test('configDoc documents every field once, each with a doc and its default', () => {
  const rows = docRows(RunConfigSchema);
  assert.equal(new Set(rows.map((r) => r.path)).size, rows.length);
  for (const r of rows) assert.ok(r.doc.trim().length > 0, `${r.path} has no doc`);
  const row = (p: string) => rows.find((r) => r.path === p);
  assert.deepEqual(row('rollout.groupSize'), { path: 'rollout.groupSize', type: 'integer ≥ 1', default: '`8`', doc: row('rollout.groupSize')!.doc });
  assert.equal(row('algo.blend.mode')!.type, 'additive | replace | grpo | loss | masked');
  assert.match(row('teachers[].url')!.doc, /^\(kind http\) /);
  assert.match(row('data.path')!.doc, /^\(with path\) /);
  assert.equal(row('student')!.default, '**required**');
  for (const p of ['run.maxConsecutiveSkips', 'routing.byTag', 'loss.refKl.beta', 'train.optimizer.maxGradNorm', 'runtime.oneStepStale', 'data.fields.prompt'])
    assert.ok(row(p), `missing row ${p}`);
  const md = configDoc();
  assert.match(md, /\n### `rollout`\n\nSampling the student: G rollouts per prompt\n\n\| field \| type \| default \| unit \| meaning \|\n\| --- \| --- \| --- \| --- \| --- \|\n/);
  assert.match(md, /\| `algo\.blend\.mode` \| additive \\\| replace \\\| grpo \\\| loss \\\| masked \| `"additive"` \|  \| /);
  assert.match(md, /\| `rollout\.maxNewTokens` \| integer ≥ 1 \| `256` \| tokens \| /);
});

test('blendSpec and policyLossOptions carry only what the mode uses', () => {
  const parse = (patch: Record<string, unknown>) => parseRunConfig(withPatch(patch), 'x.json');
  assert.deepEqual(blendSpec(parse({})), { mode: 'additive', rewardWeight: 1 });
  assert.deepEqual(blendSpec(parse({ algo: { blend: { mode: 'masked', rewardThreshold: 1, rewardWeight: 0.5 } } })), { mode: 'masked', rewardWeight: 0.5, rewardThreshold: 1 });
  assert.deepEqual(blendSpec(parse({ algo: { blend: { mode: 'replace', rewardWeight: 3 } } })), { mode: 'replace' });
  const loss = parse({ algo: { blend: { mode: 'loss', distillCoef: 0.3 } }, loss: { refKl: { beta: 0.01 } } });
  assert.deepEqual(blendSpec(loss), { mode: 'loss', distillCoef: 0.3 });
  assert.deepEqual(policyLossOptions(loss), { type: 'ppo', clipLow: 0.2, clipHigh: 0.2, refKl: { beta: 0.01, estimator: 'k3' }, distill: { coef: 0.3, estimator: 'k2' } });
  assert.deepEqual(policyLossOptions(parse({})), { type: 'ppo', clipLow: 0.2, clipHigh: 0.2 });
});
