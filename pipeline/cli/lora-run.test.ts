// `opd run` with a LoRA student (student: {path, lora}) end to end on tiny models: the run ends
// with a PEFT adapter and a merged model (the merged weights equal W + (α/r)·B·A recomputed here
// from the adapter file), the base model directory is left byte-identical, and a run killed with
// SIGKILL mid-run and started again ends on the uninterrupted run's adapter bytes.

import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { readSafetensors } from '../../engine/io/safetensors.ts';
import { tinyModels, tinyRunConfig } from '../recipes/tiny-job.ts';
import { OPD_BIN as bin, opd } from './opd-bin.ts';

const sha = (f: string) => createHash('sha256').update(readFileSync(f)).digest('hex');

test('opd run with student.lora: PEFT adapter + merged model, base untouched, kill -9 resume ends on the same adapter bytes', { timeout: 240_000 }, async () => {
  const root = mkdtempSync(join(tmpdir(), 'opd-lora-run-'));
  const m = await tinyModels(join(root, 'models'));
  const lora = { rank: 2, alpha: 4, targets: ['q_proj', 'v_proj', 'up_proj', 'down_proj'] };
  const config = (name: string) => ({ ...tinyRunConfig(root, m, { run: { name, steps: 4, checkpointEvery: 2, evalPrompts: 4 } }), student: { path: m.student, lora } });
  const baseFile = join(m.student, 'model.safetensors');
  const baseSha = sha(baseFile);
  writeFileSync(join(root, 'a.json'), JSON.stringify(config('a')));
  const a = await opd('run', join(root, 'a.json'));
  assert.equal(a.code, 0, a.stderr);
  const dir = join(root, 'runs', 'a');
  for (const f of ['lora/adapter/adapter_config.json', 'lora/adapter/adapter_model.safetensors', 'lora/merged/model.safetensors', 'lora/merged/config.json', 'checkpoints/step-000004/adapter/adapter_model.safetensors'])
    assert.ok(existsSync(join(dir, f)), `${f} exists`);
  assert.ok(!existsSync(join(dir, 'checkpoints/step-000004/model')), 'a LoRA checkpoint holds the adapter, not a model copy');
  assert.equal(sha(baseFile), baseSha, 'the base model directory is unchanged');

  // merged = W + (α/r)·B·A, recomputed from the PEFT file
  const ad = readSafetensors(join(dir, 'lora/adapter/adapter_model.safetensors')).tensors;
  const merged = readSafetensors(join(dir, 'lora/merged/model.safetensors')).tensors;
  const base = readSafetensors(baseFile).tensors;
  let moved = 0;
  for (const [name, t] of base) {
    const A = ad.get(`base_model.model.${name.replace(/\.weight$/, '')}.lora_A.weight`);
    const got = merged.get(name)!.data as Float32Array;
    if (!A) {
      assert.deepEqual(got, t.data, `${name} is the base's`);
      continue;
    }
    const B = ad.get(`base_model.model.${name.replace(/\.weight$/, '')}.lora_B.weight`)!;
    const [out, inn] = t.shape as [number, number];
    for (let o = 0; o < out; o++)
      for (let i = 0; i < inn; i++) {
        let d = 0;
        for (let k = 0; k < 2; k++) d += (B.data as Float32Array)[o * 2 + k]! * (A.data as Float32Array)[k * inn + i]!;
        const want = (t.data as Float32Array)[o * inn + i]! + 2 * d;
        assert.ok(Math.abs(got[o * inn + i]! - want) <= 1e-6 * Math.max(1, Math.abs(want)), `${name}[${o},${i}]: ${got[o * inn + i]} vs ${want}`);
        if (d !== 0) moved++;
      }
  }
  assert.ok(moved > 0, 'training moved the adapters off B = 0');

  // the same run killed with SIGKILL after its third metrics line, then started again
  writeFileSync(join(root, 'b.json'), JSON.stringify(config('b')));
  const dirB = join(root, 'runs', 'b');
  const child: ChildProcess = spawn(process.execPath, [bin, 'run', join(root, 'b.json')], { stdio: 'ignore' });
  const killed = await new Promise<boolean | number | null>((resolve) => {
    const poll = setInterval(() => {
      const metrics = join(dirB, 'metrics.jsonl');
      if (existsSync(metrics) && readFileSync(metrics, 'utf8').trim().split('\n').length >= 3) {
        clearInterval(poll);
        child.kill('SIGKILL');
      }
    }, 20);
    child.on('exit', (code, signal) => {
      clearInterval(poll);
      resolve(signal === 'SIGKILL' || code);
    });
  });
  if (killed === true) {
    assert.ok(readdirSync(join(dirB, 'checkpoints')).some((d) => d.startsWith('step-')), 'a checkpoint was committed before the kill');
    const b = await opd('run', join(root, 'b.json'));
    assert.equal(b.code, 0, b.stderr);
    assert.match(b.stderr, /resuming from/);
  } else assert.equal(killed, 0, 'the run ended by itself before the kill (a poller slowed by a busy machine), but not cleanly'); // the bytes must still match
  assert.equal(sha(join(dirB, 'lora/adapter/adapter_model.safetensors')), sha(join(dir, 'lora/adapter/adapter_model.safetensors')), 'same adapter bytes as the uninterrupted run');
  assert.equal(sha(join(dirB, 'checkpoints/step-000004/optimizer.safetensors')), sha(join(dir, 'checkpoints/step-000004/optimizer.safetensors')), 'same AdamW moments');
});
