// Run configs are JSON with comments (JSONC, as tsconfig.json and VS Code settings): `// line` and
// `/* block */` comments outside strings are allowed and ignored; nothing else differs from JSON (no
// trailing commas, no unquoted keys). Comments become spaces, newlines kept, so JSON.parse's
// positions still point into the file as written.

/** `text` with every comment outside a string replaced by spaces (newlines kept). */
export function stripJsonComments(text: string): string {
  let out = '';
  let i = 0;
  const blank = (s: string) => s.replace(/[^\n]/g, ' ');
  while (i < text.length) {
    const ch = text[i]!;
    if (ch === '"') {
      const end = stringEnd(text, i);
      out += text.slice(i, end);
      i = end;
    } else if (ch === '/' && text[i + 1] === '/') {
      const end = text.indexOf('\n', i);
      const stop = end < 0 ? text.length : end;
      out += blank(text.slice(i, stop));
      i = stop;
    } else if (ch === '/' && text[i + 1] === '*') {
      const end = text.indexOf('*/', i + 2);
      const stop = end < 0 ? text.length : end + 2;
      out += blank(text.slice(i, stop));
      i = stop;
    } else {
      out += ch;
      i++;
    }
  }
  return out;
}

/** Index just past the string literal opening at `start` (or the text's end when it never closes). */
function stringEnd(text: string, start: number): number {
  for (let i = start + 1; i < text.length; i++) {
    if (text[i] === '\\') i++;
    else if (text[i] === '"' || text[i] === '\n') return i + 1;
  }
  return text.length;
}

/** JSON.parse of `text` after its comments are stripped. */
export function parseJsonc(text: string): unknown {
  return JSON.parse(stripJsonComments(text));
}
