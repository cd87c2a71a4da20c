// The answer format shared by every built-in task, and the one parser rewards use to read it back.
//
// Format (exact): the ideal completion is the answer string itself — digits with an optional leading
// '-', no spaces, no trailing newline — followed by the tokenizer's EOS token. `demonstration(record)`
// returns only the text (`record.answer`); the EOS id is appended at tokenization, as
// pipeline/recipes/sft.ts does for every SFT completion, and rollouts stop on EOS the same way.
// E.g. prompt "12+345=" → completion bytes "357" then <|eos|> (id 258 in the byte tokenizer).
//
// Reading a completion back: the answer is the text from the start of the completion up to the first
// end marker — a newline or the start of a special token ("<|", as in "<|eos|>" when a completion is
// decoded without skipping specials) — or the end of the text when there is none, then trimmed.
// Anything after the end marker is ignored, so "357\nbecause…" reads as "357".

/** Where a completion's answer ends: a newline, or a special token such as "<|eos|>". */
export const ANSWER_END_MARKERS: readonly string[] = ['\n', '<|'];

/** The answer part of `completion`: up to the first end marker, trimmed. */
export function extractAnswer(completion: string): string {
  let end = completion.length;
  for (const marker of ANSWER_END_MARKERS) {
    const at = completion.indexOf(marker);
    if (at >= 0 && at < end) end = at;
  }
  return completion.slice(0, end).trim();
}

/** The ideal completion text for a record: its answer, verbatim. EOS is appended by the tokenizing step. */
export function demonstrationOf(record: { answer: string }): string {
  return record.answer;
}
