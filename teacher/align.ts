// Byte-offset alignment of two token streams that spell the same text (docs/algorithms.md §10).
//
// A teacher with another tokenizer scores the student's completion as its own tokens; to bring those
// scores back onto the student's tokens both streams are laid on one byte axis and cut wherever a token
// boundary of one side coincides with a token boundary of the other. Between two cuts lies a span:
// student tokens s_i..s_{i'} and teacher tokens u_j..u_{j'} spelling exactly the same bytes, so the
// span's probability under each model is comparable (Σ log-probs over its tokens).
//
// Pieces:
// - tokenBytesOf(tok): the bytes a token id spells, from its vocabulary string: ByteTokenizer ids are
//   bytes; byte-level BPE (GPT-2 / Qwen / Llama-3, "Ġ" = space) maps each character back through the
//   GPT-2 byte table; SentencePiece ("▁" = space) spells "<0xNN>" byte-fallback tokens as that byte and
//   other pieces as UTF-8. Special tokens (EOS, chat markers) spell nothing (null). A tokenizer of
//   another kind is refused (AlignError), never guessed.
// - teacherTokensOfBytes(...): the teacher's tokens of the student's raw completion bytes: valid UTF-8
//   runs tokenized as text, every other byte (invalid, or a character cut off at the end) as the
//   teacher's own single-byte token (byte-level BPE, SentencePiece byte fallback and the byte tokenizer
//   all have one), so both streams spell exactly the student's bytes and nothing is lost. A character
//   the teacher's normalizer would change (Qwen's NFC maps U+2000 to U+2002) goes as byte tokens too.
// - studentTextBytes(tokenBytes): the fallback for a teacher without single-byte tokens: the student's
//   completion as text a teacher can tokenize. Valid UTF-8
//   is kept byte for byte; each byte that is not part of a valid UTF-8 character becomes U+FFFD (3
//   bytes, credited to the token that held the byte); an incomplete character at the very end (a
//   completion cut off mid-character) is dropped, and the student tokens holding it are the `tail`:
//   the teacher never sees those bytes, so they get no signal.
// - alignTokens(a, b): the spans of two byte-token lists whose concatenations are equal (else it
//   throws). Each token lands in exactly one span; a token that spells nothing (0 bytes) joins the span
//   that holds the next byte (the last span at the end). Spans partition [0, total) in order.
//
// Pure functions, no I/O.

import { BYTE_TO_UNICODE, ByteTokenizer } from '../data/tokenizer/byte.ts';
import type { Tokenizer } from '../data/tokenizer/types.ts';

/** A configuration that cannot be aligned, with the reason. */
export class AlignError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'AlignError';
  }
}

/** One aligned span: half-open token ranges on each side and the byte range both spell. */
export interface Span {
  a: [number, number];
  b: [number, number];
  bytes: [number, number];
}

export type TokenBytes = (id: number) => Uint8Array | null;

const UNICODE_TO_BYTE = new Map<string, number>(BYTE_TO_UNICODE.map((ch, b) => [ch, b]));
const utf8 = new TextEncoder();
const EMPTY = new Uint8Array(0);

/** How a tokenizer spells bytes in its vocabulary strings (see the header). */
export type PieceScheme = 'byte' | 'byte-level' | 'sentencepiece';

export function pieceScheme(tok: Tokenizer): PieceScheme {
  if (tok instanceof ByteTokenizer) return 'byte';
  const vocab = tok.vocab();
  if (vocab.has('<0x0A>') || [...vocab.keys()].some((t) => t.startsWith('▁'))) return 'sentencepiece';
  // A byte-level BPE's base alphabet holds all 256 GPT-2 byte characters as tokens.
  if (BYTE_TO_UNICODE.every((ch) => vocab.has(ch))) return 'byte-level';
  throw new AlignError(
    "the tokenizer's pieces are neither byte-level BPE (GPT-2 'Ġ' alphabet) nor SentencePiece ('▁', '<0xNN>'); opd cannot map its tokens to bytes, so it cannot be aligned with another tokenizer",
  );
}

/** The bytes each id of `tok` spells; null for special tokens and ids with no token. Memoised per id. */
export function tokenBytesOf(tok: Tokenizer): TokenBytes {
  const scheme = pieceScheme(tok);
  const special = new Set(tok.specialTokens.values());
  const memo = new Map<number, Uint8Array | null>();
  const compute = (id: number): Uint8Array | null => {
    if (special.has(id)) return null;
    const s = tok.idToToken(id);
    if (s === undefined) return null;
    if (scheme === 'byte') return Uint8Array.of(id);
    if (scheme === 'sentencepiece') {
      const m = /^<0x([0-9A-Fa-f]{2})>$/.exec(s);
      return m ? Uint8Array.of(parseInt(m[1]!, 16)) : utf8.encode(s.replaceAll('▁', ' '));
    }
    const out: number[] = [];
    for (const ch of s) {
      const b = UNICODE_TO_BYTE.get(ch);
      // An added (non-special) token is stored as its literal text, not in the byte alphabet.
      if (b === undefined) return utf8.encode(s);
      out.push(b);
    }
    return Uint8Array.from(out);
  };
  return (id) => {
    let v = memo.get(id);
    if (v === undefined && !memo.has(id)) memo.set(id, (v = compute(id)));
    return v ?? null;
  };
}

