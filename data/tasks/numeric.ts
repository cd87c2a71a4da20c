// The shape every built-in task shares: records drawn from a seeded generator, split by a hash of
// the problem, the answer a number scored by numeric_match, the config parsed once and frozen.

import type { z } from 'zod';
import type { Rng } from '../../engine/rng.ts';
import { demonstrationOf } from './answer.ts';
import { parseConfig } from './config.ts';
import { generateSplit, type Problem } from './split.ts';
import type { Task } from './types.ts';

/** A task factory from a config schema and a problem generator. */
export function numericTask<C extends { testFraction: number }>(
  name: string,
  schema: z.ZodType<C>,
  draw: (rng: Rng, c: C) => Problem,
): (config?: unknown) => Task {
  return (config) => {
    const c = parseConfig(`task ${name}`, schema, config);
    const spec = { taskName: name, testFraction: c.testFraction, draw: (rng: Rng) => draw(rng, c) };
    return Object.freeze({
      name,
      config: c,
      reward: Object.freeze([{ type: 'numeric_match', weight: 1 }]),
      generate: (split, n, seed) => generateSplit(spec, split, n, seed),
      demonstration: demonstrationOf,
    } satisfies Task);
  };
}
