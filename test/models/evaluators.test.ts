// The evaluator models without training: shapes, save/load round trips, seeded augmentation,
// resampling, background masks, the CLIP vocabulary.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { tf } from '../../src/engine/tf.js';
import { useBackend } from '../../src/engine/backend.js';
import { Rng } from '../../src/engine/rng.js';
import { backboneMacs, backboneSpecs, type BackboneConfig } from '../../src/models/classifier/backbone.js';
import {
  Classifier, classifierForward, classifierSpecs, initClassifier, saveClassifier, topK, type ClassifierConfig,
} from '../../src/models/classifier/classifier.js';
import { imagesToInput, resampleRgb, tensorToInput } from '../../src/models/classifier/images.js';
import {
  ClipVocab, clipSpecs, EmojiClip, encodeImageWith, encodeTextWith, initClip, saveClip, type ClipConfig,
} from '../../src/models/clip/clip.js';
import { augmentInto, backgroundMask, DEFAULT_AUGMENT, NO_AUGMENT, resolveAugment } from '../../src/train/augment.js';
import { ClipTokenizer } from '../../src/models/text/tokenizer.js';

const dir = mkdtempSync(join(tmpdir(), 'mce-evalmodels-'));
before(async () => { await useBackend(); });
after(() => rmSync(dir, { recursive: true, force: true }));

const tiny: BackboneConfig = { size: 16, widths: [8, 16], depths: [1, 1], groups: 4 };
const clfCfg: ClassifierConfig = { backbone: tiny, concepts: ['a', 'b', 'c', 'd', 'e', 'f', 'g'], styles: ['noto', 'fluent', 'twemoji'] };

function tensors(init: Record<string, { shape: number[]; data: Float32Array }>): Record<string, tf.Tensor> {
  return Object.fromEntries(Object.entries(init).map(([k, v]) => [k, tf.tensor(v.data, v.shape)]));
}

test('backbone specs: shapes, a MAC count, and bad configs refused', () => {
  const specs = backboneSpecs(tiny);
  assert.deepEqual(specs[0], ['stem.weight', [3, 3, 3, 8]]);
  assert.ok(specs.some(([n, s]) => n === 'stages.1.down.weight' && s.join() === '3,3,8,16'));
  assert.equal(backboneMacs(tiny), 16 * 16 * 27 * 8 + 16 * 16 * 9 * 8 * 8 + 8 * 8 * 9 * 8 * 16 + 8 * 8 * 9 * 16 * 16);
  assert.throws(() => backboneSpecs({ ...tiny, widths: [6, 16] }), /multiple of groups/);
  assert.throws(() => backboneSpecs({ ...tiny, size: 15 }), /multiple of 2/);
  assert.throws(() => backboneSpecs({ ...tiny, depths: [1] }), /same, non-zero length/);
});

test('classifier forward: features [B, F], concept and style logits; init is seeded', () => {
  const a = initClassifier(clfCfg, 3);
  const b = initClassifier(clfCfg, 3);
  for (const k of Object.keys(a)) assert.deepEqual(a[k]!.data, b[k]!.data, k);
  assert.deepEqual(Object.keys(a).sort(), classifierSpecs(clfCfg).map(([n]) => n).sort());
  const p = tensors(a);
  const x = tf.randomUniform([5, 16, 16, 3], -1, 1, 'float32', 1);
  const o = classifierForward(clfCfg, p, x);
  assert.deepEqual(o.features.shape, [5, 16]);
  assert.deepEqual(o.conceptLogits.shape, [5, 7]);
  assert.deepEqual(o.styleLogits.shape, [5, 3]);
  for (const t of [o.features, o.conceptLogits, o.styleLogits]) assert.ok(Array.from(t.dataSync()).every(Number.isFinite));
  tf.dispose([x, o.features, o.conceptLogits, o.styleLogits, ...Object.values(p)]);
});

