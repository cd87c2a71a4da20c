// docs/reliability.md "atomic start-up" and "initial student": what a kill during start-up leaves
// behind (a half-built student-init/, a temp directory, an empty eval-before.json) never stops the
// next start, and the student a run started from is verified at every later start.

import assert from 'node:assert/strict';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { before, test } from 'node:test';
import { CorruptArtifactError } from '../data/store/shards.ts';
import { initModelDir, tinyConfig } from '../student/model/init.ts';
import { loadModelDir, saveModelDir } from '../student/model/weights.ts';
import { parseRunConfig } from './config.ts';
import { buildJob, prepareRunDir, runJob } from './job.ts';
import { tinyRunConfig } from './recipes/tiny-job.ts';
import { openRunDir } from './rundir.ts';
import { STUDENT_RECORD } from './startup.ts';

let root: string;
let models: { teacher: string; student: string };

before(async () => {
  root = mkdtempSync(join(tmpdir(), 'opd-startup-'));
  models = { teacher: join(root, 'models', 'teacher'), student: join(root, 'models', 'student') };
  await initModelDir(models.teacher, tinyConfig(), 1);
  await initModelDir(models.student, tinyConfig({ hidden_size: 32, intermediate_size: 64 }), 2);
});

const config = (name: string, student: unknown = { builtin: 'tiny' }) => {
  const raw = tinyRunConfig(root, models, { run: { name, steps: 1, checkpointEvery: 1, evalPrompts: 2 } });
  return parseRunConfig({ ...raw, student }, `startup test ${name}`);
};

const collect = () => {
  const warnings: string[] = [];
  return { warnings, log: { info: () => {}, warn: (m: string) => void warnings.push(m) } };
};

test('a start killed while creating student-init/ and writing eval-before.json: the next start rebuilds both and runs', { timeout: 120_000 }, async () => {
  const c = config('killed-start');
  const dir = await prepareRunDir(c);
  // what a kill -9 of the old start-up left: student-init/ with config.json only (tokenizer.json never written),
  // a half-built temp directory of the new one, and an empty eval-before.json (killed between create and write)
  const whole = join(root, 'whole-init');
  await initModelDir(whole, tinyConfig(), c.run.seed);
  mkdirSync(join(dir, 'student-init'));
  copyFileSync(join(whole, 'config.json'), join(dir, 'student-init', 'config.json'));
  const tmp = join(dir, `.student-init.tmp-999999-abcdef012345`);
  mkdirSync(tmp);
  copyFileSync(join(whole, 'config.json'), join(tmp, 'config.json'));
  writeFileSync(join(dir, 'eval-before.json'), '');
  mkdirSync(join(dir, 'lora-base'));
  const deadTemps = [join(dir, '.eval-before.json.tmp-999999-0123456789ab'), join(dir, 'lora-base', '.base.bin.tmp-999998-0123456789ab')];
  for (const f of deadTemps) writeFileSync(f, 'half');
  const liveTemp = join(dir, `.elapsed.json.tmp-${process.pid}-0123456789ab`); // a live writer's: kept
  writeFileSync(liveTemp, 'in progress');

  const { warnings, log } = collect();
  const { summary, stopped } = await runJob(c, await openRunDir(dir), { log });
  assert.equal(stopped, false);
  assert.equal(summary.steps, 1);
  assert.deepEqual(readdirSync(dir).filter((f) => f.startsWith('.student-init.tmp-')), [], 'the leftover temp directory is removed');
  for (const f of deadTemps) assert.ok(!existsSync(f), `${f} (its pid is gone) is removed`);
  assert.ok(existsSync(liveTemp), "a running process's temp file is kept");
  for (const f of ['config.json', 'model.safetensors', 'tokenizer.json', 'generation_config.json']) {
    assert.deepEqual(readFileSync(join(dir, 'student-init', f)), readFileSync(join(whole, f)), `student-init/${f} is the seed's file`);
  }
  const evalBefore = JSON.parse(readFileSync(join(dir, 'eval-before.json'), 'utf8')) as Record<string, number>;
  assert.equal(typeof evalBefore.student_before_accuracy, 'number', 'eval-before.json is evaluated again');
  assert.equal(summary.student_before_accuracy, evalBefore.student_before_accuracy);
  assert.ok(warnings.some((w) => w.includes(join(dir, 'student-init')) && /incomplete/.test(w)), `a warning names student-init/: ${warnings.join(' | ')}`);
  assert.ok(warnings.some((w) => w.includes(join(dir, 'eval-before.json')) && /damaged/.test(w)), `a warning names eval-before.json: ${warnings.join(' | ')}`);
});

