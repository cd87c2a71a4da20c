// Public surface of data/sources: load a prompt file, hold out a test split, and walk a data set in a resumable order.

export { loadPrompts, PromptSourceError } from './load.ts';
export { formatOf, FORMATS } from './readers.ts';
export { DEFAULT_FIELDS } from './record.ts';
export { shuffledOrder, takeNext, type EpochCursor } from './order.ts';
export { holdOut, type HeldOutSplit } from './split.ts';
export type { FieldMap, LoadResult, Reject, SourceFormat, SourceOptions } from './types.ts';