test('classifier save/load (F16) round trip: same predictions to F16 precision; bad files refused', async () => {
  const init = initClassifier(clfCfg, 5);
  const path = join(dir, 'clf.safetensors');
  await saveClassifier(path, clfCfg, init, 'F16');
  const clf = await Classifier.load(path);
  assert.deepEqual(clf.config, clfCfg);
  const x = tf.randomUniform([3, 16, 16, 3], -1, 1, 'float32', 2);
  const p = tensors(init);
  const ref = classifierForward(clfCfg, p, x);
  const got = clf.forward(x);
  const d = tf.max(tf.abs(tf.sub(ref.conceptLogits, got.conceptLogits))).dataSync()[0]!;
  assert.ok(d < 2e-2, `max logit difference ${d}`);
  const preds = clf.predict(x, 3);
  assert.equal(preds.length, 3);
  for (const pr of preds) {
    assert.equal(pr.concepts.length, 3);
    assert.ok(pr.concepts[0]!.p >= pr.concepts[1]!.p && pr.concepts[1]!.p >= pr.concepts[2]!.p);
    assert.ok(clfCfg.styles.includes(pr.style.name));
  }
  const feats = clf.features(x);
  assert.deepEqual(feats.shape, [3, 16]);
  assert.throws(() => clf.forward(tf.zeros([1, 8, 8, 3])), /input must be \[N, 16, 16, 3\]/);
  tf.dispose([x, ref.features, ref.conceptLogits, ref.styleLogits, got.features, got.conceptLogits, got.styleLogits, feats, ...Object.values(p)]);
  clf.dispose();
  // A CLIP file is not a classifier.
  const clipPath = join(dir, 'notclf.safetensors');
  await saveClip(clipPath, clipCfg(), initClip(clipCfg(), 1), 'F16');
  await assert.rejects(Classifier.load(clipPath), /not an emoji classifier/);
});

test('topK: largest first, ties to the lower index', () => {
  assert.deepEqual(topK([0.1, 0.5, 0.5, 0.2, 0.9], 3), [4, 1, 2]);
  assert.deepEqual(topK([3, 1], 5), [0, 1]);
});

test('augmentation is a pure function of the seed, stays in [-1, 1], and NO_AUGMENT is the identity', () => {
  const size = 16;
  const img = new Uint8Array(size * size * 3).fill(255);
  for (let y = 4; y < 12; y++) for (let x = 4; x < 12; x++) img.set([200, 30, 40], (y * size + x) * 3);
  const bg = backgroundMask(img, size);
  assert.equal(bg[0], 1);
  assert.equal(bg[8 * size + 8], 0);
  const a = new Float32Array(size * size * 3);
  const b = new Float32Array(size * size * 3);
  augmentInto(img, bg, size, DEFAULT_AUGMENT, new Rng(42), a, 0);
  augmentInto(img, bg, size, DEFAULT_AUGMENT, new Rng(42), b, 0);
  assert.deepEqual(a, b);
  assert.ok(a.every((v) => v >= -1 && v <= 1));
  augmentInto(img, bg, size, DEFAULT_AUGMENT, new Rng(43), b, 0);
  assert.notDeepEqual(a, b);
  augmentInto(img, bg, size, NO_AUGMENT, new Rng(1), a, 0);
  for (let i = 0; i < a.length; i++) assert.ok(Math.abs(a[i]! - (img[i]! / 127.5 - 1)) < 1e-6);
  assert.throws(() => resolveAugment({ nope: 1 } as never), /unknown field "nope"/);
});

test('background mask keeps white inside the art as art', () => {
  const size = 8;
  const img = new Uint8Array(size * size * 3).fill(255);
  // A black ring with a white centre.
  for (let y = 2; y < 6; y++) for (let x = 2; x < 6; x++) if (y === 2 || y === 5 || x === 2 || x === 5) img.set([0, 0, 0], (y * size + x) * 3);
  const m = backgroundMask(img, size);
  assert.equal(m[0], 1);
  assert.equal(m[3 * size + 3], 0, 'enclosed white is not background');
  assert.equal(m[2 * size + 2], 0);
});

test('resampling: identity, exact 2x area average, and bilinear upscaling of a constant', () => {
  const img = { width: 4, height: 4, data: Uint8Array.from({ length: 48 }, (_, i) => i) };
  assert.deepEqual(Array.from(resampleRgb(img, 4)), Array.from(img.data));
  const half = resampleRgb(img, 2);
  // Output (0,0) channel 0 averages pixels (0,0),(0,1),(1,0),(1,1): values 0, 3, 12, 15.
  assert.equal(half[0], (0 + 3 + 12 + 15) / 4);
  const up = resampleRgb({ width: 2, height: 2, data: new Uint8Array(12).fill(77) }, 5);
  assert.ok(up.every((v) => Math.abs(v - 77) < 1e-4));
  const t = imagesToInput([img, { width: 8, height: 8, data: new Uint8Array(192).fill(255) }], 4);
  assert.deepEqual(t.shape, [2, 4, 4, 3]);
  assert.ok(Math.abs(t.max().dataSync()[0]! - 1) < 1e-6);
  // A generator's NCHW [-1, 1] tensor at 2x the size is average-pooled to NHWC.
  const g = tensorToInput(tf.ones([1, 3, 8, 8]).mul(-1), 4);
  assert.deepEqual(g.shape, [1, 4, 4, 3]);
  assert.equal(g.min().dataSync()[0], -1);
  tf.dispose([t, g]);
});

