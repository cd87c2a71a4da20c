// The task registry: name → factory. A new task is one new file and one line here; nothing that
// runs tasks branches on a task's name.

import { arithmetic } from './arithmetic.ts';
import { longMultiplication } from './long_multiplication.ts';
import type { Task, TaskFactory } from './types.ts';
import { wordProblems } from './word_problems.ts';

export type { Split, Task, TaskFactory, TaskRecord } from './types.ts';
export { ANSWER_END_MARKERS, extractAnswer } from './answer.ts';

export const TASKS: Readonly<Record<string, TaskFactory>> = Object.freeze({
  arithmetic,
  long_multiplication: longMultiplication,
  word_problems: wordProblems,
});

export function taskNames(): string[] {
  return Object.keys(TASKS).sort();
}

/** Build task `name` from `config` (validated; unknown keys and unknown names are errors). */
export function createTask(name: string, config?: unknown): Task {
  const factory = Object.hasOwn(TASKS, name) ? TASKS[name] : undefined;
  if (!factory) throw new Error(`unknown task "${name}"; known tasks: ${taskNames().join(', ')}`);
  return factory.create(config);
}
