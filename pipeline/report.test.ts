// The report's own arithmetic and the heat-map's cells.

import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { rolloutsToTable } from '../data/schemas.ts';
import { writeShard } from '../data/store/shards.ts';
import { ByteTokenizer } from '../data/tokenizer/byte.ts';
import { gapColour, heatRow, heatmapSvg, movingAverage, writeReport } from './report.ts';

test('movingAverage: trailing window, hand-computed, skipping non-finite values', () => {
  assert.deepEqual(movingAverage([1, 2, 3, 4], 2), [1, 1.5, 2.5, 3.5]);
  assert.deepEqual(movingAverage([1, NaN, 3], 3), [1, 1, 2]);
});

test('heat-map cells carry teacher − student per token and the colour of its sign', () => {
  const tok = new ByteTokenizer();
  const row = { step: 3, promptId: 'p', group: 0, promptIds: tok.encode('1+2='), completionIds: [...tok.encode('3', { addSpecialTokens: false })], samplerLogprobs: [-0.5], teacherLogprobs: [-2.5], advantages: [0], reward: 1, correct: true, truncated: false };
  const svg = heatmapSvg([row], tok);
  assert.match(svg, />-2\.00</, 'gap −2.5 − (−0.5) = −2');
  assert.ok(svg.includes(gapColour(-2)) && gapColour(-2).startsWith('rgba(214'), 'red where the teacher finds the token less likely');
  assert.ok(gapColour(1).startsWith('rgba(44'), 'green where more likely');
  assert.match(svg, /step 3/);
});

test('a run without a teacher (grpo): the heat-map says so and shows −log π_student, not a teacher − student gap', async () => {
  const tok = new ByteTokenizer();
  const row = { step: 2, promptId: 'p', group: 0, promptIds: tok.encode('1+2='), completionIds: [...tok.encode('3', { addSpecialTokens: false })], samplerLogprobs: [-0.5], teacherLogprobs: [], advantages: [0], reward: 1, correct: true, truncated: false };
  const svg = heatmapSvg([row], tok);
  assert.doesNotMatch(svg, /teacher −|π_teacher/, 'no teacher − student title or legend');
  assert.match(svg, /no teacher in this run: −log π_student per completion token \(step 2\)/);
  assert.match(svg, />0\.50</, 'the cell shows −log π_student = 0.5');
  assert.doesNotMatch(heatRow(row, tok), /teacher − student/);
  assert.match(heatRow(row, tok), /title="no teacher; −log π_student = 0\.500"/);
  const dir = mkdtempSync(join(tmpdir(), 'opd-report-grpo-'));
  await writeShard(join(dir, 'shards'), 'step-000002.rollouts', rolloutsToTable([row]));
  const html = readFileSync(writeReport(dir, tok, { png: false }), 'utf8');
  assert.doesNotMatch(html, /Where the teacher disagreed|teacher − student/);
  assert.match(html, /No teacher in this run/);
  assert.match(html, /no teacher \(blend mode grpo/);
});
