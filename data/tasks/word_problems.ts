// `word_problems`: short templated story problems with a whole-number answer,
// e.g. "Tom has 3 figs, gets 5. Total?" → "8".
//
// Each operation has two templates; a problem draws an operation, a template, a name, an item and
// operands. Prompts are kept terse for a byte-level model: at most 40 bytes with the defaults (34 in
// practice; the test checks 40). Operands: add a, b ∈ [1, maxValue]; sub a ∈ [1, maxValue], b ∈ [1, a] (never
// negative); mul a, b ∈ [2, maxFactor]; div divisor b ∈ [2, maxFactor], quotient ∈ [1, maxFactor],
// a = quotient·b (always exact). Difficulty knobs: `ops`, `maxValue`, `maxFactor`.
// The split key is (operation, operands), not the prompt: a test problem's numbers never appear in
// train dressed with another name, item or template, so the test measures arithmetic, not recall.

import { z } from 'zod';
import type { Rng } from '../../engine/rng.ts';
import { testFractionField } from './config.ts';
import { numericTask } from './numeric.ts';
import { intIn, pick, type Problem } from './split.ts';
import type { TaskFactory } from './types.ts';

const NAME = 'word_problems';
const NAMES = ['Tom', 'Ann', 'Sam', 'Eve', 'Max', 'Kim', 'Liz', 'Ben'] as const;
const ITEMS = ['fig', 'egg', 'pen', 'cup', 'hat', 'key', 'toy', 'bun'] as const;

type Op = 'add' | 'sub' | 'mul' | 'div';
type Template = (name: string, item: string, a: number, b: number) => string;

/** "1 fig", "3 figs". */
const count = (n: number, item: string) => `${n} ${item}${n === 1 ? '' : 's'}`;

const TEMPLATES: Record<Op, readonly Template[]> = {
  add: [(n, it, a, b) => `${n} has ${count(a, it)}, gets ${b}. Total?`, (_n, it, a, b) => `${count(a, it)} and ${b} more. Total?`],
  sub: [(n, it, a, b) => `${n} had ${count(a, it)}, lost ${b}. Left?`, (n, it, a, b) => `${n} has ${count(a, it)}, gives ${b}. Left?`],
  mul: [(_n, it, a, b) => `${a} bags of ${count(b, it)}. Total?`, (n, it, a, b) => `${n} buys ${a} packs of ${count(b, it)}. Total?`],
  div: [(_n, it, a, b) => `${count(a, it)} for ${b} kids. Each?`, (n, it, a, b) => `${n} puts ${count(a, it)} in ${b} bags. Each?`],
};

const configSchema = z.strictObject({
  /** Operations to draw from, uniformly. */
  ops: z.array(z.enum(['add', 'sub', 'mul', 'div'])).min(1).default(['add', 'sub', 'mul', 'div']),
  /** Largest operand of add/sub (≥ 2). */
  maxValue: z.int().min(2).max(1_000_000).default(20),
  /** Largest factor of mul, largest divisor and quotient of div (≥ 2). */
  maxFactor: z.int().min(2).max(1000).default(9),
  testFraction: testFractionField,
});

export type WordProblemsConfig = z.output<typeof configSchema>;

/** Operands (a, b) and the answer for `op`. */
function operands(rng: Rng, op: Op, c: WordProblemsConfig): [number, number, number] {
  switch (op) {
    case 'add': {
      const a = intIn(rng, 1, c.maxValue), b = intIn(rng, 1, c.maxValue);
      return [a, b, a + b];
    }
    case 'sub': {
      const a = intIn(rng, 1, c.maxValue), b = intIn(rng, 1, a);
      return [a, b, a - b];
    }
    case 'mul': {
      const a = intIn(rng, 2, c.maxFactor), b = intIn(rng, 2, c.maxFactor);
      return [a, b, a * b];
    }
    case 'div': {
      const b = intIn(rng, 2, c.maxFactor), q = intIn(rng, 1, c.maxFactor);
      return [q * b, b, q];
    }
  }
}

function drawProblem(rng: Rng, c: WordProblemsConfig): Problem {
  const op = pick(rng, c.ops);
  const template = rng.int(TEMPLATES[op].length);
  const name = pick(rng, NAMES), item = pick(rng, ITEMS);
  const [a, b, answer] = operands(rng, op, c);
  return {
    prompt: TEMPLATES[op][template]!(name, item, a, b),
    answer: String(answer),
    splitKey: `${op}:${a}:${b}`,
    tag: op,
    meta: { op, a, b, template, name, item },
  };
}

const create = numericTask(NAME, configSchema, drawProblem);

export const wordProblems: TaskFactory = {
  description: 'templated story problems, "Tom has 3 figs, gets 5. Total?" -> "8" (knobs: ops, maxValue, maxFactor)',
  create,
};
