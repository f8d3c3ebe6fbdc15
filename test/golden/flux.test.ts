// Conformance of the FLUX transformer and the Euler sampler against the reference golden cases
// (../shared/README.md "Golden cases"). Every case folder under $MCE_GOLDEN_DIR/flux (default
// ../shared/golden/flux) is checked on every available backend:
//   velocity and act.*; sample.timesteps, sample.x{k}, sample.final; masked.velocity and
//   masked.sample.final; masked.loss and every grad.* through every sampling step (checkpointed).
// Every tensor in expected.safetensors must be checked, so a new kind of expectation fails loudly.
// Tolerance: |got - want| <= 1e-4 + 1e-3 |want|. MCE_GOLDEN_VERBOSE=1 prints the error of every tensor.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { tf, type Tensor } from '../../src/engine/tf.js';
import { availableBackends, useBackend, type BackendName } from '../../src/engine/backend.js';
import { fluxForwardWithActivations, validateFluxWeights, type FluxParams } from '../../src/models/flux/index.js';
import { fluxSchedule } from '../../src/sampling/schedule.js';
import { eulerSample, eulerSampleGrad } from '../../src/sampling/euler.js';
import { fluxDenoiser, type FluxTrainable } from '../../src/sampling/flux.js';
import { compare, goldenRoot, listCases, readSafetensorsF32, type RawTensor } from './read.js';

interface CaseConfig {
  params: FluxParams;
  sampling: {
    steps: number;
    shift: boolean;
    base_shift: number;
    max_shift: number;
    image_seq_len: number;
    guidance: number | null;
  };
}

const cases = listCases('flux');
const verbose = !!process.env['MCE_GOLDEN_VERBOSE'];

test('golden flux cases exist', () => {
  assert.ok(cases.length > 0, `no golden flux case found under ${join(goldenRoot(), 'flux')} (set MCE_GOLDEN_DIR)`);
});

async function data(t: Tensor): Promise<Float32Array> {
  return (await t.data()) as Float32Array;
}

