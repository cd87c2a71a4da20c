// Multi-teacher routing (MOPD), docs/algorithms.md §3.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { routeTeachers } from './routing.ts';

const routes = { byTag: { math: 'qwen-math', code: 'qwen-coder' }, defaultTeacher: 'qwen-general' };

test('each rollout is scored by its prompt tag’s teacher; untagged prompts go to the default', () => {
  const out = routeTeachers(['math', undefined, 'code'], [2, 1, 3], routes);
  assert.deepEqual(out, [['qwen-math', 'qwen-math'], ['qwen-general'], ['qwen-coder', 'qwen-coder', 'qwen-coder']]);
});

test('an unknown tag is an error listing the known tags, even with a default', () => {
  assert.throws(() => routeTeachers(['math', 'physics'], [1, 1], routes), /prompt 1 has tag 'physics'.*known tags: code, math/);
  // Object prototype names are tags like any other, not routes.
  assert.throws(() => routeTeachers(['constructor'], [1], routes), /tag 'constructor'/);
});

test('an untagged prompt without a default teacher is an error; shapes must match', () => {
  assert.throws(() => routeTeachers([undefined], [2], { byTag: { math: 'm' } }), /prompt 0 has no tag and no default teacher/);
  assert.throws(() => routeTeachers(['math'], [1, 2], routes), /1 prompt tags but 2 group sizes/);
  assert.throws(() => routeTeachers(['math'], [-1], routes), /groupSizes_P\[0\] = -1/);
});
