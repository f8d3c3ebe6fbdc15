import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { tf } from '../../src/engine/tf.js';
import { availableBackends, currentBackend, nativeUnavailableReason, useBackend } from '../../src/engine/backend.js';

test('wasm and cpu are always available; native exactly when its kernels load', () => {
  const b = availableBackends();
  assert.ok(b.includes('wasm') && b.includes('cpu'));
  assert.equal(b.includes('native'), nativeUnavailableReason() === '');
});

test('every backend computes the same matmul', async () => {
  const a = Array.from({ length: 12 }, (_, i) => i - 5);
  const results: number[][] = [];
  for (const b of availableBackends()) {
    assert.equal(await useBackend(b), b);
    assert.equal(currentBackend(), b);
    const y = tf.matMul(tf.tensor2d(a, [3, 4]), tf.tensor2d(a, [3, 4]), false, true);
    results.push(Array.from(await y.data()));
    y.dispose();
  }
  for (const r of results) assert.deepEqual(r, results[0]);
  assert.deepEqual(results[0]!.slice(0, 3), [54, -2, -58]);
});

function runWithBackend(env: string, extra: NodeJS.ProcessEnv = {}): { code: number | null; stdout: string; stderr: string } {
  const src = "import { useBackend } from './src/engine/backend.ts'; console.log(await useBackend());";
  const r = spawnSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', src], {
    env: { ...process.env, MCE_BACKEND: env, ...extra },
    encoding: 'utf8',
  });
  return { code: r.status, stdout: r.stdout.trim(), stderr: r.stderr.trim() };
}

test('MCE_BACKEND selects the backend and rejects unknown names in one line', () => {
  assert.equal(runWithBackend('cpu').stdout, 'cpu');
  assert.equal(runWithBackend('wasm').stdout, 'wasm');
  const bad = runWithBackend('gpu');
  assert.notEqual(bad.code, 0);
  assert.match(bad.stderr, /MCE_BACKEND must be one of native, wasm, cpu, got 'gpu'/);
});

test('without the native kernels, asking for native falls back to wasm and says why in one line', () => {
  const r = runWithBackend('native', { MCE_NATIVE: '0' });
  assert.equal(r.code, 0);
  assert.equal(r.stdout, 'wasm');
  assert.match(r.stderr, /^mce: native kernels unavailable \(.*\); using the slower wasm backend$/);
});
