// Stage-boundary schemas round-trip through Arrow IPC, including empty lists (empty completions).

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { tableFromIPC, tableToIPC } from 'apache-arrow';
import { type RolloutRow, rolloutsToTable, tableToRollouts, tableToTeacherScores, teacherScoresToTable } from './schemas.ts';

test('rollout rows survive Arrow IPC exactly (float32 columns hold float32 values)', () => {
  const rows: RolloutRow[] = [
    { step: 3, promptId: 'arithmetic:train:0:1', group: 0, promptIds: [257, 49], completionIds: [], samplerLogprobs: [], teacherLogprobs: [], teacherTopK: 0, teacherTopIds: [], teacherTopLogprobs: [], advantages: [], reward: 0, correct: false, truncated: true },
    { step: 3, promptId: 'arithmetic:train:0:1', group: 0, promptIds: [257, 49], completionIds: [50, 258], samplerLogprobs: [-0.5, -0.125], teacherLogprobs: [-0.25, -2], teacherTopK: 2, teacherTopIds: [50, 7, 258, 50], teacherTopLogprobs: [-0.25, -3.5, -2, -0.5], advantages: [1.5, -0.75], reward: 1, correct: true, truncated: false },
  ];
  const back = tableToRollouts(tableFromIPC(tableToIPC(rolloutsToTable(rows))));
  assert.deepEqual(back, rows);
});

test('teacher score rows with top-k survive Arrow IPC', () => {
  const rows = [{ key: 'k', teacherId: 'local:abc', start: 2, ids: [1, 2, 3, 4], logprobs: [-1, -0.5], topK: 2, topIds: [3, 9, 4, 1], topLogprobs: [-1, -2, -0.5, -3] }];
  assert.deepEqual(tableToTeacherScores(tableFromIPC(tableToIPC(teacherScoresToTable(rows)))), rows);
});
