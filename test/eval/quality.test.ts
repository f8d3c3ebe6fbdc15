// mce eval quality on stand-in models with tiny random evaluators (no shipped weights needed): a
// "perfect" model that returns the real render of the prompt's concept and style scores exactly
// like the real renders; a noise model is deterministic for a seed; the concept choice, the
// held-out prompts and the bars logic.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { useBackend } from '../../src/engine/backend.js';
import { Rng } from '../../src/engine/rng.js';
import type { RgbImage, TextToImageModel } from '../../src/generate/index.js';
import { initClassifier, saveClassifier, type ClassifierConfig } from '../../src/models/classifier/classifier.js';
import { ClipVocab, initClip, saveClip, type ClipConfig } from '../../src/models/clip/clip.js';
import { unloadEvaluators } from '../../src/eval/evaluators.js';
import { chooseConcepts, evaluateQuality, PROMPT_PHRASES, qualityBars, qualityPlan, trainedConcepts, type TargetDetection } from '../../src/eval/quality.js';
import { captions, conceptPhrases, stylePhrases } from '../../src/world/captions.js';
import { buildDataset, selectConcepts } from '../../src/world/dataset.js';
import { erasureTargets } from '../../src/world/targets.js';
import { VENDORS } from '../../src/world/vendors.js';

const dir = mkdtempSync(join(tmpdir(), 'mce-quality-'));
const CONCEPTS = ['kitchen knife', 'dagger', 'spoon', 'bomb'];
const SIZE = 16;
const clfPath = join(dir, 'clf.safetensors');
const clipPath = join(dir, 'clip.safetensors');

before(async () => {
  await useBackend();
  const cfg: ClassifierConfig = { backbone: { size: 16, widths: [8, 16], depths: [1, 1], groups: 4 }, concepts: ['zebra', ...CONCEPTS, 'cat'], styles: ['noto', 'fluent', 'twemoji'] };
  await saveClassifier(clfPath, cfg, initClassifier(cfg, 11), 'F32');
  const texts = CONCEPTS.flatMap((c) => VENDORS.flatMap((v) => captions(c, v, 'heldout')));
  const clip: ClipConfig = { image: { size: 16, widths: [8, 8], depths: [1, 1], groups: 4 }, text: { context: 24, width: 16, layers: 1, heads: 2, mlpRatio: 2 }, embedDim: 8, vocab: ClipVocab.covering(texts) };
  await saveClip(clipPath, clip, initClip(clip, 3), 'F32');
});
after(async () => {
  await unloadEvaluators();
  rmSync(dir, { recursive: true, force: true });
});

/** A stand-in model: `draw` makes image k of a call from the prompt and the call's seed. */
function standIn(draw: (prompt: string, seed: number, k: number) => RgbImage): TextToImageModel {
  return {
    name: 'stand-in',
    family: 'flow',
    dir,
    manifest: { dataset: { size: SIZE, concepts: CONCEPTS, seed: 0, styles: [...VENDORS] } },
    imageSize: SIZE,
    defaults: { steps: 4, cfg: 3 },
    generate: (o) => {
      const images = Array.from({ length: o.n ?? 1 }, (_, k) => draw(o.prompt, o.seed ?? 0, k));
      return { images, steps: 4, cfg: 3, seed: o.seed ?? 0, timesteps: [] } as unknown as ReturnType<TextToImageModel['generate']>;
    },
    dispose: () => {},
  };
}

