import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { tf } from '../../src/engine/tf.js';
import { loadFloat32 } from '../../src/io/safetensors.js';
import { saveAutoEncoderCheckpoint } from '../../src/io/checkpoint.js';
import { groupNorm } from '../../src/engine/ops.js';
import { availableBackends, useBackend } from '../../src/engine/backend.js';
import { randnArray } from '../../src/engine/rng.js';
import {
  AutoEncoder,
  FLUX_AE_PARAMS,
  autoEncoderParamCount,
  autoEncoderParamShapes,
  groupNormNHWC,
  loadAutoEncoder,
  upsampleNearest2x,
  type AutoEncoderParams,
} from '../../src/models/flux/autoencoder.js';

const TINY: AutoEncoderParams = {
  resolution: 16,
  in_channels: 3,
  ch: 32,
  out_ch: 3,
  ch_mult: [1, 2],
  num_res_blocks: 1,
  z_channels: 4,
  scale_factor: 0.3611,
  shift_factor: 0.1159,
};

test('FLUX.1 autoencoder preset: 244 tensors, 83,819,683 parameters, and building it allocates nothing', async () => {
  await useBackend('cpu');
  const shapes = autoEncoderParamShapes(FLUX_AE_PARAMS);
  assert.equal(shapes.length, 244);
  assert.equal(autoEncoderParamCount(FLUX_AE_PARAMS), 83_819_683);
  const m = new Map(shapes);
  // A few names and shapes from the released ae.safetensors.
  assert.deepEqual(m.get('encoder.conv_in.weight'), [128, 3, 3, 3]);
  assert.deepEqual(m.get('encoder.down.1.block.0.nin_shortcut.weight'), [256, 128, 1, 1]);
  assert.deepEqual(m.get('encoder.down.2.downsample.conv.weight'), [512, 512, 3, 3]);
  assert.equal(m.has('encoder.down.3.downsample.conv.weight'), false);
  assert.deepEqual(m.get('encoder.mid.attn_1.q.weight'), [512, 512, 1, 1]);
  assert.deepEqual(m.get('encoder.conv_out.weight'), [32, 512, 3, 3]);
  assert.deepEqual(m.get('decoder.conv_in.weight'), [512, 16, 3, 3]);
  assert.deepEqual(m.get('decoder.up.3.upsample.conv.weight'), [512, 512, 3, 3]);
  assert.equal(m.has('decoder.up.0.upsample.conv.weight'), false);
  assert.deepEqual(m.get('decoder.up.1.block.0.nin_shortcut.weight'), [256, 512, 1, 1]);
  assert.deepEqual(m.get('decoder.up.0.block.2.conv2.weight'), [128, 128, 3, 3]);
  assert.deepEqual(m.get('decoder.conv_out.weight'), [3, 128, 3, 3]);
  const before = tf.memory().numTensors;
  const ae = new AutoEncoder(FLUX_AE_PARAMS);
  assert.equal(tf.memory().numTensors, before);
  assert.equal(ae.loaded, false);
  assert.throws(() => ae.decode(tf.zeros([1, 16, 2, 2])), /no weights loaded/);
});

test('tiny params list the same names and shapes as the golden state_dict layout', () => {
  const names = autoEncoderParamShapes(TINY).map(([n]) => n);
  assert.equal(names.length, new Set(names).size);
  assert.ok(names.includes('decoder.up.1.upsample.conv.weight'));
  assert.ok(names.includes('decoder.up.0.block.0.nin_shortcut.weight'));
  assert.ok(!names.some((n) => n.includes('.attn.')));
});

test('bad weights fail with one line naming the first offenders', async () => {
  await useBackend('cpu');
  const good = AutoEncoder.random(TINY, 1);
  const ws: Record<string, tf.Tensor> = { ...good.weights };
  delete ws['encoder.conv_in.weight'];
  ws['encoder.extra'] = tf.zeros([1]);
  ws['decoder.conv_out.bias'] = tf.zeros([4]);
  const ae = new AutoEncoder(TINY);
  assert.throws(
    () => ae.load(ws),
    (e: Error) =>
      !e.message.includes('\n') &&
      /missing 1 key\(s\): encoder\.conv_in\.weight/.test(e.message) &&
      /unexpected 1 key\(s\): encoder\.extra/.test(e.message) &&
      /decoder\.conv_out\.bias \[4\] \(expected \[3\]\)/.test(e.message),
  );
  ws['encoder.extra']!.dispose();
  ws['decoder.conv_out.bias']!.dispose();
  good.dispose();
  assert.throws(() => new AutoEncoder({ ...TINY, ch: 24 }), /divisible by 32/);
});

