import { test } from 'node:test';
import assert from 'node:assert/strict';
import { fluxSchedule, linspace, shiftMu, sigmaSchedule, timeShift } from '../../src/sampling/schedule.js';

const close = (a: number, b: number, tol = 1e-6): boolean => Math.abs(a - b) <= tol;

test('unshifted schedule is linspace(1, 0, N+1) in float32', () => {
  assert.deepEqual(fluxSchedule(4, { shift: false }), [1, 0.75, 0.5, 0.25, 0]);
  linspace(1, 0, 4).forEach((t, i) => assert.ok(close(t, 1 - i / 3, 1e-7)));
  const ten = fluxSchedule(10, { shift: false });
  assert.equal(ten.length, 11);
  ten.forEach((t, i) => assert.ok(close(t, 1 - i / 10)));
});

test('time shift: mu linear in image tokens through (256, 0.5) and (4096, 1.15)', () => {
  assert.ok(close(shiftMu(256), 0.5, 1e-12));
  assert.ok(close(shiftMu(4096), 1.15, 1e-12));
  assert.ok(close(shiftMu(2176), 0.825, 1e-12));
  // FLUX.1-dev at 1024x1024 (4096 tokens), 4 steps: t' = e^mu / (e^mu + 1/t - 1).
  const e = Math.exp(1.15);
  const want = [1, e / (e + 1 / 0.75 - 1), e / (e + 1), e / (e + 3), 0];
  const got = fluxSchedule(4, { imageSeqLen: 4096 });
  got.forEach((t, i) => assert.ok(close(t, want[i]!), `t[${i}] = ${t}, want ${want[i]}`));
  assert.ok(close(got[2]!, 0.7595109, 1e-6));
  // Custom base/max shift.
  const mu = shiftMu(16, 0.5, 1.15);
  fluxSchedule(3, { imageSeqLen: 16 }).forEach((t, i) => assert.ok(close(t, timeShift(mu, 1, 1 - i / 3))));
  assert.equal(timeShift(0.5, 1, 0), 0);
  assert.equal(timeShift(0.5, 1, 1), 1);
  assert.throws(() => fluxSchedule(4), /imageSeqLen/);
  assert.throws(() => fluxSchedule(0, { shift: false }), /positive integer/);
});

test('explicit sigma lists', () => {
  assert.deepEqual(sigmaSchedule([1, 0.5, 0.25]), [1, 0.5, 0.25, 0]);
  assert.deepEqual(sigmaSchedule([0.9, 0.1, 0]), [Math.fround(0.9), Math.fround(0.1), 0]);
  assert.throws(() => sigmaSchedule([0.5, 0.9]), /non-increasing/);
  assert.throws(() => sigmaSchedule([2]), /\[0, 1\]/);
});