for (const c of cases) {
  const config = JSON.parse(readFileSync(join(c.dir, 'config.json'), 'utf8')) as CaseConfig;
  const rawW = readSafetensorsF32(join(c.dir, 'weights.safetensors'));
  const rawIn = readSafetensorsF32(join(c.dir, 'inputs.safetensors'));
  const expected = readSafetensorsF32(join(c.dir, 'expected.safetensors'));

  for (const backend of availableBackends()) {
    test(`golden flux ${c.name} (${backend})`, async (t) => {
      await useBackend(backend as BackendName);
      const before = tf.memory().numTensors;
      const checked = new Set<string>();
      const failures: string[] = [];
      let worstAbs = 0;
      let worstKey = '';
      const check = async (key: string, got: Tensor | number[] | Float32Array): Promise<void> => {
        const want = expected[key];
        if (!want) {
          failures.push(`${key}: not in expected.safetensors`);
          return;
        }
        checked.add(key);
        let values: ArrayLike<number>;
        if (Array.isArray(got) || got instanceof Float32Array) values = got;
        else {
          const n = want.shape.reduce((a, b) => a * b, 1);
          const shapeOk = got.shape.length === want.shape.length && got.shape.every((d, i) => d === want.shape[i]);
          if (!shapeOk && !(got.size === n && n === 1)) {
            failures.push(`${key}: shape [${got.shape.join(', ')}], expected [${want.shape.join(', ')}]`);
            return;
          }
          values = await data(got);
        }
        let keyAbs = 0;
        let keyMax = 0;
        for (let i = 0; i < values.length; i++) {
          keyAbs = Math.max(keyAbs, Math.abs(values[i]! - want.data[i]!));
          keyMax = Math.max(keyMax, Math.abs(want.data[i]!));
        }
        if (keyAbs > worstAbs) [worstAbs, worstKey] = [keyAbs, key];
        if (verbose) t.diagnostic(`  ${key}: max abs err ${keyAbs.toExponential(2)}, max |want| ${keyMax.toExponential(2)}`);
        const m = compare(values, want.data);
        if (m) {
          failures.push(
            m.count < 0
              ? `${key}: ${m.got} values, expected ${m.want}`
              : `${key}: ${m.count}/${want.data.length} out of tolerance; worst at ${m.index}: got ${m.got}, want ${m.want}; max abs err ${m.maxAbs.toExponential(2)}`,
          );
        }
      };
      const mk = (r: RawTensor): Tensor => tf.tensor(r.data, r.shape);
      const weights: Record<string, Tensor> = {};
      for (const [k, r] of Object.entries(rawW)) weights[k] = mk(r);
      const inp: Record<string, Tensor> = {};
      for (const [k, r] of Object.entries(rawIn)) inp[k] = mk(r);
      const cfg = config.params;
      validateFluxWeights(cfg, weights);
      const masks: Record<string, Tensor> = {};
      for (const k of Object.keys(inp)) if (k.startsWith('mask.')) masks[k.slice(5)] = inp[k]!;
      const owned: Tensor[] = [];
      const own = <T extends Tensor>(x: T): T => (owned.push(x), x);
      const time = async <T>(label: string, fn: () => Promise<T>): Promise<T> => {
        const t0 = performance.now();
        const r = await fn();
        t.diagnostic(`${label}: ${((performance.now() - t0) / 1000).toFixed(2)} s`);
        return r;
      };

      // 1. One forward at t, no masks: velocity and block outputs.
      await time('forward', async () => {
        const inputs = {
          img: inp['noise']!,
          img_ids: inp['img_ids']!,
          txt: inp['txt']!,
          txt_ids: inp['txt_ids']!,
          timesteps: inp['t']!,
          y: inp['y']!,
          guidance: inp['guidance'] ?? null,
        };
        const plain = fluxForwardWithActivations(cfg, weights, inputs);
        await check('velocity', own(plain.out));
        for (const [name, a] of Object.entries(plain.acts)) {
          own(a);
          if (`act.${name}` in expected) await check(`act.${name}`, a);
        }
        const masked = fluxForwardWithActivations(cfg, weights, inputs, { masks });
        own(masked.out);
        tf.dispose(Object.values(masked.acts));
        await check('masked.velocity', masked.out);
      });

      // 2. Sampling: schedule, every Euler state, final; then with masks.
      const s = config.sampling;
      const timesteps = fluxSchedule(s.steps, {
        shift: s.shift,
        imageSeqLen: s.image_seq_len,
        baseShift: s.base_shift,
        maxShift: s.max_shift,
      });
      await check('sample.timesteps', timesteps);
      const den = fluxDenoiser(cfg, weights, {
        img_ids: inp['img_ids']!,
        txt: inp['txt']!,
        txt_ids: inp['txt_ids']!,
        y: inp['y']!,
        guidance: s.guidance,
      });
      const noise = inp['noise']!;
      await time(`sample (${s.steps} steps)`, async () => {
        const run = eulerSample(den.velocityFn(), noise, timesteps, { trajectory: true });
        for (let k = 0; k < run.xs!.length; k++) await check(`sample.x${k}`, own(run.xs![k]!));
        await check('sample.final', run.final);
        tf.dispose(run.x0Preds!);
        const mrun = eulerSample(den.velocityFn(masks), noise, timesteps);
        await check('masked.sample.final', own(mrun.final));
      });

      // 3. masked.loss and its gradients through every step, with checkpointed backprop.
      const gradKeys = Object.keys(expected).filter((k) => k.startsWith('grad.'));
      {
        await time('checkpointed gradients', async () => {
          const trainables: FluxTrainable[] = [];
          const params: Tensor[] = [];
          for (const [name, m] of Object.entries(masks)) {
            trainables.push({ kind: 'mask', name });
            params.push(m);
          }
          for (const k of gradKeys) {
            if (k.startsWith('grad.param.')) {
              const name = k.slice('grad.param.'.length);
              if (!weights[name]) {
                failures.push(`${k}: no weight named '${name}'`);
                continue;
              }
              trainables.push({ kind: 'weight', name });
              params.push(weights[name]!);
            }
          }
          const lw = inp['loss_weight']!;
          const run = eulerSampleGrad(den.paramVelocityFn(trainables), noise, params, timesteps, () => lw.clone(), 0);
          own(run.final);
          own(run.x0);
          run.params.forEach(own);
          await check('masked.loss', [(await data(own(tf.tidy(() => tf.sum(tf.mul(run.final, lw)))))) [0]!]);
          await check('grad.noise', run.x0);
          for (let i = 0; i < trainables.length; i++) {
            const tr = trainables[i]!;
            const key = tr.kind === 'mask' ? `grad.mask.${tr.name}` : `grad.param.${tr.name}`;
            if (key in expected) await check(key, run.params[i]!);
          }
        });
      }

      den.dispose();
      tf.dispose(owned);
      tf.dispose(Object.values(weights));
      tf.dispose(Object.values(inp));
      t.diagnostic(`${checked.size} tensors checked; max abs error ${worstAbs.toExponential(2)} (${worstKey})`);
      const unchecked = Object.keys(expected).filter((k) => !checked.has(k));
      if (unchecked.length) failures.push(`expected tensors not checked: ${unchecked.join(', ')}`);
      assert.deepEqual(failures, [], `${c.name} on ${backend}:\n  ${failures.join('\n  ')}`);
      assert.equal(tf.memory().numTensors, before, 'tensors leaked');
    });
  }
}
