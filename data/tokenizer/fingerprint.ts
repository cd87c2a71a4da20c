// Canonical vocabulary fingerprint shared by every Tokenizer implementation.
//
// The hash covers what token-level teacher scores depend on: which string each id means, and which
// tokens are special. It deliberately ignores file formatting, key order, normalizers, merges, chat
// templates and eos/bos/pad roles (a base and an instruct model that only differ in eos still share ids).

import { createHash } from "node:crypto";

/** sha256 hex over (token, id) pairs sorted by id, then special (token, id) pairs sorted by id. */
export function vocabFingerprint(vocab: Map<string, number>, specialTokens: Map<string, number>): string {
  const hash = createHash("sha256");
  hash.update("vocab\n");
  for (const [token, id] of sortedById(vocab)) hash.update(JSON.stringify([id, token]) + "\n");
  hash.update("special\n");
  for (const [token, id] of sortedById(specialTokens)) hash.update(JSON.stringify([id, token]) + "\n");
  return hash.digest("hex");
}

// Ties (two strings on one id) are broken by the string so the order never depends on insertion order.
function sortedById(map: Map<string, number>): [string, number][] {
  return [...map].sort((a, b) => a[1] - b[1] || (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
}
