import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Rng, mixSeed, randnArray, uniformArray } from '../../src/engine/rng.js';

test('the same seed gives the same bytes; another seed does not', () => {
  assert.deepEqual(randnArray(1000, 5), randnArray(1000, 5));
  assert.notDeepEqual(randnArray(1000, 5), randnArray(1000, 6));
  assert.notEqual(mixSeed(1, 2), mixSeed(2, 1));
});

test('uniform and normal draws have the right moments', () => {
  const n = 200000;
  const u = uniformArray(n, 11);
  const z = randnArray(n, 12);
  const mean = (a: Float32Array): number => a.reduce((s, v) => s + v, 0) / a.length;
  const v = (a: Float32Array, m: number): number => a.reduce((s, x) => s + (x - m) ** 2, 0) / a.length;
  assert.ok(Math.abs(mean(u) - 0.5) < 0.005);
  assert.ok(Math.abs(v(u, 0.5) - 1 / 12) < 0.002);
  assert.ok(Math.abs(mean(z)) < 0.01);
  assert.ok(Math.abs(v(z, 0) - 1) < 0.01);
  assert.ok(u.every((x) => x >= 0 && x < 1));
  const r = new Rng(3);
  const counts = new Array(7).fill(0);
  for (let i = 0; i < 70000; i++) counts[r.int(7)]++;
  for (const c of counts) assert.ok(Math.abs(c - 10000) < 400);
});
