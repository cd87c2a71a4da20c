// AdamW on host arrays, in JavaScript, for small parameter sets whose state should never cross into
// ONNX Runtime (LoRA adapters: on a GPU the optimizer then stays on the host and only the adapters
// travel, as in ZeRO-Offload). Same update, clipping and non-finite guard as adamw.ts:
//
//   c = min(1, maxGradNorm / (‖g‖ + 1e-6)) (or 1);  m ← β1·m + (1−β1)·c·g;  v ← β2·v + (1−β2)·c²·g²
//   p ← p·(1 − lr·wd) − lr/(1−β1^t) · m / (√v / √(1−β2^t) + ε)
//
// Each element is computed in float64 and stored in its array's precision, so results match the
// graph's float32 arithmetic to about one float32 rounding per operation (tested against it).

import { ADAMW_DEFAULTS, type AdamWConfig } from './adamw.ts';
import type { FlatSlot } from './chunked.ts';

/** ‖g‖² over every slot, in float64. */
export function hostGradNormSq(slots: readonly FlatSlot[]): number {
  let total = 0;
  for (const s of slots) for (let i = 0; i < s.g.length; i++) total += s.g[i]! * s.g[i]!;
  return total;
}

/** One AdamW update of every slot in place; skipped (nothing written) when ‖g‖² or the loss is not finite. */
export function hostAdamW(slots: readonly FlatSlot[], lr: number, t: number, lossFinite: boolean, cfg: Partial<AdamWConfig> = {}): { gradNorm: number; skipped: boolean } {
  const k = { ...ADAMW_DEFAULTS, ...cfg };
  const normSq = hostGradNormSq(slots);
  const gradNorm = Math.sqrt(normSq);
  if (!Number.isFinite(normSq) || !lossFinite) return { gradNorm, skipped: true };
  const c = k.maxGradNorm ? Math.min(1, k.maxGradNorm / (gradNorm + 1e-6)) : 1;
  const [g1, g2] = [(1 - k.beta1) * c, (1 - k.beta2) * c * c];
  const stepSize = lr / (1 - k.beta1 ** t);
  const invSqrtBc2 = 1 / Math.sqrt(1 - k.beta2 ** t);
  for (const s of slots) {
    const decay = 1 - lr * s.weightDecay;
    for (let i = 0; i < s.p.length; i++) {
      const g = s.g[i]!;
      const m = k.beta1 * s.m[i]! + g1 * g;
      const v = k.beta2 * s.v[i]! + g2 * g * g;
      s.m[i] = m;
      s.v[i] = v;
      s.p[i] = s.p[i]! * decay - (s.m[i]! / (Math.sqrt(s.v[i]!) * invSqrtBc2 + k.eps)) * stepSize;
    }
  }
  return { gradNorm, skipped: false };
}
