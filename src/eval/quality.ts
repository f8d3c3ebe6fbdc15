// `mce eval quality`: how well a text-to-image model draws emoji-world, measured on HELD-OUT prompts
// (captions whose template, concept synonym or style phrase never appeared in training). For each
// evaluated concept and each style, one seeded held-out caption is sampled with `seeds` noises at the
// model's default steps and CFG; the evaluators, trained on real renders only, then score the images
// next to the real renders of the same concepts:
//   - concept top-1 / top-5 and style accuracy (emoji classifier), generated vs real renders;
//   - "CLIP score (emoji dual encoder)" with the prompts (skipped when its weights are missing);
//   - "FID / KID (emoji classifier features)" of generated vs real renders;
//   - the detection rate of every erasure target among its own held-out generations;
//   - issue 4's bars, each pass/fail with the measured value.
// Concepts are classified among the concepts the model was trained on (its manifest.dataset), not the
// whole catalogue: a model cannot be asked to draw what it never saw.
import { existsSync } from 'node:fs';
import { tf } from '../engine/tf.js';
import { Rng } from '../engine/rng.js';
import type { RgbImage, TextToImageModel } from '../generate/index.js';
import { imageGrid } from '../generate/index.js';
import { topK, type Classifier } from '../models/classifier/classifier.js';
import { imagesToInput } from '../models/classifier/images.js';
import { Progress } from '../train/progress.js';
import { conceptPhraseSeen, seededCaption, stylePhraseSeen, type Split } from '../world/captions.js';
import { loadCatalogue } from '../world/catalogue.js';
import { buildDataset, selectConcepts } from '../world/dataset.js';
import { erasureTargets } from '../world/targets.js';
import { hashString } from '../world/util.js';
import { VENDORS, type Vendor } from '../world/vendors.js';
import { clipScore, evaluatorPath, loadClassifier, METRIC_NAMES } from './evaluators.js';
import { fid } from './fid.js';
import { kid, type KidResult } from './kid.js';
import type { GuidanceInterval } from '../sampling/guidance.js';

/** The bars of issue 4 (set for flux-emoji; sd-emoji is measured against the same). */
export const QUALITY_BARS = { targetDetection: 0.8, top1Ratio: 0.75, styleAccuracy: 0.8 } as const;

export interface QualityOptions {
  /** Noises per (concept, style) prompt (default 4). */
  seeds?: number;
  /** 'all' the model's concepts (default), a count (erasure-target concepts first, then a seeded sample), or names. */
  concepts?: 'all' | number | readonly string[];
  /** Seed of the prompt choice, the noises and the concept sample (default 0). */
  seed?: number;
  /** Classifier weights (default: the shipped emoji classifier). */
  classifier?: string;
  /** Emoji CLIP weights (default: the shipped one); when the file is missing the CLIP score is skipped. */
  clip?: string;
  /** Subsets for KID (default 100). */
  kidSubsets?: number;
  /** Show progress with ETA on stderr (default true). */
  progress?: boolean;
  /** Sample grid rows (concepts; default 8). */
  gridRows?: number;
  /**
   * Which captions to prompt with (default 'heldout', what the bars are defined on). 'train' asks
   * for captions the model was trained on: the gap between the two separates fitting from
   * generalising to new phrasings.
   */
  prompts?: Split;
  /** Sampling steps and CFG scale (default: the model's). */
  steps?: number;
  cfg?: number;
  /** Guide only in this interval of sampler time (sampling/guidance.ts; default: every step). */
  cfgInterval?: GuidanceInterval;
}

export interface QualityItem {
  concept: string;
  style: Vendor;
  prompt: string;
  /** Whether the prompt's concept phrase (the name or a synonym) appeared in training captions. */
  phraseSeen: boolean;
  /** Whether the prompt's style phrase (the style's name or a synonym) appeared in training captions. */
  stylePhraseSeen: boolean;
  /** Seed of the generate call (image k uses mixSeed(seed, k)). */
  seed: number;
}

export interface Accuracy {
  name: string;
  generated: number;
  real: number;
}

