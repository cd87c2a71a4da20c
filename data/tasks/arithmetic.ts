// `arithmetic`: multi-digit addition and subtraction, "12+345=" → "357".
//
// Difficulty knobs: `digits` (most digits per operand) and `minDigits` (fewest); an operand first
// draws its digit count uniformly in [minDigits, digits], then a value with exactly that many digits
// (0 counts as one digit), so short operands are not swamped by long ones. Subtraction keeps the
// result non-negative (operands swapped) unless `allowNegative`. Prompts are at most 2·digits + 2 bytes
// (8 for the default 3 digits), answers at most digits + 1 (or + 2 with a minus sign). Scored with
// numeric_match; the split key is the prompt.

import { z } from 'zod';
import type { Rng } from '../../engine/rng.ts';
import { testFractionField } from './config.ts';
import { numericTask } from './numeric.ts';
import { intIn, pick, type Problem } from './split.ts';
import type { TaskFactory } from './types.ts';

const NAME = 'arithmetic';

const configSchema = z
  .strictObject({
    /** Most digits per operand, 1..9. */
    digits: z.int().min(1).max(9).default(3),
    /** Fewest digits per operand, 1..digits. */
    minDigits: z.int().min(1).max(9).default(1),
    /** Operations to draw from, uniformly. */
    ops: z.array(z.enum(['+', '-'])).min(1).default(['+', '-']),
    /** Let a − b go below zero (otherwise the larger operand comes first). */
    allowNegative: z.boolean().default(false),
    testFraction: testFractionField,
  })
  .refine((c) => c.minDigits <= c.digits, { message: 'minDigits must be <= digits', path: ['minDigits'] });

export type ArithmeticConfig = z.output<typeof configSchema>;

function operand(rng: Rng, c: ArithmeticConfig): number {
  const d = intIn(rng, c.minDigits, c.digits);
  return intIn(rng, d === 1 ? 0 : 10 ** (d - 1), 10 ** d - 1);
}

function drawProblem(rng: Rng, c: ArithmeticConfig): Problem {
  const op = pick(rng, c.ops);
  let a = operand(rng, c);
  let b = operand(rng, c);
  if (op === '-' && !c.allowNegative && a < b) [a, b] = [b, a];
  const value = op === '+' ? a + b : a - b;
  return { prompt: `${a}${op}${b}=`, answer: String(value), tag: op === '+' ? 'add' : 'sub', meta: { a, b, op } };
}

const create = numericTask(NAME, configSchema, drawProblem);

export const arithmetic: TaskFactory = {
  description: 'multi-digit addition/subtraction, "12+345=" -> "357" (knobs: digits, minDigits, ops)',
  create,
};