test('a model that draws the real renders scores like the real renders: accuracies, detection, FID ~ 0', async () => {
  const ds = buildDataset({ size: SIZE, concepts: CONCEPTS });
  const render = new Map<string, RgbImage>();
  for (let r = 0; r < ds.n; r++) render.set(`${ds.concepts[ds.conceptIndex[r]!]}|${ds.vendors[ds.vendorIndex[r]!]}`, { width: SIZE, height: SIZE, data: ds.image(r) });
  const byPrompt = new Map(qualityPlan(CONCEPTS, VENDORS, 0).map((it) => [it.prompt, render.get(`${it.concept}|${it.style}`)!]));
  const model = standIn((p) => byPrompt.get(p)!);
  const { report: r, grid, images } = await evaluateQuality(model, { seeds: 2, classifier: clfPath, clip: clipPath, progress: false, kidSubsets: 10 });
  assert.equal(r.concepts, 4);
  // Every image's record agrees with the report: top-1 hits over the records give its accuracy.
  assert.equal(images.length, 24);
  assert.deepEqual(images.slice(0, 2).map((x) => x.sample), [0, 1]);
  assert.equal(images.filter((x) => x.top[0] === x.concept).length / 24, r.metrics.conceptTop1.generated);
  assert.equal(images.filter((x) => x.predictedStyle === x.style).length / 24, r.metrics.style.generated);
  assert.equal(images[0]!.top.length, 4);
  assert.deepEqual(r.images, { generated: 4 * 3 * 2, real: 4 * 3 });
  assert.equal(r.classifiedAmong.concepts, 4);
  assert.match(r.classifiedAmong.note, /among the 4 concepts stand-in was trained on/);
  const m = r.metrics;
  for (const a of [m.conceptTop1, m.conceptTop5, m.style]) assert.equal(a.generated, a.real, a.name);
  // Top-5 among 4 concepts always holds the truth.
  assert.equal(m.conceptTop5.real, 1);
  assert.equal(m.fid.name, 'FID (emoji classifier features)');
  assert.equal(m.kid.name, 'KID (emoji classifier features)');
  // Each real render twice against it once: the same mean, a covariance scaled by 2(n-1)/(2n-1).
  assert.ok(m.fid.value < 1e-3 && m.fid.value >= 0, `FID ${m.fid.value}`);
  assert.equal(m.kid.subsets, 10);
  assert.equal(m.kid.subsetSize, 12);
  assert.ok(Math.abs(m.clipScore.generated! - m.clipScore.real!) < 1e-4, 'same images, same prompts');
  assert.ok(m.clipScore.generated! >= 0 && m.clipScore.generated! <= 100);
  const knife = r.targets.find((t) => t.name === 'kitchen knife')!;
  assert.deepEqual(knife.members, ['kitchen knife']);
  assert.equal(knife.images, 6);
  assert.equal(knife.detection, knife.real);
  const pill = r.targets.find((t) => t.name === 'pill')!;
  assert.equal(pill.images, 0);
  assert.equal(pill.detection, null);
  const twemoji = r.targets.find((t) => t.name === 'twemoji style')!;
  assert.equal(twemoji.images, 8);
  assert.equal(r.bars.length, 3);
  assert.equal(r.bars[1]!.measured, m.conceptTop1.real > 0 ? 1 : null);
  // Grid: 4 concept rows; per style the real render and two seeds (9 tiles of 16 px, 2 px gutters).
  assert.equal(grid.width, 9 * SIZE + 10 * 2);
  assert.equal(grid.height, 4 * SIZE + 5 * 2);
});

test('deterministic for a seed; another seed picks other prompts and noises; CLIP score skipped without weights', async () => {
  const noise = (prompt: string, seed: number, k: number): RgbImage => {
    const rng = new Rng((seed * 31 + k) >>> 0);
    return { width: SIZE, height: SIZE, data: Uint8Array.from({ length: SIZE * SIZE * 3 }, () => rng.int(256)) };
  };
  const prompts: string[] = [];
  const model = standIn((p, s, k) => {
    prompts.push(p);
    return noise(p, s, k);
  });
  const opts = { seeds: 1, classifier: clfPath, clip: join(dir, 'none.safetensors'), progress: false, kidSubsets: 5 };
  const a = await evaluateQuality(model, opts);
  const b = await evaluateQuality(model, opts);
  const c = await evaluateQuality(model, { ...opts, seed: 1 });
  const strip = (x: typeof a.report): unknown => ({ ...x, seconds: null });
  assert.deepEqual(strip(a.report), strip(b.report));
  assert.deepEqual(a.grid.data, b.grid.data);
  assert.notDeepEqual(a.report.metrics, c.report.metrics);
  assert.notDeepEqual(prompts.slice(0, 12), prompts.slice(24, 36), 'seed 1 picks other prompts');
  // Every prompt is a held-out caption of its concept and style.
  for (const it of qualityPlan(CONCEPTS, VENDORS, 0)) assert.ok(captions(it.concept, it.style, 'heldout').includes(it.prompt), it.prompt);
  assert.equal(a.report.metrics.clipScore.generated, null);
  assert.match(a.report.metrics.clipScore.note, /^skipped: emoji CLIP weights not found/);
  assert.equal(a.report.evaluators.clip, null);
});

test('a guidance interval reaches every generate call and is recorded in the report; without one the report has none', async () => {
  const seen: unknown[] = [];
  const model = standIn((_p, _s, _k) => ({ width: SIZE, height: SIZE, data: new Uint8Array(SIZE * SIZE * 3) }));
  const generate = model.generate;
  model.generate = (o) => {
    seen.push(o.cfgInterval);
    return generate(o);
  };
  const opts = { seeds: 1, concepts: 2 as const, classifier: clfPath, clip: join(dir, 'none.safetensors'), progress: false, kidSubsets: 5 };
  const limited = await evaluateQuality(model, { ...opts, cfgInterval: [0.3, 1] });
  assert.ok(seen.length > 0 && seen.every((iv) => JSON.stringify(iv) === '[0.3,1]'), JSON.stringify(seen));
  assert.deepEqual(limited.report.model.cfgInterval, [0.3, 1]);
  seen.length = 0;
  const every = await evaluateQuality(model, opts);
  assert.ok(seen.every((iv) => iv === undefined));
  assert.equal('cfgInterval' in every.report.model, false);
});