/** Length of the UTF-8 character starting at bytes[i] if it is complete and valid; 0 if invalid; −1 if it is cut off by the end. */
function utf8CharLength(bytes: Uint8Array, i: number): number {
  const b0 = bytes[i]!;
  if (b0 < 0x80) return 1;
  let n: number;
  let lo = 0x80;
  let hi = 0xbf;
  if (b0 >= 0xc2 && b0 <= 0xdf) n = 2;
  else if (b0 >= 0xe0 && b0 <= 0xef) {
    n = 3;
    if (b0 === 0xe0) lo = 0xa0;
    if (b0 === 0xed) hi = 0x9f;
  } else if (b0 >= 0xf0 && b0 <= 0xf4) {
    n = 4;
    if (b0 === 0xf0) lo = 0x90;
    if (b0 === 0xf4) hi = 0x8f;
  } else return 0;
  for (let k = 1; k < n; k++) {
    if (i + k >= bytes.length) return -1;
    const b = bytes[i + k]!;
    if (b < (k === 1 ? lo : 0x80) || b > (k === 1 ? hi : 0xbf)) return 0;
  }
  return n;
}

export interface StudentText {
  /** The text the teacher tokenizes (valid UTF-8 by construction). */
  text: string;
  /** Per student token, the bytes it contributes to utf8(text) (concatenation = utf8(text)). */
  tokenBytes: Uint8Array[];
  /** Index of the first token of the dropped incomplete last character; = token count when none. */
  tail: number;
}

/** The student's completion as valid text, with each token's share of its bytes (see the header). */
export function studentTextBytes(raw: readonly (Uint8Array | null)[]): StudentText {
  const lens = raw.map((b) => b?.length ?? 0);
  const all = new Uint8Array(lens.reduce((x, y) => x + y, 0));
  const owner = new Int32Array(all.length);
  let o = 0;
  raw.forEach((b, t) => {
    if (!b) return;
    all.set(b, o);
    owner.fill(t, o, o + b.length);
    o += b.length;
  });
  const parts: number[][] = raw.map(() => []);
  const FFFD = [0xef, 0xbf, 0xbd];
  let tail = raw.length;
  for (let i = 0; i < all.length; ) {
    const n = utf8CharLength(all, i);
    if (n > 0) {
      for (let k = 0; k < n; k++) parts[owner[i + k]!]!.push(all[i + k]!);
      i += n;
    } else if (n === 0) {
      parts[owner[i]!]!.push(...FFFD);
      i += 1;
    } else {
      // the last character is cut off: its tokens (and any after) are the tail
      tail = owner[i]!;
      break;
    }
  }
  const tokenBytes = parts.map((p, t) => (t >= tail ? EMPTY : Uint8Array.from(p)));
  const text = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true }).decode(concatBytes(tokenBytes));
  return { text, tokenBytes, tail };
}

export function concatBytes(parts: readonly Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((s, p) => s + p.length, 0));
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

function ends(parts: readonly Uint8Array[]): number[] {
  let o = 0;
  return parts.map((p) => (o += p.length));
}

/**
 * The spans of two token lists over the same bytes: cut where both have a token boundary. Throws when
 * the concatenations differ (naming the first differing byte).
 */
export function alignTokens(a: readonly Uint8Array[], b: readonly Uint8Array[]): Span[] {
  const A = concatBytes(a);
  const B = concatBytes(b);
  if (A.length !== B.length || A.some((x, i) => x !== B[i])) {
    let i = 0;
    while (i < A.length && i < B.length && A[i] === B[i]) i++;
    throw new AlignError(`the two token streams spell different bytes (${A.length} vs ${B.length} bytes, first difference at byte ${i})`);
  }
  const total = A.length;
  const endA = ends(a);
  const endB = ends(b);
  const inB = new Set(endB);
  const cuts = [...new Set(endA.filter((e) => e > 0 && inB.has(e)))].sort((x, y) => x - y);
  if (cuts.at(-1) !== total) cuts.push(total); // total = 0, or a side with no tokens (then the other spells nothing)
  // the span of a token: the one holding its last byte, or (0 bytes) the next byte
  const spanOf = (parts: readonly Uint8Array[], e: number[]) => {
    const out: number[] = [];
    let k = 0;
    parts.forEach((p, t) => {
      const key = p.length > 0 ? e[t]! : e[t]! + 1;
      while (k < cuts.length - 1 && cuts[k]! < key) k++;
      out.push(k);
    });
    return out;
  };
  const sa = spanOf(a, endA);
  const sb = spanOf(b, endB);
  const spans: Span[] = cuts.map((c, k) => ({ a: [0, 0], b: [0, 0], bytes: [k === 0 ? 0 : cuts[k - 1]!, c] }));
  const fill = (which: 'a' | 'b', s: number[]) => {
    let t = 0;
    spans.forEach((sp, k) => {
      const t0 = t;
      while (t < s.length && s[t] === k) t++;
      sp[which] = [t0, t];
    });
  };
  fill('a', sa);
  fill('b', sb);
  return spans;
}

