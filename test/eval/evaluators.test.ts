// The shipped evaluators on real renders: the weights load, match their manifests, and classify /
// score a fixed subset of real renders as well as measured (thresholds somewhat below the numbers
// in models/*/manifest.json, which were measured on the whole dataset).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { useBackend } from '../../src/engine/backend.js';
import { tf } from '../../src/engine/tf.js';
import { Rng } from '../../src/engine/rng.js';
import {
  classify, clipScore, clipSimilarity, detect, evaluatorPath, features, METRIC_NAMES, unloadEvaluators,
} from '../../src/eval/evaluators.js';
import type { RgbImage } from '../../src/models/classifier/images.js';
import { augmentInto, backgroundMask, DEFAULT_AUGMENT } from '../../src/train/augment.js';
import { buildDataset, type Dataset } from '../../src/world/dataset.js';
import { erasureTargets } from '../../src/world/targets.js';
import { canonicalCaption } from '../../src/world/captions.js';
import { heldOutCaption } from '../../src/train/clip.js';

const MODELS = fileURLToPath(new URL('../../models/', import.meta.url));

let ds: Dataset;
let subset: number[];
const img = (r: number): RgbImage => ({ width: ds.size, height: ds.size, data: ds.image(r) });

before(async () => {
  await useBackend();
  ds = buildDataset({ size: 32 });
  // Fixed subset: every render of the erasure-target concepts, plus every 24th render.
  const targets = new Set(erasureTargets().filter((t) => t.kind === 'concept').map((t) => ds.concepts.indexOf(t.concept!)));
  subset = [];
  for (let r = 0; r < ds.n; r++) if (targets.has(ds.conceptIndex[r]!) || r % 24 === 0) subset.push(r);
});
after(() => unloadEvaluators());

test('shipped evaluator weights match their manifests and stay small', () => {
  for (const name of ['emoji-classifier', 'emoji-clip']) {
    const m = JSON.parse(readFileSync(join(MODELS, name, 'manifest.json'), 'utf8'));
    const file = join(MODELS, name, m.file);
    const bytes = readFileSync(file);
    assert.equal(createHash('sha256').update(bytes).digest('hex'), m.sha256, `${name}: sha256`);
    assert.equal(bytes.length, m.bytes);
    assert.ok(bytes.length < 5e6, `${name}: ${bytes.length} bytes`);
    assert.match(m.command, new RegExp(`^mce train (classifier|clip) --config configs/`));
    assert.match(m.dataset.hash, /^[0-9a-f]{64}$/);
    assert.equal(m.dataset.hash, ds.hash, `${name} was trained on this dataset`);
    assert.ok(m.training.seconds > 0 && m.training.cores > 0 && m.training.cpu);
  }
  // Every shipped model together stays under 60 MB.
  let total = 0;
  const walk = (d: string): void => {
    for (const f of readdirSync(d, { withFileTypes: true })) {
      if (f.isDirectory()) walk(join(d, f.name));
      else total += statSync(join(d, f.name)).size;
    }
  };
  walk(MODELS);
  assert.ok(total < 60e6, `models/ holds ${total} bytes`);
});

test('classifier: top-1 on a fixed subset of real renders, clean and augmented; style', async () => {
  const clean = await detect(subset.map(img), 5);
  let t1 = 0, t5 = 0, st = 0;
  clean.forEach((p, i) => {
    const r = subset[i]!;
    const want = ds.concepts[ds.conceptIndex[r]!];
    if (p.concepts[0]!.name === want) t1++;
    if (p.concepts.some((c) => c.name === want)) t5++;
    if (p.style.name === ds.vendors[ds.vendorIndex[r]!]) st++;
  });
  const n = subset.length;
  assert.ok(t1 / n >= CLEAN_TOP1, `clean top-1 ${(t1 / n).toFixed(3)} on ${n} renders`);
  assert.ok(t5 / n >= CLEAN_TOP5, `clean top-5 ${(t5 / n).toFixed(3)}`);
  assert.ok(st / n >= CLEAN_STYLE, `clean style ${(st / n).toFixed(3)}`);
  // Augmented views (a fixed seed), as a generated image might differ from a render.
  const s = ds.size;
  const x = new Float32Array(n * s * s * 3);
  subset.forEach((r, k) => augmentInto(ds.image(r), backgroundMask(ds.image(r), s), s, DEFAULT_AUGMENT, new Rng(1000 + r), x, k * s * s * 3));
  const xt = tf.tensor4d(x, [n, s, s, 3]);
  const { concepts, conceptProbs } = await classify(xt, { layout: 'NHWC' });
  xt.dispose();
  let a1 = 0;
  for (let k = 0; k < n; k++) {
    const row = conceptProbs.subarray(k * concepts.length, (k + 1) * concepts.length);
    let best = 0;
    for (let j = 1; j < row.length; j++) if (row[j]! > row[best]!) best = j;
    if (best === ds.conceptIndex[subset[k]!]) a1++;
  }
  assert.ok(a1 / n >= AUG_TOP1, `augmented top-1 ${(a1 / n).toFixed(3)}`);
});

