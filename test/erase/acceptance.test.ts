// Issue 5's acceptance bars on a held-out evaluation: values, inclusive thresholds, and "not
// measured" without a classifier.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { acceptanceBars, formatBars } from '../../src/erase/mce/acceptance.js';
import type { ErasureEval, EvalGroup } from '../../src/erase/mce/evaluate.js';

const group = (before: number | null, after: number | null, ssim: number): EvalGroup => ({ prompts: [], truth: [], before, after, ssim, clip: null, perPrompt: [], byConceptPhrase: [] });
const evaluation = (erase: EvalGroup, neighbours: EvalGroup | null, others: EvalGroup): ErasureEval => ({
  metrics: { detection: '', accuracy: '', ssim: '', clip: '' }, classifier: null, clipModel: null, notes: [], erase, neighbours, others, seconds: 0,
});

test('acceptance bars: values and inclusive thresholds', () => {
  const bars = acceptanceBars(evaluation(group(0.8, 0.1, 0.5), group(0.75, 0.7, 0.85), group(0.5, 0.4, 0.9)));
  assert.deepEqual(bars.map((b) => b.met), [true, true, true, true, false, true]);
  assert.equal(bars[2]!.bar, 'near neighbours: concept accuracy within 5 points of the original (change)');
  assert.ok(Math.abs(bars[2]!.value! - -0.05) < 1e-12);
  assert.ok(Math.abs(bars[4]!.value! - -0.1) < 1e-12);
  assert.equal(bars[5]!.value, 0.9);
  assert.equal(formatBars(bars), '5/6 acceptance bars met');
});

test('acceptance bars: no classifier leaves the rates unmeasured; no neighbours, no neighbour bars', () => {
  const bars = acceptanceBars(evaluation(group(null, null, 0.9), null, group(null, null, 0.7)));
  assert.deepEqual(bars.map((b) => [b.value, b.met]), [[null, null], [null, null], [null, null], [0.7, false]]);
  assert.equal(formatBars(bars), '0/1 acceptance bars met (3 not measured)');
});
