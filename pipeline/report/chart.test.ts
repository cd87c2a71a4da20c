// Charts: tick values, flat and non-finite data, and PNG output of the declared size.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { axisRange, esc, lineChart, niceTicks, svgToPng } from './chart.ts';

test('niceTicks: 1-2-5 steps covering the range', () => {
  assert.deepEqual(niceTicks(0, 1, 5), [0, 0.2, 0.4, 0.6, 0.8, 1]);
  assert.deepEqual(niceTicks(0, 2000, 6), [0, 500, 1000, 1500, 2000]);
  assert.deepEqual(niceTicks(0.23, 0.61, 5), [0.3, 0.4, 0.5, 0.6]);
  assert.deepEqual(niceTicks(-3, 7, 5), [-2, 0, 2, 4, 6]);
  assert.throws(() => niceTicks(1, 1), /lo < hi/);
});

test('a flat series gets a padded range, so its labels do not collide', () => {
  assert.deepEqual(axisRange([0.5, 0.5]), [0.45, 0.55]);
  assert.deepEqual(axisRange([0, 0]), [-1, 1]);
  assert.deepEqual(axisRange([0.2, 0.4], 0), [0, 0.4]);
  const svg = lineChart({ title: 'flat', xLabel: 'x', yLabel: 'y', series: [{ name: 's', points: [[1, 0.5], [2, 0.5]] }] });
  const ys = [...svg.matchAll(/<text x="58" y="([\d.]+)"[^>]*text-anchor="end">/g)].map((m) => Number(m[1]));
  assert.ok(ys.length >= 2 && new Set(ys).size === ys.length, `distinct y-label positions: ${ys}`);
});

test('non-finite points are dropped; one point is a marker; no data says so', () => {
  const svg = lineChart({ title: 't', xLabel: 'x', yLabel: 'y', series: [{ name: 'a', points: [[0, 1], [1, NaN], [2, 3], [3, Infinity]] }, { name: 'b', points: [[1, 2]] }] });
  const line = svg.match(/<polyline points="([^"]+)"/)![1]!.split(' ');
  assert.equal(line.length, 2, 'two finite points of a');
  assert.equal((svg.match(/<circle /g) ?? []).length, 1, 'b is a marker');
  assert.match(lineChart({ title: 't', xLabel: 'x', yLabel: 'y', series: [{ name: 'a', points: [[0, NaN]] }] }), /no data/);
});

test('svgToPng renders a PNG of the SVG size', () => {
  const png = svgToPng(lineChart({ title: 't', xLabel: 'x', yLabel: 'y', series: [{ name: 'a', points: [[0, 1], [1, 2]], band: [[0, 0.5, 1.5], [1, 1.5, 2.5]] }], width: 300, height: 200 }));
  assert.deepEqual([...png.subarray(0, 8)], [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
  assert.equal(png.toString('ascii', 12, 16), 'IHDR');
  assert.deepEqual([png.readUInt32BE(16), png.readUInt32BE(20)], [300, 200]);
});

test('esc: markup escaped, XML-forbidden characters replaced so the SVG still parses', () => {
  assert.equal(esc('a<b & "c"'), 'a&lt;b &amp; &quot;c&quot;');
  assert.equal(esc('x\u0017y\u0000'), 'x\uFFFDy\uFFFD');
  assert.equal(esc('\uD800z'), '\uFFFDz');
  assert.equal(esc('é⏎😀'), 'é⏎😀');
  const png = svgToPng(lineChart({ title: 'bad \u0017 title', xLabel: 'x', yLabel: 'y', series: [{ name: 'n\u0001', points: [[0, 1], [1, 2]] }] }));
  assert.ok(png.length > 100);
});
