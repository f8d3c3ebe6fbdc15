// loadFloat32 reads a file in one go into one float32 buffer; each tensor must still get exactly its
// own values, whatever mix of dtypes the file holds, and toFloat32 can decode into a given array.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadFloat32, writeSafetensors } from '../../src/io/safetensors.js';
import { fromFloat32, toFloat32 } from '../../src/io/dtypes.js';

const dir = mkdtempSync(join(tmpdir(), 'mce-loadf32-'));
after(() => rmSync(dir, { recursive: true, force: true }));

test('loadFloat32: mixed dtypes each decode to their own values, in views that do not overlap', async () => {
  const p = join(dir, 'mixed.safetensors');
  await writeSafetensors(p, {
    a: { dtype: 'BF16', shape: [3], data: new Float32Array([1.5, -2, 0.25]) },
    b: { dtype: 'F32', shape: [2, 2], data: new Float32Array([0.1, 0.2, 0.3, 0.4]) },
    c: { dtype: 'F16', shape: [2], data: new Float32Array([-0.5, 65504]) },
    d: { dtype: 'I32', shape: [1], data: new Int32Array([-7]) },
  });
  const { tensors } = await loadFloat32(p);
  assert.deepEqual([...tensors['a']!.data], [1.5, -2, 0.25]);
  assert.deepEqual([...tensors['b']!.data], [...new Float32Array([0.1, 0.2, 0.3, 0.4])]);
  assert.deepEqual([...tensors['c']!.data], [-0.5, 65504]);
  assert.deepEqual([...tensors['d']!.data], [-7]);
  assert.deepEqual(tensors['b']!.shape, [2, 2]);
  // Writing every element of one tensor leaves the others as they were.
  tensors['b']!.data.fill(9);
  assert.deepEqual([...tensors['a']!.data], [1.5, -2, 0.25]);
  assert.deepEqual([...tensors['c']!.data], [-0.5, 65504]);
});

test('toFloat32 into: writes into the given view, and refuses one of the wrong length', () => {
  const buf = new Float32Array(6).fill(-1);
  const bytes = fromFloat32('BF16', new Float32Array([3, -0.125]));
  const got = toFloat32('BF16', bytes, buf.subarray(2, 4));
  assert.equal(got.buffer, buf.buffer);
  assert.deepEqual([...buf], [-1, -1, 3, -0.125, -1, -1]);
  toFloat32('F32', fromFloat32('F32', new Float32Array([5])), buf.subarray(5, 6));
  assert.equal(buf[5], 5);
  assert.throws(() => toFloat32('BF16', bytes, buf.subarray(0, 3)), /2 BF16 elements do not fit an array of 3/);
});
