// AdamW as graph ops, with torch.optim.AdamW's exact semantics (amsgrad=False, maximize=False):
//
//   p ← p·(1 − lr·wd)                                  decoupled weight decay, on the old p
//   m ← β1·m + (1 − β1)·g          v ← β2·v + (1 − β2)·g²
//   p ← p − (lr / (1 − β1^t)) · m / (√v / √(1 − β2^t) + ε)      ε outside the square root
//
// plus torch.nn.utils.clip_grad_norm_'s global clipping (coef = min(1, max_norm / (‖g‖ + 1e-6))),
// folded into the scalar factors of the moment updates so it costs no extra pass over memory, and a
// guard: if the loss or any gradient is non-finite, every parameter and moment is passed through
// bit-for-bit and `skipped` is 1. (A gradient whose squared norm overflows float32 counts as
// non-finite too.) Hyper-parameters are baked in at build time; lr and t are run-time scalars, so a
// schedule needs no rebuild. The caller advances t only for steps that were not skipped.

import type { Tensor } from '../ir/graph.ts';
import { add, and, cast, div, isFinite, minimum, mul, pow, sqrt, sub, where } from '../ops/elementwise.ts';
import { reduceSumSquare } from '../ops/reduce.ts';
import { scalar } from '../ops/core.ts';

export interface AdamWConfig {
  /** β1, the first-moment decay (torch default 0.9). */
  beta1: number;
  /** β2, the second-moment decay (torch default 0.999). */
  beta2: number;
  /** ε added to the denominator outside the square root (torch default 1e-8). */
  eps: number;
  /** Global L2 gradient-norm bound; undefined or 0 turns clipping off. */
  maxGradNorm?: number;
}

export const ADAMW_DEFAULTS: AdamWConfig = { beta1: 0.9, beta2: 0.999, eps: 1e-8 };

export interface AdamWSlot {
  p: Tensor; // parameter, any shape
  g: Tensor; // its gradient, same shape
  m: Tensor; // first moment, same shape
  v: Tensor; // second moment, same shape
  /** Decoupled weight decay for this parameter (0 for norms and biases, typically). */
  weightDecay: number;
}

export interface AdamWResult {
  p: Tensor[];
  m: Tensor[];
  v: Tensor[];
  /** ‖g‖₂ over all parameters, before clipping. */
  gradNorm: Tensor;
  /** 1 when the update was skipped because something was non-finite, else 0 (float). */
  skipped: Tensor;
}

/** The per-step scalars of AdamW, shared by every slot (and by the chunked optimizer's graphs). */
export interface AdamWScalars {
  lr: Tensor;
  gScale1: Tensor; // (1-β1)·c
  gScale2: Tensor; // (1-β2)·c²
  stepSize: Tensor; // lr / (1 - β1^t)
  invSqrtBc2: Tensor; // 1 / √(1 - β2^t)
}

/** The scalars from ‖g‖₂ (`gradNorm`), lr and t; c is the clip coefficient. */
export function adamwScalars(gradNorm: Tensor, lr: Tensor, t: Tensor, cfg: AdamWConfig): AdamWScalars {
  const g = lr.graph;
  const dt = lr.dtype;
  // clip coefficient c; gradients are never scaled in place, c enters the moment factors.
  const c = cfg.maxGradNorm ? minimum(div(cfg.maxGradNorm, add(gradNorm, 1e-6)), 1) : scalar(g, 1, dt);
  const bc1 = sub(1, pow(scalar(g, cfg.beta1, dt), t));
  const bc2 = sub(1, pow(scalar(g, cfg.beta2, dt), t));
  return {
    lr,
    gScale1: mul(c, 1 - cfg.beta1),
    gScale2: mul(mul(c, c), 1 - cfg.beta2),
    stepSize: div(lr, bc1),
    invSqrtBc2: div(1, sqrt(bc2)),
  };
}

/** One slot's new p, m, v (no non-finite guard); `weightDecay` is a number or a rank-0 tensor. */
export function adamwSlot(s: Omit<AdamWSlot, 'weightDecay'> & { weightDecay: number | Tensor }, k: AdamWScalars, cfg: AdamWConfig): { p: Tensor; m: Tensor; v: Tensor } {
  const m = add(mul(s.m, cfg.beta1), mul(s.g, k.gScale1));
  const v = add(mul(s.v, cfg.beta2), mul(mul(s.g, s.g), k.gScale2));
  const denom = add(mul(sqrt(v), k.invSqrtBc2), cfg.eps);
  const decayed = s.weightDecay ? mul(s.p, sub(1, mul(k.lr, s.weightDecay))) : s.p;
  const p = sub(decayed, mul(div(m, denom), k.stepSize));
  return { p, m, v };
}

/** One AdamW update of every slot. `lr` and `t` (1-based step count) are rank-0 float tensors. */
export function adamw(slots: readonly AdamWSlot[], lr: Tensor, t: Tensor, loss: Tensor, cfg: AdamWConfig = ADAMW_DEFAULTS): AdamWResult {
  if (slots.length === 0) throw new Error('adamw: no parameters');
  const dt = lr.dtype;
  const sqNorms = slots.map((s) => reduceSumSquare(s.g, [...s.g.shape.keys()], false)); // [] each
  const normSq = sqNorms.reduce((a, b) => add(a, b));
  const gradNorm = sqrt(normSq);
  const ok = and(isFinite(normSq), isFinite(loss));
  const k = adamwScalars(gradNorm, lr, t, cfg);

  const out: AdamWResult = { p: [], m: [], v: [], gradNorm, skipped: sub(1, cast(ok, dt)) };
  for (const s of slots) {
    const u = adamwSlot(s, k, cfg);
    out.p.push(where(ok, u.p, s.p));
    out.m.push(where(ok, u.m, s.m));
    out.v.push(where(ok, u.v, s.v));
  }
  return out;
}