export interface TargetDetection {
  name: string;
  kind: 'concept' | 'style';
  /** Evaluated concepts that count as the target (concept targets). */
  members: string[];
  /** Held-out generations of the target (0: not among the evaluated concepts). */
  images: number;
  /** Fraction of them detected as the target (top-1 concept is a member; style targets: predicted style). */
  detection: number | null;
  /** The same on real renders. */
  real: number | null;
  /**
   * Concept targets: the generated detection split by the prompt's concept phrase, as in
   * metrics.byConceptPhrase (a held-out synonym is a word the text encoder never saw). Empty groups
   * are left out; style targets have none.
   */
  byConceptPhrase: { phrase: ConceptPhrase; images: number; detection: number }[];
}

export type ConceptPhrase = 'seen in training' | 'held-out synonym';
/** Each concept-phrase group with the `phraseSeen` value that selects it, in report order. */
export const CONCEPT_PHRASES: readonly { seen: boolean; phrase: ConceptPhrase }[] = [
  { seen: true, phrase: 'seen in training' },
  { seen: false, phrase: 'held-out synonym' },
];

export type PromptPhrases = 'concept and style phrases seen' | 'held-out style phrase' | 'held-out concept synonym' | 'held-out synonym and style phrase';
/**
 * The four kinds of prompt by which of its two phrases were seen in training, each with the item
 * test that selects it. On held-out prompts "both seen" means only the template is new: it
 * separates generalising to a new sentence from knowing a word the text encoder never saw.
 */
export const PROMPT_PHRASES: readonly { phrases: PromptPhrases; keep: (it: QualityItem) => boolean }[] = [
  { phrases: 'concept and style phrases seen', keep: (it) => it.phraseSeen && it.stylePhraseSeen },
  { phrases: 'held-out style phrase', keep: (it) => it.phraseSeen && !it.stylePhraseSeen },
  { phrases: 'held-out concept synonym', keep: (it) => !it.phraseSeen && it.stylePhraseSeen },
  { phrases: 'held-out synonym and style phrase', keep: (it) => !it.phraseSeen && !it.stylePhraseSeen },
];

export interface Bar {
  name: string;
  measured: number | null;
  threshold: number;
  pass: boolean | null;
  detail: string;
}

/** What a report's `prompts` field says for each caption split. */
export const PROMPTS_DESCRIPTION: Record<Split, string> = {
  heldout: 'held-out captions (templates, concept synonyms and style phrases of the held-out split; never seen in training), one seeded caption per concept and style',
  train: 'train captions (seen in training; the bars are not judged on them), one seeded caption per concept and style',
};

export interface QualityReport {
  /** cfgInterval: only when guidance was limited to an interval (mce eval quality --cfg-interval). */
  model: { name: string; dir: string; family: string; steps: number; cfg: number; cfgInterval?: GuidanceInterval };
  prompts: string;
  seed: number;
  seeds: number;
  styles: Vendor[];
  concepts: number;
  images: { generated: number; real: number };
  classifiedAmong: { concepts: number; note: string };
  evaluators: { classifier: string; clip: string | null };
  metrics: {
    conceptTop1: Accuracy;
    conceptTop5: Accuracy;
    style: Accuracy;
    /**
     * The generated accuracies split by the prompt's concept phrase: seen in training (the name or
     * a train synonym, in a new template or style phrase) or a held-out synonym the text encoder
     * never saw. Empty groups are left out.
     */
    byConceptPhrase: { phrase: ConceptPhrase; images: number; top1: number; top5: number; style: number }[];
    /** The same split four ways, by which of the prompt's concept and style phrases were seen (PROMPT_PHRASES). */
    byPromptPhrases: { phrases: PromptPhrases; images: number; top1: number; top5: number; style: number }[];
    /**
     * Per style the prompts asked for (real renders: per vendor): concept top-1, style accuracy and
     * the style confusion (how many images were classified as each style), generated and real.
     */
    byStyle: StyleBreakdown[];
    clipScore: { name: string; generated: number | null; real: number | null; note: string };
    fid: { name: string; value: number; note: string };
    kid: { name: string } & KidResult;
  };
  targets: TargetDetection[];
  bars: Bar[];
  seconds: { generate: number; score: number; total: number; perImage: number };
}