test('student-init/ is created whole: built in a temp directory, renamed into place, nothing else left', async () => {
  const c = config('fresh-init');
  const dir = await prepareRunDir(c);
  const job = await buildJob(c, dir);
  await job.close();
  assert.equal(job.studentDir, join(dir, 'student-init'));
  assert.deepEqual(readdirSync(job.studentDir).sort(), ['config.json', 'generation_config.json', 'model.safetensors', 'tokenizer.json', 'tokenizer_config.json']);
  assert.deepEqual(readdirSync(dir).filter((f) => f.startsWith('.')), []);
});

test('the initial student is recorded at the first start and verified at every later one: a flipped byte names the file', async () => {
  for (const [name, student] of [['flip-builtin', { builtin: 'tiny' }], ['flip-dir', join(root, 'models', 'student-copy')]] as const) {
    if (typeof student === 'string') {
      mkdirSync(student, { recursive: true });
      for (const f of readdirSync(models.student)) copyFileSync(join(models.student, f), join(student, f));
    }
    const c = config(name, student);
    const dir = await prepareRunDir(c);
    await (await buildJob(c, dir)).close();
    const rec = JSON.parse(readFileSync(join(dir, STUDENT_RECORD), 'utf8')) as { files: Record<string, string> };
    assert.ok(rec.files['model.safetensors'] && rec.files['tokenizer.json'] && rec.files['config.json'], `${name}: weights, tokenizer and config are recorded`);
    await (await buildJob(c, dir)).close(); // unchanged: verified, starts

    const weights = join(typeof student === 'string' ? student : join(dir, 'student-init'), 'model.safetensors');
    const bytes = readFileSync(weights);
    const at = bytes.length - 5; // inside the last tensor's data: the file still parses
    bytes[at] = bytes[at]! ^ 0x01;
    writeFileSync(weights, bytes);
    await assert.rejects(buildJob(c, dir), (e: unknown) => {
      assert.ok(e instanceof CorruptArtifactError, String(e));
      assert.equal(e.file, weights);
      assert.match(e.message, /sha256 .* differs .*student\.sha256\.json/);
      return true;
    });
    bytes[at] = bytes[at]! ^ 0x01;
    writeFileSync(weights, bytes);
    await (await buildJob(c, dir)).close(); // restored: starts again
  }
  assert.ok(existsSync(join(root, 'runs', 'flip-dir', STUDENT_RECORD)));
});

test("a NaN in the held-out evaluation before training says it came from the teacher's evaluation, naming the teacher and the records", { timeout: 120_000 }, async () => {
  // a teacher whose final norm overflows the logits to ±Infinity: their sum is NaN, which the sampler refuses
  const broken = join(root, 'models', 'teacher-overflow');
  const m = await loadModelDir(models.teacher);
  m.weights.set('model.norm.weight', new Float32Array(m.weights.get('model.norm.weight')!.length).fill(3e38));
  await saveModelDir(broken, m, { tokenizerFrom: models.teacher });
  const raw = tinyRunConfig(root, { teacher: broken, student: models.student }, { run: { name: 'nan-teacher', steps: 1, evalPrompts: 2 } });
  const c = parseRunConfig(raw, 'nan-teacher');
  const dir = await prepareRunDir(c);
  await assert.rejects(runJob(c, await openRunDir(dir)), (e: Error) => {
    assert.match(e.message, new RegExp(`^teacher t \\(${broken}\\), held-out evaluation before training: evaluating (record "arithmetic:test:[^"]+"|the batch of 2 records "arithmetic:test:[^"]+" … "arithmetic:test:[^"]+"): .*NaN`));
    return true;
  });
  assert.ok(existsSync(join(dir, 'eval', 'before.jsonl')), "the student's evaluation before it ran");
});