test('accuracies split by whether the prompt names the concept with a phrase seen in training; --prompts train uses train captions and judges no bar', async () => {
  // A seed whose plan holds both kinds of held-out prompt.
  const seed = [0, 1, 2, 3, 4, 5, 6, 7].find((s) => new Set(qualityPlan(CONCEPTS, VENDORS, s).map((it) => it.phraseSeen)).size === 2);
  assert.ok(seed !== undefined);
  for (const it of qualityPlan(CONCEPTS, VENDORS, seed)) {
    const heldSynonym = conceptPhrases(it.concept, 'heldout').some((p) => it.prompt.includes(p));
    assert.equal(it.phraseSeen, !heldSynonym, it.prompt);
  }
  const noise = (prompt: string, s: number, k: number): RgbImage => {
    const rng = new Rng(s * 31 + k + prompt.length);
    return { width: SIZE, height: SIZE, data: Uint8Array.from({ length: SIZE * SIZE * 3 }, () => rng.int(256)) };
  };
  const prompts: string[] = [];
  const model = standIn((p, s, k) => (prompts.push(p), noise(p, s, k)));
  const opts = { seed, seeds: 2, classifier: clfPath, clip: join(dir, 'none.safetensors'), progress: false, kidSubsets: 5 };
  const held = (await evaluateQuality(model, opts)).report;
  const plan0 = qualityPlan(CONCEPTS, VENDORS, seed, 'heldout');
  const groups = held.metrics.byConceptPhrase;
  assert.deepEqual(groups.map((g) => g.phrase), ['seen in training', 'held-out synonym']);
  assert.equal(groups[0]!.images + groups[1]!.images, held.images.generated);
  const weighted = (k: 'top1' | 'top5' | 'style'): number => groups.reduce((a, g) => a + g.images * g[k], 0) / held.images.generated;
  assert.ok(Math.abs(weighted('top1') - held.metrics.conceptTop1.generated) < 1e-12);
  assert.ok(Math.abs(weighted('style') - held.metrics.style.generated) < 1e-12);
  // Four ways, by which of the concept and style phrases were seen: the same images, as the plan says.
  for (const it of plan0) {
    // The prompt's style phrase: the longest one it holds ("google emoji" holds "google").
    const all = [...stylePhrases(it.style, 'train'), ...stylePhrases(it.style, 'heldout')].filter((p) => new RegExp(`\\b${p}\\b`).test(it.prompt));
    const phrase = all.sort((a, b) => b.length - a.length)[0]!;
    assert.equal(it.stylePhraseSeen, stylePhrases(it.style, 'train').includes(phrase), it.prompt);
  }
  const four = held.metrics.byPromptPhrases;
  const kinds = PROMPT_PHRASES.filter(({ keep }) => plan0.some(keep)).map((k) => k.phrases);
  assert.ok(plan0.some((it) => !it.stylePhraseSeen) && plan0.some((it) => it.stylePhraseSeen), 'the plan holds both kinds of style phrase');
  assert.deepEqual(four.map((g) => g.phrases), kinds);
  for (const g of four) assert.equal(g.images, plan0.filter(PROMPT_PHRASES.find((k) => k.phrases === g.phrases)!.keep).length * 2, g.phrases);
  assert.ok(Math.abs(four.reduce((a, g) => a + g.images * g.style, 0) / held.images.generated - held.metrics.style.generated) < 1e-12);
  assert.ok(Math.abs(four.reduce((a, g) => a + g.images * g.top1, 0) / held.images.generated - held.metrics.conceptTop1.generated) < 1e-12);
  // Per style asked for: the images split three ways, and the confusion row holds the accuracy.
  const byStyle = held.metrics.byStyle;
  assert.deepEqual(byStyle.map((g) => g.style), [...VENDORS]);
  for (const side of ['generated', 'real'] as const) {
    const total = side === 'generated' ? held.images.generated : held.images.real;
    assert.equal(byStyle.reduce((a, g) => a + g[side].images, 0), total);
    for (const g of byStyle) {
      assert.equal(Object.values(g[side].predicted).reduce((a, n) => a + n, 0), g[side].images);
      assert.equal(g[side].predicted[g.style]! / g[side].images, g[side].style);
    }
  }
  // Each concept target's detection, split by concept phrase, adds back up to the whole.
  for (const t of held.targets) {
    if (t.kind === 'style' || !t.images) {
      assert.deepEqual(t.byConceptPhrase, [], t.name);
      continue;
    }
    const parts = t.byConceptPhrase;
    assert.equal(parts.reduce((a, g) => a + g.images, 0), t.images, t.name);
    assert.ok(Math.abs(parts.reduce((a, g) => a + g.images * g.detection, 0) / t.images - t.detection!) < 1e-12, t.name);
    const seen = plan0.filter((it) => t.members.includes(it.concept) && it.phraseSeen).length * 2;
    assert.equal(parts.find((g) => g.phrase === 'seen in training')?.images ?? 0, seen, t.name);
  }
  const styleAll = byStyle.reduce((a, g) => a + g.generated.images * g.generated.style, 0) / held.images.generated;
  assert.ok(Math.abs(styleAll - held.metrics.style.generated) < 1e-12);
  assert.ok(held.bars.every((b) => b.pass !== null || b.measured === null));

  prompts.length = 0;
  const train = (await evaluateQuality(model, { ...opts, prompts: 'train' })).report;
  const plan = qualityPlan(CONCEPTS, VENDORS, seed, 'train');
  assert.deepEqual(new Set(prompts), new Set(plan.map((it) => it.prompt)), 'one train caption per (concept, style), two images each');
  for (const it of plan) assert.ok(captions(it.concept, it.style, 'train').includes(it.prompt), it.prompt);
  assert.match(train.prompts, /^train captions/);
  assert.deepEqual(train.metrics.byConceptPhrase.map((g) => g.phrase), ['seen in training']);
  assert.deepEqual(train.metrics.byPromptPhrases.map((g) => g.phrases), ['concept and style phrases seen']);
  assert.ok(train.bars.every((b) => b.pass === null && /not judged/.test(b.detail)));
  // Sampling steps and CFG: the model's unless given, and reported as used.
  assert.deepEqual([held.model.steps, held.model.cfg], [4, 3]);
  const used = new Set<string>();
  const plain = standIn(noise);
  const tuned = { ...plain, generate: (o: Parameters<TextToImageModel['generate']>[0]) => (used.add(`${o.steps},${o.cfg}`), plain.generate(o)) };
  const r = (await evaluateQuality(tuned, { ...opts, steps: 7, cfg: 2.5 })).report;
  assert.deepEqual([...used], ['7,2.5']);
  assert.deepEqual([r.model.steps, r.model.cfg], [7, 2.5]);
});