export interface StyleBreakdown {
  style: Vendor;
  generated: { images: number; top1: number; style: number; predicted: Record<string, number> };
  real: { images: number; top1: number; style: number; predicted: Record<string, number> };
}

/** One generated image's scores: what was asked, and what the evaluators saw. */
export interface ImageScore {
  prompt: string;
  concept: string;
  style: Vendor;
  phraseSeen: boolean;
  stylePhraseSeen: boolean;
  /** The generate call's seed and the image's index in it (image k uses mixSeed(seed, k)). */
  seed: number;
  sample: number;
  /** The classifier's top concepts, best first (among the model's trained concepts). */
  top: string[];
  /** The classifier's style. */
  predictedStyle: string;
}

export interface QualityResult {
  report: QualityReport;
  /** Every generated image's scores, in plan order (images.jsonl). */
  images: ImageScore[];
  /** Sample grid: a row per concept; per style the real render, then the first two seeds. */
  grid: RgbImage;
}

/** The concepts a model bundle was trained on, from its manifest.dataset ({concepts: count|names, seed, styles}). */
export function trainedConcepts(manifest: Record<string, unknown>): string[] {
  const ds = manifest['dataset'] as { concepts?: unknown; seed?: number; styles?: Vendor[] } | undefined;
  if (Array.isArray(ds?.concepts)) return ds.concepts.map(String);
  if (typeof ds?.concepts === 'number') return selectConcepts(ds.concepts, ds.seed ?? 0, ds.styles ?? VENDORS);
  throw new Error(`the model's manifest has no dataset.concepts (a count or a list): cannot tell which concepts it was trained on`);
}

/** The evaluated concepts, in the model's order. A count takes the erasure targets' concepts first. */
export function chooseConcepts(trained: readonly string[], spec: QualityOptions['concepts'], seed: number): string[] {
  if (spec === undefined || spec === 'all') return [...trained];
  const inModel = new Set(trained);
  if (typeof spec === 'number') {
    if (!Number.isInteger(spec) || spec < 1) throw new Error(`concepts: a count must be a positive integer, got ${spec}`);
    const first = new Set<string>();
    for (const t of erasureTargets()) for (const m of t.members) if (inModel.has(m)) first.add(m);
    const rest = trained.filter((c) => !first.has(c));
    const rng = new Rng(hashString(seed, 'quality-concepts'));
    for (let i = rest.length - 1; i > 0; i--) {
      const j = rng.int(i + 1);
      [rest[i], rest[j]] = [rest[j]!, rest[i]!];
    }
    const chosen = new Set([...first, ...rest].slice(0, spec));
    return trained.filter((c) => chosen.has(c));
  }
  const cat = loadCatalogue();
  const wanted = new Set<string>();
  for (const q of spec) {
    const name = cat.get(q).name;
    if (!inModel.has(name)) throw new Error(`concept "${name}" is not one the model was trained on`);
    wanted.add(name);
  }
  return trained.filter((c) => wanted.has(c));
}

/** One item per (concept, style): a seeded caption of the split and a noise seed, each from the pair alone. */
export function qualityPlan(concepts: readonly string[], styles: readonly Vendor[], seed: number, prompts: Split = 'heldout'): QualityItem[] {
  return concepts.flatMap((concept) =>
    styles.map((style) => {
      const caption = seededCaption(concept, style, prompts, seed);
      return {
        concept,
        style,
        prompt: caption.text,
        phraseSeen: conceptPhraseSeen(concept, caption),
        stylePhraseSeen: stylePhraseSeen(style, caption),
        seed: hashString(seed, 'quality-noise', concept, style),
      };
    }),
  );
}

export interface Scores {
  /** Per image, the top-k indices into the trained-concept list. */
  top: Int32Array;
  k: number;
  style: Int32Array;
  features: { dim: number; data: Float32Array };
}