test('shapes: encode [B,3,H,W] -> [B,z,H/f,W/f], decode back; non-square and bad inputs', async () => {
  await useBackend('wasm');
  const ae = AutoEncoder.random(TINY, 2);
  const x = tf.tensor(randnArray(2 * 3 * 8 * 12, 3), [2, 3, 8, 12]);
  const z = ae.encode(x);
  assert.deepEqual(z.shape, [2, 4, 4, 6]);
  const y = ae.decode(z);
  assert.deepEqual(y.shape, [2, 3, 8, 12]);
  const { mean, logvar } = ae.encodeMoments(x);
  assert.deepEqual(logvar.shape, [2, 4, 4, 6]);
  // encode = scale * (mean - shift)
  const again = tf.mul(tf.sub(mean, TINY.shift_factor), TINY.scale_factor);
  assert.ok(tf.max(tf.abs(tf.sub(again, z))).dataSync()[0]! < 1e-6);
  // a sample is seeded and differs from the mean
  const s1 = ae.encodeSample(x, 7).dataSync();
  const s2 = ae.encodeSample(x, 7).dataSync();
  assert.deepEqual(s1, s2);
  assert.notDeepEqual(Array.from(s1), Array.from(z.dataSync()));
  assert.throws(() => ae.encode(tf.zeros([1, 3, 7, 8])), /multiples of 2/);
  assert.throws(() => ae.decode(tf.zeros([1, 3, 4, 4])), /expected \[B, 4, H, W\]/);
  tf.dispose([x, z, y, mean, logvar, again]);
  ae.dispose();
});

test('NHWC group norm equals the engine group norm on NCHW; nearest 2x equals resizeNearestNeighbor', async () => {
  await useBackend('wasm');
  const x = tf.tensor(randnArray(2 * 5 * 3 * 64, 4), [2, 5, 3, 64]);
  const w = tf.tensor(randnArray(64, 5));
  const b = tf.tensor(randnArray(64, 6));
  const a = groupNormNHWC(x, w, b, false);
  const ref = groupNorm(x.transpose([0, 3, 1, 2]), 32, w, b, 1e-6).transpose([0, 2, 3, 1]);
  assert.ok(tf.max(tf.abs(tf.sub(a, ref))).dataSync()[0]! < 1e-5);
  const up = upsampleNearest2x(x);
  const upRef = tf.image.resizeNearestNeighbor(x as tf.Tensor4D, [10, 6]);
  assert.deepEqual(up.dataSync(), upRef.dataSync());
  tf.dispose([x, w, b, a, ref, up, upRef]);
});

async function aeGrads(backend: 'native' | 'wasm' | 'cpu'): Promise<Map<string, Float32Array>> {
  await useBackend(backend);
  const rand = AutoEncoder.random(TINY, 3);
  const vars: Record<string, tf.Variable> = {};
  for (const [n, t] of Object.entries(rand.weights)) vars[n] = tf.variable(t, true);
  rand.dispose();
  const ae = AutoEncoder.fromWeights(TINY, vars);
  const x = tf.tensor(randnArray(2 * 3 * 8 * 8, 8), [2, 3, 8, 8]);
  const { value, grads } = tf.variableGrads(() => tf.sum(tf.square(ae.decode(ae.encode(x)))) as tf.Scalar);
  assert.ok(Number.isFinite(value.dataSync()[0]!));
  const out = new Map<string, Float32Array>();
  for (const [n, v] of Object.entries(vars)) {
    const g = grads[v.name];
    assert.ok(g, `no gradient for ${n} on ${backend}`);
    assert.deepEqual(g.shape, v.shape, n);
    out.set(n, g.dataSync() as Float32Array);
  }
  tf.dispose([x, value, ...Object.values(grads)]);
  ae.dispose();
  return out;
}

test('gradients reach every weight through encode and decode, and agree across backends (weights as tf.Variables)', async () => {
  const ref = await aeGrads('cpu');
  for (const [n, g] of ref) assert.ok(g.some((v) => v !== 0), `zero gradient for ${n}`);
  for (const backend of availableBackends().filter((b) => b !== 'cpu')) {
    const got = await aeGrads(backend);
    for (const [n, g] of ref) {
      const h = got.get(n)!;
      let scale = 0;
      let err = 0;
      for (let i = 0; i < g.length; i++) {
        scale = Math.max(scale, Math.abs(g[i]!));
        err = Math.max(err, Math.abs(g[i]! - h[i]!));
      }
      assert.ok(err <= 1e-3 * scale + 1e-5, `${backend} gradient of ${n} differs from cpu by ${err} (scale ${scale})`);
    }
  }
});

test('loadAutoEncoder reads the golden weights re-saved in diffusers naming and reproduces the golden decode', async () => {
  await useBackend('wasm');
  const dir = mkdtempSync(join(tmpdir(), 'mce-ae-'));
  try {
    const caseDir = resolve(fileURLToPath(new URL('.', import.meta.url)), '..', '..', '..', 'shared', 'golden', 'ae', 'ae-tiny');
    const src = await loadFloat32(join(caseDir, 'weights.safetensors'));
    const path = join(dir, 'vae.safetensors');
    await saveAutoEncoderCheckpoint(path, src.tensors, TINY.ch_mult.length, { naming: 'diffusers' });
    const ae = await loadAutoEncoder(path, TINY);
    const inputs = (await loadFloat32(join(caseDir, 'inputs.safetensors'))).tensors;
    const want = (await loadFloat32(join(caseDir, 'expected.safetensors'))).tensors['decoded']!;
    const z = tf.tensor(inputs['latent']!.data, inputs['latent']!.shape);
    const got = ae.decode(z).dataSync();
    let err = 0;
    for (let i = 0; i < got.length; i++) err = Math.max(err, Math.abs(got[i]! - want.data[i]!));
    assert.ok(err < 1e-4, `max abs error ${err}`);
    await assert.rejects(loadAutoEncoder(path), /does not match the autoencoder config/);
    z.dispose();
    ae.dispose();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
