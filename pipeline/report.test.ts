// The report's own arithmetic and the heat-map's cells.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ByteTokenizer } from '../data/tokenizer/byte.ts';
import { gapColour, heatmapSvg, movingAverage } from './report.ts';

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