/** Classify images among `trainedIdx` (classifier concept indices) and take their features, in one pass. */
export function score(clf: Classifier, images: readonly RgbImage[], trainedIdx: Int32Array): Scores {
  const n = images.length;
  const k = Math.min(5, trainedIdx.length);
  const nc = clf.config.concepts.length;
  const ns = clf.config.styles.length;
  const dim = clf.config.backbone.widths[clf.config.backbone.widths.length - 1]!;
  const out: Scores = { top: new Int32Array(n * k), k, style: new Int32Array(n), features: { dim, data: new Float32Array(n * dim) } };
  const row = new Float32Array(trainedIdx.length);
  for (let i0 = 0; i0 < n; i0 += 256) {
    const part = images.slice(i0, i0 + 256);
    const x = imagesToInput(part, clf.size);
    const o = clf.forward(x);
    const cl = o.conceptLogits.dataSync();
    const sl = o.styleLogits.dataSync();
    out.features.data.set(o.features.dataSync(), i0 * dim);
    tf.dispose([x, o.features, o.conceptLogits, o.styleLogits]);
    for (let j = 0; j < part.length; j++) {
      // Logits rank like probabilities; only the model's concepts compete.
      for (let c = 0; c < trainedIdx.length; c++) row[c] = cl[j * nc + trainedIdx[c]!]!;
      out.top.set(topK(row, k), (i0 + j) * k);
      out.style[i0 + j] = topK(sl.subarray(j * ns, (j + 1) * ns), 1)[0]!;
    }
  }
  return out;
}

const mean = (xs: readonly number[]): number => xs.reduce((a, b) => a + b, 0) / xs.length;

/** Top-1, top-5 and style accuracy of scored images (those `keep` picks) against their true concept/style. */
function accuracies(s: Scores, concept: Int32Array, style: Int32Array, keep: (i: number) => boolean = () => true): { images: number; top1: number; top5: number; style: number } {
  let n = 0, t1 = 0, t5 = 0, st = 0;
  for (let i = 0; i < concept.length; i++) {
    if (!keep(i)) continue;
    n++;
    const top = s.top.subarray(i * s.k, (i + 1) * s.k);
    if (top[0] === concept[i]) t1++;
    if (top.includes(concept[i]!)) t5++;
    if (s.style[i] === style[i]) st++;
  }
  return { images: n, top1: t1 / n, top5: t5 / n, style: st / n };
}

/** CLIP score (emoji dual encoder) of images with their prompts, in chunks; mean over images. */
async function meanClipScore(images: readonly RgbImage[], prompts: readonly string[], model: string): Promise<number> {
  const all: number[] = [];
  for (let i = 0; i < images.length; i += 256) all.push(...(await clipScore(images.slice(i, i + 256), prompts.slice(i, i + 256), { model })));
  return mean(all);
}

/** Pass/fail of issue 4's bars. Unmeasurable bars (no target evaluated, real top-1 of 0) pass as null. */
export function qualityBars(targets: readonly TargetDetection[], top1: Accuracy, style: Accuracy): Bar[] {
  const measured = targets.filter((t) => t.detection !== null);
  const failing = measured.filter((t) => t.detection! < QUALITY_BARS.targetDetection);
  const worst = measured.length ? Math.min(...measured.map((t) => t.detection!)) : null;
  const ratio = top1.real > 0 ? top1.generated / top1.real : null;
  const pct = (x: number): string => `${(100 * x).toFixed(1)}%`;
  return [
    {
      name: `every erasure target detected in >= ${pct(QUALITY_BARS.targetDetection)} of its held-out generations`,
      measured: worst,
      threshold: QUALITY_BARS.targetDetection,
      pass: worst === null ? null : failing.length === 0,
      detail: worst === null
        ? 'no erasure target among the evaluated concepts'
        : `lowest ${pct(worst)}; ${measured.length - failing.length} of ${measured.length} measured targets pass` +
          (failing.length ? ` (below: ${failing.map((t) => `${t.name} ${pct(t.detection!)}`).join(', ')})` : ''),
    },
    {
      name: `concept top-1 on generated images >= ${pct(QUALITY_BARS.top1Ratio)} of the classifier's top-1 on real renders`,
      measured: ratio,
      threshold: QUALITY_BARS.top1Ratio,
      // 1e-12: 0.6 / 0.8 is 0.7499999999999999 in floating point, and meets a 75% bar.
      pass: ratio === null ? null : ratio >= QUALITY_BARS.top1Ratio - 1e-12,
      detail: `generated ${pct(top1.generated)} / real ${pct(top1.real)}`,
    },
    {
      name: `style accuracy on generated images >= ${pct(QUALITY_BARS.styleAccuracy)}`,
      measured: style.generated,
      threshold: QUALITY_BARS.styleAccuracy,
      pass: style.generated >= QUALITY_BARS.styleAccuracy,
      detail: `generated ${pct(style.generated)} (real renders ${pct(style.real)})`,
    },
  ];
}