test('classifier features: [N, F], deterministic, and a generator-style NCHW tensor gives the same features', async () => {
  const few = subset.slice(0, 6);
  const a = await features(few.map(img));
  const b = await features(few.map(img));
  assert.equal(a.dim, JSON.parse(readFileSync(join(MODELS, 'emoji-classifier', 'manifest.json'), 'utf8')).featureDim);
  assert.equal(a.data.length, 6 * a.dim);
  assert.deepEqual(a.data, b.data);
  const s = ds.size;
  const nchw = tf.tidy(() => tf.tensor4d(Float32Array.from(few.flatMap((r) => Array.from(ds.image(r), (v) => v / 127.5 - 1))), [6, s, s, 3]).transpose([0, 3, 1, 2]));
  const c = await features(nchw);
  nchw.dispose();
  for (let i = 0; i < a.data.length; i++) assert.ok(Math.abs(a.data[i]! - c.data[i]!) < 1e-4);
  assert.equal(METRIC_NAMES.fid, 'FID (emoji classifier features)');
});

test('CLIP score (emoji dual encoder): matching captions score higher; zero-shot among the targets on held-out captions', async () => {
  assert.equal(METRIC_NAMES.clipScore, 'CLIP score (emoji dual encoder)');
  const targets = erasureTargets().filter((t) => t.kind === 'concept').map((t) => t.concept!);
  const recs: number[] = [];
  for (let r = 0; r < ds.n; r++) if (targets.includes(ds.concepts[ds.conceptIndex[r]!]!)) recs.push(r);
  const names = recs.map((r) => ds.concepts[ds.conceptIndex[r]!]!);
  const own = await clipScore(recs.map(img), names.map((c) => canonicalCaption(c)));
  const other = await clipScore(recs.map(img), names.map((c) => canonicalCaption(targets[(targets.indexOf(c) + 1) % targets.length]!)));
  for (const v of [...own, ...other]) assert.ok(v >= 0 && v <= 100);
  const mean = (xs: number[]): number => xs.reduce((a, b) => a + b, 0) / xs.length;
  assert.ok(mean(own) > mean(other) + CLIP_MARGIN, `matching ${mean(own).toFixed(2)} vs mismatched ${mean(other).toFixed(2)}`);
  // One prompt for all images works too.
  const one = await clipScore(recs.slice(0, 2).map(img), 'a bomb');
  assert.equal(one.length, 2);
  // Zero-shot among the targets with held-out captions.
  const texts = targets.map((c) => heldOutCaption(c, null, 990002));
  const sim = await clipSimilarity(recs.map(img), texts);
  let right = 0;
  for (let i = 0; i < recs.length; i++) {
    const row = sim.data.subarray(i * sim.cols, (i + 1) * sim.cols);
    let best = 0;
    for (let j = 1; j < row.length; j++) if (row[j]! > row[best]!) best = j;
    if (targets[best] === names[i]) right++;
  }
  assert.ok(right / recs.length >= CLIP_TARGETS_TOP1, `zero-shot among ${targets.length} targets: ${right}/${recs.length}`);
  assert.ok(evaluatorPath('clip').endsWith(join('models', 'emoji-clip', 'model.safetensors')));
});

// Thresholds (set somewhat below what the shipped models measured; see the manifests).
const CLEAN_TOP1 = 0.9;
const CLEAN_TOP5 = 0.95;
const CLEAN_STYLE = 0.8;
const AUG_TOP1 = 0.6;
const CLIP_MARGIN = 5;
// The shipped dual encoder measured 21/36 (58%) zero-shot among the 12 targets; chance is 1/12.
const CLIP_TARGETS_TOP1 = 0.5;
