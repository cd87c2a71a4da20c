// `opd sft --lora-rank`: LoRA SFT writes the merged model to --out and the PEFT adapter to
// --out/adapter; tensors without adapters are byte-identical to the base, adapted ones equal
// W + (α/r)·B·A recomputed here from the adapter file, and the loss falls. Flag errors are named.

import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { readSafetensors } from '../../engine/io/safetensors.ts';
import { initModelDir, tinyConfig } from '../../student/model/init.ts';
import { opd } from './opd-bin.ts';


test('opd sft --lora-rank: merged model + PEFT adapter, untouched non-target tensors, falling loss', { timeout: 120_000 }, async () => {
  const root = mkdtempSync(join(tmpdir(), 'opd-sft-lora-'));
  const model = join(root, 'm');
  await initModelDir(model, tinyConfig({ hidden_size: 32, intermediate_size: 64 }), 3);
  const lines = Array.from({ length: 40 }, (_, i) => JSON.stringify({ prompt: `${i % 7}+${i % 5}=`, completion: String((i % 7) + (i % 5)) }));
  writeFileSync(join(root, 'd.jsonl'), lines.join('\n') + '\n');
  const out = join(root, 'out');
  const r = await opd('sft', '--model', model, '--data', join(root, 'd.jsonl'), '--out', out, '--steps', '30', '--lr', '0.02', '--batch-size', '8', '--lora-rank', '4', '--lora-alpha', '8', '--lora-targets', 'q_proj,v_proj', '--threads', '1');
  assert.equal(r.code, 0, r.stderr);
  const losses = [...r.stderr.matchAll(/step \d+\/30 loss ([\d.]+)/g)].map((m) => Number(m[1]));
  assert.ok(losses.length >= 2 && losses.at(-1)! < losses[0]!, `loss falls: ${losses.join(' -> ')}`);
  const base = readSafetensors(join(model, 'model.safetensors')).tensors;
  const merged = readSafetensors(join(out, 'model.safetensors')).tensors;
  const ad = readSafetensors(join(out, 'adapter', 'adapter_model.safetensors')).tensors;
  assert.equal(ad.size, 2 * 2 * 2, 'q and v adapters (A and B) in each of 2 layers');
  for (const [name, t] of base) {
    const m = name.match(/^(model\.layers\.\d+\.self_attn\.[qv]_proj)\.weight$/);
    const got = merged.get(name)!.data as Float32Array;
    if (!m) {
      assert.deepEqual(got, t.data, `${name} untouched`);
      continue;
    }
    const A = ad.get(`base_model.model.${m[1]}.lora_A.weight`)!.data as Float32Array;
    const B = ad.get(`base_model.model.${m[1]}.lora_B.weight`)!.data as Float32Array;
    const [rows, cols] = t.shape as [number, number];
    let diff = 0;
    for (let o = 0; o < rows; o++)
      for (let i = 0; i < cols; i++) {
        let d = 0;
        for (let k = 0; k < 4; k++) d += B[o * 4 + k]! * A[k * cols + i]!;
        const want = (t.data as Float32Array)[o * cols + i]! + 2 * d;
        assert.ok(Math.abs(got[o * cols + i]! - want) <= 1e-6, `${name}[${o},${i}]`);
        diff = Math.max(diff, Math.abs(2 * d));
      }
    assert.ok(diff > 0, `${name} moved`);
  }
  const bad = await opd('sft', '--model', model, '--data', join(root, 'd.jsonl'), '--out', join(root, 'x'), '--lora-rank', '2', '--lora-targets', 'q_proj,qkv');
  assert.equal(bad.code, 2);
  assert.match(bad.stderr, /--lora-targets: unknown projection "qkv"; choose from q_proj, k_proj/);
});
