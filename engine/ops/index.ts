// Every op constructor, in one import. Importing this module registers all primitives.

export * from './core.ts';
export * from './elementwise.ts';
export * from './reduce.ts';
export * from './shape.ts';
export * from './indexing.ts';
export * from './nn.ts';