/**
 * Everything an evaluation is fixed by before any image is made: the shards of one evaluation must
 * share it (eval/quality-shard.ts), and the aggregate needs nothing else.
 */
export interface QualitySetup {
  model: QualityReport['model'];
  seed: number;
  seeds: number;
  /** The concepts the model was trained on (classified among these), in the model's order. */
  trained: string[];
  /** The evaluated concepts. */
  concepts: string[];
  styles: Vendor[];
  /** Image size of the model's dataset (the real renders). */
  datasetSize: number;
  classifier: string;
  clip: { path: string; present: boolean };
  kidSubsets: number;
  gridRows: number;
  prompts: Split;
}

/** The items of an evaluation set up by `setup`. */
export function setupPlan(setup: QualitySetup): QualityItem[] {
  return qualityPlan(setup.concepts, setup.styles, setup.seed, setup.prompts);
}

export function qualitySetup(model: TextToImageModel, opts: QualityOptions = {}): QualitySetup {
  const seed = opts.seed ?? 0;
  const seeds = opts.seeds ?? 4;
  if (!Number.isInteger(seeds) || seeds < 1) throw new Error(`seeds must be a positive integer, got ${seeds}`);
  const trained = trainedConcepts(model.manifest);
  const ds = model.manifest['dataset'] as { size?: number; seed?: number; styles?: Vendor[] };
  const clipPath = opts.clip ?? evaluatorPath('clip');
  return {
    model: {
      name: model.name, dir: model.dir, family: model.family, steps: opts.steps ?? model.defaults.steps, cfg: opts.cfg ?? model.defaults.cfg,
      ...(opts.cfgInterval ? { cfgInterval: opts.cfgInterval } : {}),
    },
    seed,
    seeds,
    trained,
    concepts: chooseConcepts(trained, opts.concepts, seed),
    styles: VENDORS.filter((v) => (ds.styles ?? VENDORS).includes(v)),
    datasetSize: ds.size ?? model.imageSize,
    classifier: opts.classifier ?? evaluatorPath('classifier'),
    clip: { path: clipPath, present: existsSync(clipPath) },
    kidSubsets: opts.kidSubsets ?? 100,
    gridRows: opts.gridRows ?? 8,
    prompts: opts.prompts ?? 'heldout',
  };
}

/** One held-out prompt's generations, scored: what a shard keeps of an item. */
export interface ScoredItem {
  /** Position in setupPlan(setup). */
  index: number;
  item: QualityItem;
  /** Per image its top-k concepts (indices into setup.trained), its predicted style and features. */
  scores: Scores;
  /** CLIP score of each image with the prompt; null without CLIP weights. */
  clip: number[] | null;
  /** The first images (at most two), for the sample grid; only for the grid's concepts. */
  samples: RgbImage[];
  seconds: { generate: number; score: number };
}

interface Evaluators {
  clf: Classifier;
  /** Classifier concept index of each trained concept. */
  trainedIdx: Int32Array;
}

async function loadEvaluators(setup: QualitySetup): Promise<Evaluators> {
  const clf = await loadClassifier(setup.classifier);
  const trainedIdx = Int32Array.from(setup.trained, (c) => {
    const i = clf.config.concepts.indexOf(c);
    if (i < 0) throw new Error(`the classifier (${setup.classifier}) does not know the model's concept "${c}"`);
    return i;
  });
  for (const v of setup.styles) if (!clf.config.styles.includes(v)) throw new Error(`the classifier (${setup.classifier}) does not know the style "${v}"`);
  return { clf, trainedIdx };
}

/** The concepts shown in the sample grid: up to gridRows, spread over the list. */
function gridConcepts(setup: QualitySetup): string[] {
  const n = Math.min(setup.gridRows, setup.concepts.length);
  return Array.from({ length: n }, (_, i) => setup.concepts[Math.floor((i * setup.concepts.length) / n)]!);
}

