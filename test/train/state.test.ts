import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, mkdir, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { tf } from '../../src/engine/tf.js';
import { useBackend } from '../../src/engine/backend.js';
import {
  TrainError, canonicalJson, configDiff, configHash, listCheckpoints, loadCheckpoint, restoreParams, saveCheckpoint,
} from '../../src/train/state.js';

const tmp = (): Promise<string> => mkdtemp(join(tmpdir(), 'mce-state-'));

function state(step: number, hash = 'h1') {
  return {
    step,
    epoch: 1,
    params: { 'a.weight': tf.tensor2d([[1, 2], [3, step]]), 'a.bias': { shape: [2], data: new Float32Array([0.5, -0.5]) } },
    optimizer: { step, tensors: { 'm.a.weight': { shape: [2, 2], data: new Float32Array([1e-9, 2, 3, 4]) } } },
    rng: { seed: 3 },
    configHash: hash,
    config: { lr: 0.1, model: { width: 8 } },
    elapsedSeconds: 12.5,
    metadata: { losses: [1, 0.5] },
  };
}

test('a checkpoint round-trips exactly and only the newest `keep` are kept', async () => {
  await useBackend('wasm');
  const dir = await tmp();
  try {
    assert.equal(await loadCheckpoint(dir), null);
    for (const s of [5, 10, 15]) {
      const st = state(s);
      await saveCheckpoint(dir, st, { keep: 2 });
      tf.dispose(st.params['a.weight']);
    }
    assert.deepEqual((await listCheckpoints(dir)).map((c) => c.step), [15, 10]);
    const ck = (await loadCheckpoint(dir, { configHash: 'h1' }))!;
    assert.equal(ck.step, 15);
    assert.equal(ck.epoch, 1);
    assert.deepEqual(ck.params['a.weight'], { shape: [2, 2], data: new Float32Array([1, 2, 3, 15]) });
    assert.deepEqual(ck.params['a.bias'], { shape: [2], data: new Float32Array([0.5, -0.5]) });
    assert.deepEqual(ck.optimizer, { step: 15, tensors: { 'm.a.weight': { shape: [2, 2], data: new Float32Array([1e-9, 2, 3, 4]) } } });
    assert.deepEqual(ck.rng, { seed: 3 });
    assert.equal(ck.elapsedSeconds, 12.5);
    assert.deepEqual(ck.metadata, { losses: [1, 0.5] });
    assert.deepEqual(await readdir(ck.path), ['state.json', 'state.safetensors']);

    // Re-saving the same step replaces it.
    const again = state(15);
    again.metadata = { losses: [9] };
    await saveCheckpoint(dir, again);
    tf.dispose(again.params['a.weight']);
    assert.deepEqual((await listCheckpoints(dir)).map((c) => c.step), [15]);
    assert.deepEqual((await loadCheckpoint(dir))!.metadata, { losses: [9] });

    // restoreParams checks names and shapes.
    const v = { 'a.weight': tf.variable(tf.zeros([2, 2])), 'a.bias': tf.variable(tf.zeros([2])) };
    restoreParams(v, ck.params);
    assert.deepEqual(Array.from(v['a.weight'].dataSync()), [1, 2, 3, 15]);
    assert.throws(() => restoreParams({ 'a.weight': v['a.weight'] }, ck.params), /unexpected a\.bias/);
    const w = { 'a.weight': tf.variable(tf.zeros([4])), 'a.bias': v['a.bias'] };
    assert.throws(() => restoreParams(w, ck.params), /'a\.weight' has shape \[2, 2\], the model has \[4\]/);
    tf.dispose([...Object.values(v), w['a.weight']]);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('a half-written checkpoint (killed writer) is ignored and cleaned up; a corrupt one is refused', async () => {
  await useBackend('wasm');
  const dir = await tmp();
  try {
    const st = state(10);
    await saveCheckpoint(dir, st);
    tf.dispose(st.params['a.weight']);
    // What a writer killed mid-save leaves: a hidden temporary folder with a partial file.
    const stale = join(dir, '.ckpt-00000015.999999999.deadbeef.tmp');
    await mkdir(stale);
    await writeFile(join(stale, 'state.safetensors'), Buffer.alloc(10));
    const ck = (await loadCheckpoint(dir))!;
    assert.equal(ck.step, 10);
    assert.deepEqual(await readdir(dir), ['ckpt-00000010'], 'the stale temporary folder is removed');

    const file = join(ck.path, 'state.safetensors');
    const bytes = await readFile(file);
    bytes[bytes.length - 1] ^= 1;
    await writeFile(file, bytes);
    await assert.rejects(loadCheckpoint(dir), (e: Error) => e instanceof TrainError && /checksum mismatch, the checkpoint is corrupt/.test(e.message));
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('a checkpoint made with another config is refused with one line naming what changed', async () => {
  await useBackend('wasm');
  const dir = await tmp();
  try {
    const st = state(5, configHash({ lr: 0.1, model: { width: 8 } }));
    await saveCheckpoint(dir, st);
    tf.dispose(st.params['a.weight']);
    const now = { lr: 0.2, model: { width: 8 } };
    await assert.rejects(loadCheckpoint(dir, { configHash: configHash(now), config: now }), (e: Error) => {
      assert.ok(e instanceof TrainError);
      assert.ok(!e.message.includes('\n'));
      assert.match(e.message, /ckpt-00000005: refusing to resume: the checkpoint was made with a different config \(hash [0-9a-f]{16}, now [0-9a-f]{16}; changed: lr \(0\.1 -> 0\.2\)\); use another output folder/);
      return true;
    });
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('config hashing is canonical', () => {
  assert.equal(configHash({ a: 1, b: { c: [1, 2], d: 'x' } }), configHash({ b: { d: 'x', c: [1, 2] }, a: 1 }));
  assert.notEqual(configHash({ a: 1 }), configHash({ a: 2 }));
  assert.equal(canonicalJson({ b: 1, a: undefined, c: /x/g }), '{"b":1,"c":"/x/g"}');
  assert.deepEqual(configDiff({ a: 1, b: { c: 2 } }, { a: 1, b: { c: 3 }, d: true }), ['b.c (2 -> 3)', 'd (absent -> true)']);
});