function clipCfg(): ClipConfig {
  const tok = ClipTokenizer.load();
  return {
    image: tiny,
    text: { context: 12, width: 16, layers: 1, heads: 2, mlpRatio: 2 },
    embedDim: 8,
    vocab: ClipVocab.covering(['a kitchen knife', 'an emoji of a dagger in twemoji style'], tok),
  };
}

test('CLIP vocabulary: compact rows, UNK for unseen tokens, EOT position', () => {
  const cfg = clipCfg();
  const v = new ClipVocab(cfg.vocab);
  const { rows, eot, unknown } = v.encode(['a kitchen knife', 'a zebra'], 12);
  assert.equal(rows[0], v.encode(['a'], 12).rows[0]); // SOT row
  assert.equal(eot[0], 4); // SOT a kitchen knife EOT
  assert.equal(rows[eot[0]!], v.eotRow);
  assert.equal(rows[12 + 2], 1, 'zebra is UNK');
  assert.ok(unknown >= 1);
  assert.equal(rows[5], 0, 'padding after EOT');
  // Truncation keeps EOT last.
  const long = v.encode(['a kitchen knife '.repeat(10)], 12);
  assert.equal(long.eot[0], 11);
  assert.equal(long.rows[11], v.eotRow);
});

test('CLIP towers: unit-norm embeddings of the right width; save/load round trip', async () => {
  const cfg = clipCfg();
  const init = initClip(cfg, 9);
  assert.deepEqual(Object.keys(init).sort(), clipSpecs(cfg).map(([n]) => n).sort());
  const p = tensors(init);
  const x = tf.randomUniform([2, 16, 16, 3], -1, 1, 'float32', 4);
  const ie = encodeImageWith(cfg, p, x);
  const v = new ClipVocab(cfg.vocab);
  const { rows, eot } = v.encode(['a kitchen knife', 'a dagger in twemoji style', 'a dagger'], 12);
  const te = encodeTextWith(cfg, p, tf.tensor2d(rows, [3, 12], 'int32'), eot);
  assert.deepEqual(ie.shape, [2, 8]);
  assert.deepEqual(te.shape, [3, 8]);
  for (const t of [ie, te]) {
    const norms = tf.sqrt(tf.sum(tf.square(t), 1)).dataSync();
    for (const n of norms) assert.ok(Math.abs(n - 1) < 1e-4);
  }
  const path = join(dir, 'clip.safetensors');
  await saveClip(path, cfg, init, 'F16');
  const clip = await EmojiClip.load(path);
  assert.deepEqual(clip.config.vocab, cfg.vocab);
  const ie2 = clip.encodeImages(x);
  const te2 = clip.encodeTexts(['a kitchen knife', 'a dagger in twemoji style', 'a dagger']);
  assert.ok(tf.max(tf.abs(tf.sub(ie, ie2))).dataSync()[0]! < 2e-2);
  assert.ok(tf.max(tf.abs(tf.sub(te, te2))).dataSync()[0]! < 2e-2);
  // The temperature is stored in F32.
  assert.equal(clip.weights['logit_scale']!.dataSync()[0], Math.fround(Math.log(1 / 0.07)));
  tf.dispose([x, ie, te, ie2, te2, ...Object.values(p)]);
  clip.dispose();
  await assert.rejects(EmojiClip.load(join(dir, 'clf.safetensors')), /not an emoji CLIP model/);
});

test('classifier with a separate style network: style logits from it; save/load keeps it', async () => {
  const cfg: ClassifierConfig = { ...clfCfg, styleBackbone: { size: 16, widths: [8, 8], depths: [0, 1], groups: 4 } };
  const names = classifierSpecs(cfg).map(([n]) => n);
  assert.ok(names.includes('style.stem.weight'));
  assert.deepEqual(classifierSpecs(cfg).find(([n]) => n === 'style_head.weight')![1], [8, 3]);
  const init = initClassifier(cfg, 4);
  const p = tensors(init);
  const x = tf.randomUniform([2, 16, 16, 3], -1, 1, 'float32', 5);
  const o = classifierForward(cfg, p, x);
  assert.deepEqual(o.styleLogits.shape, [2, 3]);
  assert.deepEqual(o.features.shape, [2, 16]);
  const path = join(dir, 'clf-style.safetensors');
  await saveClassifier(path, cfg, init, 'F32');
  const clf = await Classifier.load(path);
  assert.deepEqual(clf.config.styleBackbone, cfg.styleBackbone);
  const got = clf.forward(x);
  assert.ok(tf.max(tf.abs(tf.sub(o.styleLogits, got.styleLogits))).dataSync()[0]! < 1e-5);
  tf.dispose([x, o.features, o.conceptLogits, o.styleLogits, got.features, got.conceptLogits, got.styleLogits, ...Object.values(p)]);
  clf.dispose();
});