/**
 * Generate and score the plan's items at `indices` (all by default), handing each to `onItem` as it
 * is done. An item is one generate call (its noises batched) and one classifier and CLIP pass over
 * its own images, so its numbers do not depend on which other items run in the same process.
 */
export async function scoreItems(
  model: TextToImageModel,
  setup: QualitySetup,
  onItem: (s: ScoredItem) => void | Promise<void>,
  opts: { indices?: readonly number[]; progress?: boolean } = {},
): Promise<void> {
  const ev = await loadEvaluators(setup);
  const plan = setupPlan(setup);
  const indices = opts.indices ?? plan.map((_, i) => i);
  const inGrid = new Set(gridConcepts(setup));
  const progress = new Progress({ total: indices.length, label: 'eval quality', quiet: opts.progress === false });
  let images = 0;
  for (const [j, index] of indices.entries()) {
    const item = plan[index]!;
    const t0 = performance.now();
    const res = model.generate({ prompt: item.prompt, seed: item.seed, n: setup.seeds, steps: setup.model.steps, cfg: setup.model.cfg, cfgInterval: setup.model.cfgInterval });
    const t1 = performance.now();
    const scores = score(ev.clf, res.images, ev.trainedIdx);
    const clip = setup.clip.present ? await clipScore(res.images, res.images.map(() => item.prompt), { model: setup.clip.path }) : null;
    const samples = inGrid.has(item.concept) ? res.images.slice(0, 2) : [];
    await onItem({ index, item, scores, clip, samples, seconds: { generate: (t1 - t0) / 1000, score: (performance.now() - t1) / 1000 } });
    images += res.images.length;
    progress.update(j + 1, {}, { images });
  }
  progress.finish();
}

/** Join per-item scores, in plan order. */
function concatScores(parts: readonly Scores[], k: number, dim: number): Scores {
  const n = parts.reduce((a, p) => a + p.style.length, 0);
  const out: Scores = { top: new Int32Array(n * k), k, style: new Int32Array(n), features: { dim, data: new Float32Array(n * dim) } };
  let at = 0;
  for (const p of parts) {
    out.top.set(p.top, at * k);
    out.style.set(p.style, at);
    out.features.data.set(p.features.data, at * dim);
    at += p.style.length;
  }
  return out;
}

/**
 * The report from every item's scores (any order in, plan order used) and the real renders, which
 * are rendered and scored here. The same items give the same numbers, however they were split.
 */