/** The teacher's tokens of `text` with the bytes each spells; refuses a tokenizer whose tokens do not spell `text` back. */
export function teacherTokens(tok: Tokenizer, bytesOf: TokenBytes, text: string): { ids: number[]; bytes: Uint8Array[] } {
  const ids = text.length ? tok.encode(text, { addSpecialTokens: false }) : [];
  const bytes = ids.map((id) => bytesOf(id) ?? EMPTY);
  const want = utf8.encode(text);
  const got = concatBytes(bytes);
  const same = (x: Uint8Array, off: number) => x.length - off === want.length && want.every((v, i) => x[i + off] === v);
  if (same(got, 0)) return { ids, bytes };
  // SentencePiece's dummy prefix: "▁Hello" for "Hello"; the added space belongs to no text byte
  if (got[0] === 0x20 && same(got, 1) && bytes[0]!.length > 0) return { ids, bytes: [bytes[0]!.subarray(1), ...bytes.slice(1)] };
  throw new AlignError(
    `the teacher's tokens of ${JSON.stringify(text.slice(0, 40))} do not spell the text back (its normalizer changes the text?); such a tokenizer cannot be aligned byte for byte`,
  );
}

/** The teacher's token for the single byte `b` (byte-level alphabet, SentencePiece "<0xNN>", byte id), or null. */
export function byteTokensOf(tok: Tokenizer): (b: number) => number | null {
  const scheme = pieceScheme(tok);
  if (scheme === 'byte') return (b) => b;
  const vocab = tok.vocab();
  const table = Array.from({ length: 256 }, (_, b) => vocab.get(scheme === 'byte-level' ? BYTE_TO_UNICODE[b]! : `<0x${b.toString(16).toUpperCase().padStart(2, '0')}>`) ?? null);
  return (b) => table[b] ?? null;
}

/**
 * The teacher's tokens of the student's raw completion bytes: each maximal run of valid UTF-8 is
 * tokenized as text (teacherTokens); each byte that is not part of a valid character (an invalid
 * byte, or a character cut off at the end) becomes the teacher's own token for that byte. Null when
 * the teacher has no token for such a byte (then studentTextBytes' U+FFFD / tail rule applies).
 */
export function teacherTokensOfBytes(tok: Tokenizer, bytesOf: TokenBytes, byteToken: (b: number) => number | null, raw: Uint8Array): { ids: number[]; bytes: Uint8Array[] } | null {
  const ids: number[] = [];
  const bytes: Uint8Array[] = [];
  const decoder = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });
  const spells = (text: string) => {
    try {
      return teacherTokens(tok, bytesOf, text);
    } catch {
      return null;
    }
  };
  const asBytes = (b: Uint8Array) => {
    for (const x of b) {
      const id = byteToken(x);
      if (id === null) return false;
      ids.push(id);
      bytes.push(Uint8Array.of(x));
    }
    return true;
  };
  const push = (t: { ids: number[]; bytes: Uint8Array[] }) => {
    ids.push(...t.ids);
    bytes.push(...t.bytes);
  };
  // a run the normalizer changes (e.g. NFC maps U+2000 to U+2002): the characters that do not survive
  // on their own go as byte tokens, the rest as text; a piece still changed in context goes as bytes
  const text = (run: Uint8Array): boolean => {
    const whole = spells(decoder.decode(run));
    if (whole) return push(whole), true;
    let buf = '';
    const flushBuf = () => {
      const t = buf ? spells(buf) : { ids: [], bytes: [] };
      const ok = t ? (push(t), true) : asBytes(utf8.encode(buf));
      buf = '';
      return ok;
    };
    for (const ch of decoder.decode(run)) {
      if (spells(ch)) buf += ch;
      else if (!flushBuf() || !asBytes(utf8.encode(ch))) return false;
    }
    return flushBuf();
  };
  let runStart = 0;
  for (let i = 0; i < raw.length; ) {
    const n = utf8CharLength(raw, i);
    if (n > 0) {
      i += n;
      continue;
    }
    if (byteToken(raw[i]!) === null) return null;
    if (i > runStart && !text(raw.subarray(runStart, i))) return null;
    asBytes(raw.subarray(i, i + 1));
    runStart = ++i;
  }
  if (raw.length > runStart && !text(raw.subarray(runStart))) return null;
  return { ids, bytes };
}
