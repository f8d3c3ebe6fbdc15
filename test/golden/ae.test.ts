// Conformance: the FLUX autoencoder against every reference case under $MCE_GOLDEN_DIR/ae
// (default ../shared/golden/ae). Cases are found by listing the folder, so new ones need no code.
// Each case: `encoded` = scale * (mean - shift) of encode(image) and `decoded` = decode(latent),
// in the reference NCHW layout, within 1e-4 absolute / 1e-3 relative, on every backend present.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { tf } from '../../src/engine/tf.js';
import { loadFloat32 } from '../../src/io/safetensors.js';
import { availableBackends, useBackend } from '../../src/engine/backend.js';
import { AutoEncoder, type AutoEncoderParams } from '../../src/models/flux/autoencoder.js';

const repoRoot = resolve(fileURLToPath(new URL('.', import.meta.url)), '..', '..');
const goldenRoot = process.env['MCE_GOLDEN_DIR'] ? resolve(process.env['MCE_GOLDEN_DIR']) : resolve(repoRoot, '..', 'shared', 'golden');
const aeRoot = join(goldenRoot, 'ae');

async function readF32(path: string): Promise<Record<string, { shape: number[]; data: Float32Array }>> {
  const { tensors } = await loadFloat32(path);
  for (const [name, t] of Object.entries(tensors)) {
    if (t.dtype !== 'F32') throw new Error(`${path}: ${name} is ${t.dtype}; golden files are float32`);
  }
  return tensors;
}

function listCases(): string[] {
  if (!existsSync(aeRoot)) return [];
  return readdirSync(aeRoot)
    .filter((d) => statSync(join(aeRoot, d)).isDirectory())
    .sort();
}

export interface Closeness {
  maxAbs: number;
  worst: number; // worst of |d| - (atol + rtol * |ref|), <= 0 passes
}

function compare(got: Float32Array, want: Float32Array, atol = 1e-4, rtol = 1e-3): Closeness {
  let maxAbs = 0;
  let worst = -Infinity;
  for (let i = 0; i < want.length; i++) {
    const d = Math.abs(got[i]! - want[i]!);
    if (!(d <= maxAbs)) maxAbs = Number.isNaN(d) ? Infinity : Math.max(maxAbs, d);
    const excess = Number.isNaN(d) ? Infinity : d - (atol + rtol * Math.abs(want[i]!));
    if (excess > worst) worst = excess;
  }
  return { maxAbs, worst };
}

const cases = listCases();

test('golden/ae: at least one case is present', () => {
  assert.ok(cases.length > 0, `no golden autoencoder cases found under ${aeRoot} (set MCE_GOLDEN_DIR to the golden root)`);
});

for (const name of cases) {
  const dir = join(aeRoot, name);
  for (const backend of availableBackends()) {
    test(`golden/ae/${name} on ${backend}: encoded and decoded within 1e-4 abs / 1e-3 rel`, async (t) => {
      await useBackend(backend);
      const config = JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8')) as { params: AutoEncoderParams };
      const weights = await readF32(join(dir, 'weights.safetensors'));
      const inputs = await readF32(join(dir, 'inputs.safetensors'));
      const expected = await readF32(join(dir, 'expected.safetensors'));
      const unchecked = Object.keys(expected).filter((k) => k !== 'encoded' && k !== 'decoded');
      assert.deepEqual(unchecked, [], `${name}: expected.safetensors has tensors this test does not check`);
      const ae = AutoEncoder.fromWeights(config.params, weights);
      try {
        for (const [out, inp, fn] of [
          ['encoded', 'image', (x: tf.Tensor) => ae.encode(x)],
          ['decoded', 'latent', (x: tf.Tensor) => ae.decode(x)],
        ] as const) {
          const x = tf.tensor(inputs[inp]!.data, inputs[inp]!.shape);
          const t0 = performance.now();
          const y = fn(x);
          const got = y.dataSync() as Float32Array;
          const ms = performance.now() - t0;
          const want = expected[out]!;
          assert.deepEqual(y.shape, want.shape, `${out} shape`);
          const c = compare(got, want.data);
          t.diagnostic(`golden/ae/${name} ${backend} ${out}: max abs err ${c.maxAbs.toExponential(2)}, ${ms.toFixed(0)} ms`);
          assert.ok(c.worst <= 0, `${name} ${out} on ${backend}: max abs error ${c.maxAbs} exceeds 1e-4 abs / 1e-3 rel`);
          x.dispose();
          y.dispose();
        }
      } finally {
        ae.dispose();
      }
    });
  }
}
