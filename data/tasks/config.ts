// Config validation shared by tasks and rewards: a strict zod schema (unknown keys are errors, so a
// typo never silently falls back to a default), defaults filled in, the result frozen.

import { z } from 'zod';

/** Parse `value` (undefined means "all defaults") with `schema`; errors start with `where`. */
export function parseConfig<S extends z.ZodType>(where: string, schema: S, value: unknown): Readonly<z.output<S>> {
  const parsed = schema.safeParse(value ?? {});
  if (!parsed.success) throw new Error(`${where}: invalid config\n${z.prettifyError(parsed.error)}`);
  return Object.freeze(parsed.data);
}

/** The test-split share most tasks accept: a fraction of the problem space in (0, 1). */
export const testFractionField = z.number().gt(0).lt(1).default(0.1);

