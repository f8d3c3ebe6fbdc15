// SLD: the presets are the published numbers; the guidance is plain CFG with a safety scale of 0
// and matches the paper's equations on hand-checked numbers; a wrapper bundle loads through
// loadTextToImage, samples deterministically, and differs from the base model only through SLD;
// with several targets the safety concept names them all.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { tf } from '../../../src/engine/tf.js';
import { useBackend } from '../../../src/engine/backend.js';
import { randnArray } from '../../../src/engine/rng.js';
import { scaledWarmup, sldCombine, type SldState } from '../../../src/sampling/sld.js';
import { SLD_PRESETS, sldWrapper } from '../../../src/erase/baselines/sld.js';
import { writeWrapperBundle } from '../../../src/erase/baselines/bundle.js';
import { loadTextToImage, readManifest } from '../../../src/generate/index.js';
import { writeTinyFluxBundle } from './fixture.js';
import { runBaseline } from '../../../src/erase/baselines/run.js';
import { erasureTarget } from '../../../src/world/targets.js';
import { tinyFlux } from './tiny.js';

test('SLD presets are the published SafetyConfig numbers', () => {
  assert.deepEqual(SLD_PRESETS, {
    WEAK: { warmupSteps: 15, guidanceScale: 20, threshold: 0.0, momentumScale: 0.0, momBeta: 0.0 },
    MEDIUM: { warmupSteps: 10, guidanceScale: 1000, threshold: 0.01, momentumScale: 0.3, momBeta: 0.4 },
    STRONG: { warmupSteps: 7, guidanceScale: 2000, threshold: 0.025, momentumScale: 0.5, momBeta: 0.7 },
    MAX: { warmupSteps: 0, guidanceScale: 5000, threshold: 1.0, momentumScale: 0.5, momBeta: 0.7 },
  });
  assert.equal(scaledWarmup(10, 6, 50), 1);
  assert.equal(scaledWarmup(15, 6, 50), 2);
  assert.equal(scaledWarmup(10, 50, 50), 10);
});

test('SLD guidance: safety scale 0 is CFG; otherwise the equations, with momentum and warm-up', async () => {
  await useBackend();
  const before = tf.memory().numTensors;
  const c = tf.tensor1d(randnArray(64, 1));
  const u = tf.tensor1d(randnArray(64, 2));
  const s = tf.tensor1d(randnArray(64, 3));
  const cfgOnly = tf.tidy(() => tf.add(u, tf.mul(tf.sub(c, u), 4)));
  const st: SldState = { momentum: null };
  for (let k = 0; k < 3; k++) {
    const p = sldCombine(c, u, s, 4, { ...SLD_PRESETS.MAX, guidanceScale: 0 }, k, st);
    const d = tf.tidy(() => tf.max(tf.abs(tf.sub(p, cfgOnly))).dataSync()[0]!);
    assert.ok(d < 1e-6, `step ${k}: ${d}`);
    p.dispose();
  }
  st.momentum?.dispose();
  // Hand-checked element values: c = 1, u = 0, s = 0.995 (diff 0.005 < threshold 0.01, scale min(0.005 * 1000, 1) = 1).
  const one = (x: number) => tf.tensor1d([x]);
  const [c1, u1, s1] = [one(1), one(0), one(0.995)];
  const p = SLD_PRESETS.MEDIUM;
  const st2: SldState = { momentum: null };
  // step 0 (< warm-up 10): CFG only, momentum <- 0.6 * gs, gs = 0.995
  const a = sldCombine(c1, u1, s1, 2, p, 0, st2);
  assert.ok(Math.abs(a.dataSync()[0]! - 2) < 1e-6);
  assert.ok(Math.abs(st2.momentum!.dataSync()[0]! - 0.6 * 0.995) < 1e-6);
  // step 10: gs = 0.999 + 0.3 * m; pred = 2 * (1 - gs)
  const m = 0.6 * 0.995;
  const gs = 0.995 + 0.3 * m;
  const b = sldCombine(c1, u1, s1, 2, p, 10, st2);
  assert.ok(Math.abs(b.dataSync()[0]! - 2 * (1 - gs)) < 1e-5, `${b.dataSync()[0]} vs ${2 * (1 - gs)}`);
  // diff above the threshold: no safety term (only momentum)
  const st3: SldState = { momentum: null };
  const far = one(0.5);
  const e = sldCombine(c1, u1, far, 2, p, 10, st3);
  assert.ok(Math.abs(e.dataSync()[0]! - 2) < 1e-6);
  tf.dispose([a, b, e, c1, u1, s1, far, st2.momentum!, st3.momentum!, c, u, s, cfgOnly]);
  assert.equal(tf.memory().numTensors, before);
});

test('an SLD wrapper bundle loads through loadTextToImage and samples deterministically', async () => {
  await useBackend();
  const dir = mkdtempSync(join(tmpdir(), 'mce-sld-'));
  try {
    const base = join(dir, 'base');
    await writeTinyFluxBundle(base, ['an emoji of a kitchen knife', 'kitchen knife', 'a cat']);
    const out = join(dir, 'sld');
    const { manifest } = readManifest(base);
    await writeWrapperBundle({ baseDir: base, baseManifest: manifest, outDir: out, wrapper: { ...sldWrapper('MAX', 'kitchen knife') }, record: { method: 'sld', concept: 'kitchen knife', settings: { preset: 'MAX' } } });
    const written = JSON.parse(readFileSync(join(out, 'manifest.json'), 'utf8')) as { wrapper: { params: unknown }; erasure: { base: { name: string } } };
    assert.deepEqual(written.wrapper.params, SLD_PRESETS.MAX);
    assert.equal(written.erasure.base.name, 'tiny-flux');
    const before = tf.memory().numTensors;
    const plain = await loadTextToImage(base);
    const safe = await loadTextToImage(out);
    const opts = { prompt: 'an emoji of a kitchen knife', seed: 3, steps: 3, cfg: 3 };
    const a = safe.generate(opts);
    const b = safe.generate(opts);
    const p = plain.generate(opts);
    assert.deepEqual(a.images[0]!.data, b.images[0]!.data, 'same seed, same pixels');
    const diff = a.images[0]!.data.reduce((acc, v, i) => acc + Math.abs(v - p.images[0]!.data[i]!), 0);
    assert.ok(diff > 0, 'SLD changes the image');
    // cfg 1: SLD is off, the wrapper samples as the base
    assert.deepEqual(safe.generate({ ...opts, cfg: 1 }).images[0]!.data, plain.generate({ ...opts, cfg: 1 }).images[0]!.data);
    plain.dispose();
    safe.dispose();
    assert.equal(tf.memory().numTensors, before);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('SLD with two targets (runBaseline): the safety concept names both targets and their members', async () => {
  await useBackend();
  const m = tinyFlux();
  const r = await runBaseline(m, 'sld', [erasureTarget('kitchen knife'), erasureTarget('vampire')], { seed: 0, steps: 3, cfg: 3, preset: 'STRONG' });
  assert.equal(r.kind, 'wrapper');
  assert.equal(r.settings['safety_concept'], 'kitchen knife, vampire, man vampire, woman vampire');
  assert.deepEqual(r.kind === 'wrapper' ? r.wrapper : null, { ...sldWrapper('STRONG', 'kitchen knife, vampire, man vampire, woman vampire') });
  const one = await runBaseline(m, 'sld', [erasureTarget('kitchen knife')], { seed: 0, steps: 3, cfg: 3 });
  assert.equal(one.settings['safety_concept'], 'kitchen knife');
  m.dispose();
});
