// Folding masks into weights: a folded checkpoint (reference or diffusers names, with or without a
// wrapper prefix) gives the same outputs as the original weights run with the masks applied, on the
// golden tiny FLUX cases; untouched tensors are copied byte for byte.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { tf, type Tensor } from '../../src/engine/tf.js';
import { useBackend } from '../../src/engine/backend.js';
import { Rng } from '../../src/engine/rng.js';
import { SafetensorsFile } from '../../src/io/safetensors.js';
import { loadFluxCheckpoint, saveFluxCheckpoint } from '../../src/io/checkpoint.js';
import { fluxForward, fluxMaskSpecs, type FluxParams } from '../../src/models/flux/index.js';
import { applyMasksToFile, foldIntoWeights } from '../../src/erase/mce/apply.js';
import type { HostMasks } from '../../src/erase/mce/masks.js';
import { listCases, readSafetensorsF32 } from '../golden/read.js';
import { runCli } from '../cli/run.js';
import { saveMasks } from '../../src/erase/mce/maskfile.js';

function randomKeep(cfg: FluxParams, seed: number): HostMasks {
  const rng = new Rng(seed);
  const out: HostMasks = {};
  for (const s of fluxMaskSpecs(cfg)) out[s.name] = Float32Array.from({ length: s.size }, () => (rng.uniform() < 0.3 ? 0 : 1));
  return out;
}

const cases = listCases('flux');
test('golden FLUX cases are there', () => assert.ok(cases.length > 0, 'no golden flux cases found'));

for (const c of cases) {
  test(`apply-masks on golden ${c.name}: folded weights == masked model, in reference and diffusers names`, async () => {
    await useBackend();
    const cfg = (JSON.parse((await import('node:fs')).readFileSync(join(c.dir, 'config.json'), 'utf8')) as { params: FluxParams }).params;
    const rawW = readSafetensorsF32(join(c.dir, 'weights.safetensors'));
    const rawIn = readSafetensorsF32(join(c.dir, 'inputs.safetensors'));
    const dir = mkdtempSync(join(tmpdir(), 'mce-apply-'));
    const made: Tensor[] = [];
    const T = (r: { shape: number[]; data: Float32Array }): Tensor => {
      const t = tf.tensor(r.data, r.shape);
      made.push(t);
      return t;
    };
    try {
      const keep = randomKeep(cfg, 42);
      const weights: Record<string, Tensor> = {};
      for (const [n, r] of Object.entries(rawW)) weights[n] = T(r);
      const inputs = {
        img: T(rawIn['noise']!), img_ids: T(rawIn['img_ids']!), txt: T(rawIn['txt']!), txt_ids: T(rawIn['txt_ids']!),
        timesteps: T(rawIn['t']!), y: T(rawIn['y']!), guidance: rawIn['guidance'] ? T(rawIn['guidance']) : null,
      };
      const bin = Object.fromEntries(Object.entries(keep).map(([n, v]) => [n, tf.tensor1d(v)]));
      made.push(...Object.values(bin));
      const want = fluxForward(cfg, weights, inputs, { masks: bin });
      made.push(want);
      const plain = fluxForward(cfg, weights, inputs);
      made.push(plain);
      const d0 = tf.tidy(() => tf.max(tf.abs(tf.sub(want, plain)))).dataSync()[0]!;
      assert.ok(d0 > 1e-3, 'the masks change the output');

      const check = async (w: Record<string, Tensor>, what: string): Promise<void> => {
        const got = fluxForward(cfg, w, inputs);
        const d = tf.tidy(() => tf.max(tf.abs(tf.sub(got, want)))).dataSync()[0]!;
        got.dispose();
        assert.ok(d < 1e-4, `${what}: folded vs masked differ by ${d}`);
      };
      // In memory.
      const folded = foldIntoWeights(cfg, rawW, keep);
      const fw: Record<string, Tensor> = {};
      for (const [n, r] of Object.entries(folded)) fw[n] = T(r);
      await check(fw, 'in memory');

      for (const [naming, prefix] of [['reference', ''], ['diffusers', ''], ['diffusers', 'transformer.'], ['reference', 'model.diffusion_model.']] as const) {
        const src = join(dir, `in-${naming}-${prefix}.safetensors`);
        const dst = join(dir, `out-${naming}-${prefix}.safetensors`);
        await saveFluxCheckpoint(src, rawW, cfg, { naming, prefix });
        const r = await applyMasksToFile(src, keep, dst);
        assert.equal(r.naming, naming);
        assert.equal(r.prefix, prefix);
        assert.ok(r.changed > 0 && r.changed < r.tensors);
        // Same names, shapes and dtypes; untouched tensors byte-identical.
        const a = await SafetensorsFile.open(src);
        const b = await SafetensorsFile.open(dst);
        assert.deepEqual([...b.names].sort(), [...a.names].sort());
        let same = 0;
        for (const n of a.names) {
          assert.deepEqual(b.entry(n).shape, a.entry(n).shape);
          if (Buffer.compare(await a.readRaw(n), await b.readRaw(n)) === 0) same++;
        }
        assert.ok(same >= r.tensors - r.changed, "every tensor the masks do not touch is copied byte for byte");
        await a.close();
        await b.close();
        const loaded = await loadFluxCheckpoint(dst);
        const lw: Record<string, Tensor> = {};
        for (const [n, t] of Object.entries(loaded.weights)) lw[n] = T(t);
        await check(lw, `${naming} names${prefix ? `, prefix ${prefix}` : ''}`);
      }

      // Through the CLI, from an mce mask file (reference names).
      const mpath = join(dir, 'masks.safetensors');
      await saveMasks(mpath, { keep, cfg });
      const src = join(dir, 'in-reference-.safetensors');
      const res = await runCli(['apply-masks', '--weights', src, '--masks', mpath, '--out', join(dir, 'cli.safetensors')]);
      assert.equal(res.code, 0, res.err);
      assert.match(res.err, /reference names, \d+\/\d+ tensors changed/);
      const cli = await loadFluxCheckpoint(join(dir, 'cli.safetensors'));
      const cw: Record<string, Tensor> = {};
      for (const [n, t] of Object.entries(cli.weights)) cw[n] = T(t);
      await check(cw, 'cli');
    } finally {
      tf.dispose(made);
      rmSync(dir, { recursive: true, force: true });
    }
  });
}

test('apply-masks CLI: one-line errors', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'mce-apply-cli-'));
  try {
    writeFileSync(join(dir, 'junk.safetensors'), 'not a file');
    const runs = await Promise.all([
      runCli(['apply-masks', '--masks', 'm.safetensors', '--out', 'o.safetensors']),
      runCli(['apply-masks', '--weights', 'w.safetensors', '--masks', join(dir, 'junk.safetensors'), '--out', join(dir, 'o.safetensors')]),
      runCli(['apply-masks', '--weights', 'w.safetensors', '--masks', 'm.safetensors', '--out', join(dir, 'o.bin')]),
    ]);
    assert.equal(runs[0]!.code, 2);
    assert.match(runs[0]!.err, /^mce apply-masks: --weights is required/);
    assert.equal(runs[1]!.code, 1);
    assert.match(runs[1]!.err, /^mce: .*junk\.safetensors/);
    assert.equal(runs[2]!.code, 2);
    for (const r of runs) assert.equal(r.err.trim().split('\n').length, 1, r.err);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
