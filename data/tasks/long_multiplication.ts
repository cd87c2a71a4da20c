// `long_multiplication`: a multi-digit number times one digit, written out step by step; only the whole
// written-out answer is rewarded. "47*8=" → "7*8=56,40*8=320,56+320=376".
//
// The long-answer, sparse-reward task: answers run 20-50 bytes (26 for 2 digits, 50 for 3), and the
// reward is exact_match over the whole trace, so a rollout that gets every partial product right and
// slips in the last sum earns the same 0 as noise. That is where a dense per-token teacher signal
// should matter most, and what the demo's 2-digit addition (3-byte answers) cannot show.
//
// Format, exactly: one partial product per digit of the multiplicand, ones digit first, each
// "<digit·10^i>*<m>=<product>" (a zero digit still gets its term, "0*7=0"), then running sums of the
// partial products left to right, "<sum so far>+<next>=<sum>", all joined by ",", no spaces. With one
// digit there is nothing to add: "7*8=56". Difficulty knobs: `digits`/`minDigits` of the multiplicand
// (2..4 digits, drawn like arithmetic's operands: count first, then value) and `maxMultiplier`
// (the multiplier is drawn from 2..maxMultiplier). The default problem space is 90 × 8 = 720 problems,
// so the default test fraction is 0.2 (about 144 held-out problems). The split key is the prompt.

import { z } from 'zod';
import type { Rng } from '../../engine/rng.ts';
import { demonstrationOf } from './answer.ts';
import { parseConfig } from './config.ts';
import { generateSplit, intIn, type Problem } from './split.ts';
import type { Task, TaskFactory } from './types.ts';

const NAME = 'long_multiplication';

const configSchema = z
  .strictObject({
    /** Most digits of the multiplicand, 1..4. */
    digits: z.int().min(1).max(4).default(2),
    /** Fewest digits of the multiplicand, 1..digits. */
    minDigits: z.int().min(1).max(4).default(2),
    /** Largest multiplier, 2..9 (the multiplier is one digit ≥ 2). */
    maxMultiplier: z.int().min(2).max(9).default(9),
    testFraction: z.number().gt(0).lt(1).default(0.2),
  })
  .refine((c) => c.minDigits <= c.digits, { message: 'minDigits must be <= digits', path: ['minDigits'] });

export type LongMultiplicationConfig = z.output<typeof configSchema>;

/** The written-out product of `a` (a non-negative integer) and the digit `m`, in the task's format. */
export function writtenProduct(a: number, m: number): string {
  const digits = String(a).split('').reverse().map(Number);
  const partials = digits.map((d, i) => d * 10 ** i * m);
  const steps = digits.map((d, i) => `${d * 10 ** i}*${m}=${partials[i]}`);
  let sum = partials[0]!;
  for (const p of partials.slice(1)) {
    steps.push(`${sum}+${p}=${sum + p}`);
    sum += p;
  }
  return steps.join(',');
}

function drawProblem(rng: Rng, c: LongMultiplicationConfig): Problem {
  const d = intIn(rng, c.minDigits, c.digits);
  const a = intIn(rng, d === 1 ? 0 : 10 ** (d - 1), 10 ** d - 1);
  const m = intIn(rng, 2, c.maxMultiplier);
  return { prompt: `${a}*${m}=`, answer: writtenProduct(a, m), tag: `${d}digit`, meta: { a, m, product: a * m } };
}

function create(config?: unknown): Task {
  const c = parseConfig(`task ${NAME}`, configSchema, config);
  const spec = { taskName: NAME, testFraction: c.testFraction, draw: (rng: Rng) => drawProblem(rng, c) };
  return Object.freeze({
    name: NAME,
    config: c,
    // the whole trace or nothing: exact_match on the answer part (up to the first newline or special token)
    reward: Object.freeze([{ type: 'exact_match', weight: 1 }]),
    generate: (split, n, seed) => generateSplit(spec, split, n, seed),
    demonstration: demonstrationOf,
  } satisfies Task);
}

export const longMultiplication: TaskFactory = {
  description: 'a number times a digit written out, "47*8=" -> "7*8=56,40*8=320,56+320=376"; exact whole-answer reward (knobs: digits, minDigits, maxMultiplier)',
  create,
};
