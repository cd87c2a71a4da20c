// A user reward: (prompt, completion, record) => number. `completion` is the generated text with
// special tokens removed (no EOS); `record` is the JSONL line: {id, prompt, answer, tag?, meta?}.
// 1 for the exact answer as the first word, 0.5 for any other completion holding a digit, else 0.
export default function reward(prompt, completion, record) {
  if (completion.trim().split(/\s+/)[0] === record.answer) return 1;
  return /\d/.test(completion) ? 0.5 : 0;
}