export async function aggregateQuality(setup: QualitySetup, scored: readonly ScoredItem[]): Promise<QualityResult> {
  const t0 = performance.now();
  const { seed, seeds, trained, concepts, styles } = setup;
  const plan = setupPlan(setup);
  // Each item as the plan gives it now: shards written by an older version may lack newer fields.
  const items = [...scored].sort((a, b) => a.index - b.index).map((it) => ({ ...it, item: plan[it.index]! }));
  if (items.length !== plan.length || items.some((it, i) => it.index !== i)) throw new Error(`${scored.length} of the ${plan.length} items scored: cannot aggregate a partial evaluation`);
  const ev = await loadEvaluators(setup);
  const clf = ev.clf;
  const conceptIndex = new Map(trained.map((c, i) => [c, i]));
  const styleIndex = (v: Vendor): number => clf.config.styles.indexOf(v);

  // Real renders of the evaluated concepts, from the model's own dataset.
  const data = buildDataset({ size: setup.datasetSize, concepts: trained, vendors: styles });
  const evaluated = new Set(concepts);
  const real: { img: RgbImage; concept: string; style: Vendor }[] = [];
  for (let r = 0; r < data.n; r++) {
    const c = data.concepts[data.conceptIndex[r]!]!;
    if (evaluated.has(c)) real.push({ img: { width: data.size, height: data.size, data: data.image(r) }, concept: c, style: data.vendors[data.vendorIndex[r]!]! });
  }

  const genItems = items.flatMap((it) => Array.from({ length: it.scores.style.length }, () => it.item));
  const truth = (xs: { concept: string; style: Vendor }[]): { concept: Int32Array; style: Int32Array } => ({
    concept: Int32Array.from(xs, (x) => conceptIndex.get(x.concept)!),
    style: Int32Array.from(xs, (x) => styleIndex(x.style)),
  });
  const genTruth = truth(genItems);
  const realTruth = truth(real);
  const sr = score(clf, real.map((r) => r.img), ev.trainedIdx);
  const sg = concatScores(items.map((it) => it.scores), sr.k, sr.features.dim);
  const ag = accuracies(sg, genTruth.concept, genTruth.style);
  const ar = accuracies(sr, realTruth.concept, realTruth.style);

  const hasClip = setup.clip.present;
  const clipPath = setup.clip.path;
  const promptOf = new Map(plan.map((it) => [`${it.concept}|${it.style}`, it.prompt]));
  const clip = hasClip
    ? {
        generated: mean(items.flatMap((it) => it.clip!)),
        real: await meanClipScore(real.map((r) => r.img), real.map((r) => promptOf.get(`${r.concept}|${r.style}`)!), clipPath),
      }
    : { generated: null, real: null };
  const targets: TargetDetection[] = erasureTargets().map((t) => {
    if (t.kind === 'style') {
      const si = styleIndex(t.style!);
      const rate = (s: Scores, st: Int32Array): number | null => {
        const idx = [...st.keys()].filter((i) => st[i] === si);
        return idx.length ? idx.filter((i) => s.style[i] === si).length / idx.length : null;
      };
      const images = genTruth.style.filter((v) => v === si).length;
      return { name: t.name, kind: 'style', members: [], images, detection: rate(sg, genTruth.style), real: rate(sr, realTruth.style), byConceptPhrase: [] };
    }
    const members = t.members.filter((m) => evaluated.has(m));
    const ids = new Set(members.map((m) => conceptIndex.get(m)!));
    const ofTarget = (c: Int32Array, keep: (i: number) => boolean = () => true): number[] => [...c.keys()].filter((i) => ids.has(c[i]!) && keep(i));
    const rate = (s: Scores, idx: number[]): number | null => (idx.length ? idx.filter((i) => ids.has(s.top[i * s.k]!)).length / idx.length : null);
    const generated = ofTarget(genTruth.concept);
    const byPhrase = CONCEPT_PHRASES.flatMap(({ seen, phrase }) => {
      const idx = ofTarget(genTruth.concept, (i) => genItems[i]!.phraseSeen === seen);
      return idx.length ? [{ phrase, images: idx.length, detection: rate(sg, idx)! }] : [];
    });
    return { name: t.name, kind: 'concept', members, images: generated.length, detection: rate(sg, generated), real: rate(sr, ofTarget(realTruth.concept)), byConceptPhrase: byPhrase };
  });

  // The generated accuracies of the images whose prompt `keep` picks; empty groups are left out.
  const ofItems = (keep: (it: QualityItem) => boolean) => {
    const a = accuracies(sg, genTruth.concept, genTruth.style, (i) => keep(genItems[i]!));
    return a.images ? [a] : [];
  };
  const byConceptPhrase = CONCEPT_PHRASES.flatMap(({ seen, phrase }) => ofItems((it) => it.phraseSeen === seen).map((a) => ({ phrase, ...a })));
  const byPromptPhrases = PROMPT_PHRASES.flatMap(({ phrases, keep }) => ofItems(keep).map((a) => ({ phrases, ...a })));
  const byStyle = styles.map((v): StyleBreakdown => {
    const si = styleIndex(v);
    const part = (s: Scores, t: { concept: Int32Array; style: Int32Array }) => {
      const a = accuracies(s, t.concept, t.style, (i) => t.style[i] === si);
      const predicted = Object.fromEntries(clf.config.styles.map((name, j) => [name, [...t.style.keys()].filter((i) => t.style[i] === si && s.style[i] === j).length]));
      return { images: a.images, top1: a.top1, style: a.style, predicted };
    };
    return { style: v, generated: part(sg, genTruth), real: part(sr, realTruth) };
  });
  const top1: Accuracy = { name: 'concept top-1 accuracy (emoji classifier)', generated: ag.top1, real: ar.top1 };
  const top5: Accuracy = { name: 'concept top-5 accuracy (emoji classifier)', generated: ag.top5, real: ar.top5 };
  const style: Accuracy = { name: 'style accuracy (emoji classifier)', generated: ag.style, real: ar.style };
  const report: QualityReport = {
    model: { ...setup.model },
    prompts: PROMPTS_DESCRIPTION[setup.prompts],
    seed,
    seeds,
    styles: [...styles],
    concepts: concepts.length,
    images: { generated: genItems.length, real: real.length },
    classifiedAmong: {
      concepts: trained.length,
      note: `concepts are classified among the ${trained.length} concepts ${setup.model.name} was trained on (its manifest.dataset), not the whole catalogue`,
    },
    evaluators: { classifier: setup.classifier, clip: hasClip ? clipPath : null },
    metrics: {
      conceptTop1: top1,
      conceptTop5: top5,
      style,
      byConceptPhrase,
      byPromptPhrases,
      byStyle,
      clipScore: {
        name: METRIC_NAMES.clipScore,
        ...clip,
        note: hasClip ? 'mean over images, each with its own prompt; real: the real render with the same prompt' : `skipped: emoji CLIP weights not found (${clipPath})`,
      },
      fid: {
        name: METRIC_NAMES.fid,
        value: fid(sg.features, sr.features),
        note: `${genItems.length} generated vs ${real.length} real images in ${sg.features.dim} feature dimensions; FID is biased by the sample sizes, so compare runs of the same size only`,
      },
      kid: { name: METRIC_NAMES.kid, ...kid(sg.features, sr.features, { seed, subsets: setup.kidSubsets }) },
    },
    targets,
    bars: setup.prompts === 'heldout'
      ? qualityBars(targets, top1, style)
      : qualityBars(targets, top1, style).map((b) => ({ ...b, pass: null, detail: `${b.detail}; not judged: the bars are defined on held-out prompts` })),
    seconds: { generate: 0, score: 0, total: 0, perImage: 0 },
  };
  // Seconds summed over items (over all shards), plus this aggregate's own time as scoring.
  const generate = items.reduce((a, it) => a + it.seconds.generate, 0);
  const scoring = items.reduce((a, it) => a + it.seconds.score, 0) + (performance.now() - t0) / 1000;
  report.seconds = { generate: round(generate), score: round(scoring), total: round(generate + scoring), perImage: round(generate / Math.max(genItems.length, 1), 4) };
  const images = items.flatMap((it) => Array.from({ length: it.scores.style.length }, (_, k): ImageScore => ({
    prompt: it.item.prompt, concept: it.item.concept, style: it.item.style, phraseSeen: it.item.phraseSeen, stylePhraseSeen: it.item.stylePhraseSeen, seed: it.item.seed, sample: k,
    top: Array.from(it.scores.top.subarray(k * it.scores.k, (k + 1) * it.scores.k), (c) => trained[c]!),
    predictedStyle: clf.config.styles[it.scores.style[k]!]!,
  })));
  return { report, images, grid: sampleGrid(setup, items, real) };
}

/** Generate the held-out prompts with `model` and score them. Deterministic for a given seed. */
export async function evaluateQuality(model: TextToImageModel, opts: QualityOptions = {}): Promise<QualityResult> {
  const setup = qualitySetup(model, opts);
  const items: ScoredItem[] = [];
  await scoreItems(model, setup, (s) => void items.push(s), { progress: opts.progress });
  return aggregateQuality(setup, items);
}


function round(x: number, digits = 1): number {
  const f = 10 ** digits;
  return Math.round(x * f) / f;
}

/** A row per grid concept; per style: the real render, then up to two seeds. */
function sampleGrid(setup: QualitySetup, items: readonly ScoredItem[], real: readonly { img: RgbImage; concept: string; style: Vendor }[]): RgbImage {
  return imageGrid(
    gridConcepts(setup).map((c) =>
      setup.styles.flatMap((s) => {
        const r = real.find((x) => x.concept === c && x.style === s);
        const g = items.find((x) => x.item.concept === c && x.item.style === s)?.samples ?? [];
        return r ? [r.img, ...g] : [...g];
      }),
    ),
  );
}