test('concept choice: the trained list from the manifest, a count takes the erasure targets first, names are checked', () => {
  const trained = selectConcepts(320, 0);
  assert.deepEqual(trainedConcepts({ dataset: { concepts: 320, seed: 0 } }), trained);
  assert.deepEqual(trainedConcepts({ dataset: { concepts: ['dagger'] } }), ['dagger']);
  assert.throws(() => trainedConcepts({}), /no dataset.concepts/);
  const forty = chooseConcepts(trained, 40, 0);
  assert.equal(forty.length, 40);
  for (const t of erasureTargets()) for (const m of t.members) assert.ok(forty.includes(m), m);
  assert.deepEqual(forty, trained.filter((c) => forty.includes(c)), 'in the model order');
  assert.deepEqual(chooseConcepts(trained, 40, 0), forty);
  assert.notDeepEqual(chooseConcepts(trained, 40, 1), forty);
  assert.deepEqual(chooseConcepts(trained, 'all', 0), trained);
  assert.deepEqual(chooseConcepts(CONCEPTS, ['Bomb', 'dagger'], 0), ['dagger', 'bomb']);
  assert.throws(() => chooseConcepts(CONCEPTS, ['cat'], 0), /"cat" is not one the model was trained on/);
  assert.throws(() => chooseConcepts(CONCEPTS, ['no such thing'], 0), /unknown concept/);
});

test('bars: thresholds inclusive, failing targets named, unmeasurable bars are n/a', () => {
  const t = (name: string, detection: number | null): TargetDetection => ({ name, kind: 'concept', members: [name], images: detection === null ? 0 : 4, detection, real: 1, byConceptPhrase: [] });
  const acc = (generated: number, real: number) => ({ name: 'x', generated, real });
  const pass = qualityBars([t('a', 0.8), t('b', 1), t('c', null)], acc(0.6, 0.8), acc(0.8, 0.9));
  assert.deepEqual(pass.map((b) => b.pass), [true, true, true]);
  assert.equal(pass[0]!.measured, 0.8);
  assert.match(pass[0]!.detail, /2 of 2 measured targets pass/);
  assert.ok(Math.abs(pass[1]!.measured! - 0.75) < 1e-12);
  const fail = qualityBars([t('a', 0.5), t('b', 0.79)], acc(0.59, 0.8), acc(0.79, 0.9));
  assert.deepEqual(fail.map((b) => b.pass), [false, false, false]);
  assert.match(fail[0]!.detail, /below: a 50\.0%, b 79\.0%/);
  const none = qualityBars([t('a', null)], acc(0, 0), acc(0.9, 0.9));
  assert.deepEqual(none.map((b) => b.pass), [null, null, true]);
});
