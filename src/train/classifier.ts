// `mce train classifier`: the emoji-world concept + style classifier, trained on real renders only
// (never on generated images), with strong augmentation (augment.ts).
//
// Splits and what is reported (see the manifest's "quality"):
//   - real renders: the clean renders of the training vendors (what it was trained on);
//   - augmented views: `eval.views` augmented views of every training render drawn with `eval.seed`,
//     a seed no training batch uses (held-out views);
//   - held-out vendor (holdoutVendor set): trained on the other vendors only, tested on the clean
//     renders (and augmented views) of the held-out one: how well a concept transfers to an art
//     style the model never saw. This is a separate run with its own config, and writes a report;
//   - style on held-out concepts: the style head is trained without the concepts of a seeded
//     `styleHoldout.fraction` of the catalogue, then tested on their renders.
import { mkdirSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { tf, type Tensor } from '../engine/tf.js';
import { currentBackend } from '../engine/backend.js';
import { Rng, mixSeed } from '../engine/rng.js';
import { backboneMacs, type BackboneConfig, type Weights } from '../models/classifier/backbone.js';
import {
  classifierForward, classifierSpecs, initClassifier, saveClassifier, styleForward, topK, type ClassifierConfig,
} from '../models/classifier/classifier.js';
import type { FloatDtype } from '../io/dtypes.js';
import { buildDataset, type Dataset } from '../world/dataset.js';
import { erasureTargets } from '../world/targets.js';
import { VENDORS, type Vendor } from '../world/vendors.js';
import { hashString } from '../world/util.js';
import { augmentInto, backgroundMask, resolveAugment, type AugmentConfig } from './augment.js';
import { augment, backbone, conceptsField, count, floatDtype, fraction, kind, name, nonNegative, parseConfig, path, positive, positiveInt, schedule, vendor, z } from './config-schema.js';
import { AdamW, type Params } from './optim.js';
import { epochBatch, train } from './loop.js';
import {
  datasetSummary, fileBytes, machineInfo, readConfigFile, round, sha256File, trainCommand, warmupCosineSchedule, writeJson,
} from './evaluator-common.js';

export interface ClassifierTrainConfig {
  kind: 'classifier';
  /** Model name, e.g. "emoji-classifier". */
  name: string;
  /** Run folder: checkpoints. */
  run: string;
  /** Output folder for the shipped model (model.safetensors + manifest.json), or null for an evaluation-only run. */
  out: string | null;
  /** Where an evaluation-only run (out null) writes its metrics (JSON). */
  report?: string;
  /** Reports of held-out-vendor runs to embed in the manifest (read if present). */
  heldOutVendorReports?: string[];
  /** concepts: the whole catalogue (default), a list of names, or a count (see buildDataset); tests use a few. */
  dataset: { size: number; concepts?: number | string[] };
  /** Train without this vendor and test on it (null: train on all vendors). */
  holdoutVendor: Vendor | null;
  styleHoldout: { fraction: number; seed: number };
  backbone: BackboneConfig;
  train: {
    steps: number;
    batch: number;
    lr: number;
    warmup: number;
    weightDecay: number;
    labelSmoothing: number;
    styleWeight: number;
    featureDropout: number;
    maxGradNorm: number;
    seed: number;
    checkpointEvery: number;
    evalEvery: number;
  };
  augment?: Partial<AugmentConfig>;
  /** A second concept stage from the stage-1 weights: its own schedule and (milder) augmentation. */
  finetune?: {
    train: ClassifierTrainConfig['train'];
    augment?: Partial<AugmentConfig>;
  };
  /**
   * A dedicated style network, trained after the concept stage (skipped in held-out-vendor runs,
   * where style is undefined). Without it the style head shares the concept features.
   */
  style?: {
    backbone: BackboneConfig;
    train: {
      steps: number;
      batch: number;
      lr: number;
      warmup: number;
      weightDecay: number;
      labelSmoothing: number;
      maxGradNorm: number;
      seed: number;
      checkpointEvery: number;
      evalEvery: number;
    };
    augment?: Partial<AugmentConfig>;
  };
  /** limit: evaluate on about this many records only (every k-th; tests); default all. */
  eval: { seed: number; views: number; batch: number; quickImages: number; limit?: number };
  dtype: FloatDtype;
}

/** The training schedule of a concept stage (train and finetune.train). */
const classifierTrainSchema = () =>
  schedule({
    labelSmoothing: fraction(),
    styleWeight: nonNegative(),
    featureDropout: fraction(),
    maxGradNorm: positive(),
    checkpointEvery: count(),
    evalEvery: count(),
  });

/** The config's schema (errors name the field: `train.lr: expected a positive number`). */
export const CLASSIFIER_CONFIG_SCHEMA: z.ZodType<ClassifierTrainConfig> = z.strictObject({
  kind: kind('classifier'),
  name: name(),
  run: path(),
  out: path().nullable(),
  report: path().optional(),
  heldOutVendorReports: z.array(path()).optional(),
  dataset: z.strictObject({ size: positiveInt(), concepts: conceptsField().optional() }),
  holdoutVendor: vendor().nullable(),
  styleHoldout: z.strictObject({ fraction: fraction(), seed: count() }),
  backbone: backbone(),
  train: classifierTrainSchema(),
  augment: augment().optional(),
  finetune: z.strictObject({ train: classifierTrainSchema(), augment: augment().optional() }).optional(),
  style: z
    .strictObject({
      backbone: backbone(),
      train: classifierTrainSchema().omit({ styleWeight: true, featureDropout: true }),
      augment: augment().optional(),
    })
    .optional(),
  eval: z.strictObject({ seed: count(), views: positiveInt(), batch: positiveInt(), quickImages: positiveInt(), limit: positiveInt().optional() }),
  dtype: floatDtype(),
});

export function validateClassifierConfig(c: ClassifierTrainConfig, where: string): void {
  parseConfig(CLASSIFIER_CONFIG_SCHEMA, c, where, 'classifier');
  // What a schema of single fields cannot say: fields that must agree.
  const fail = (m: string): never => { throw new Error(`${where}: ${m}`); };
  if (c.out === null && c.report === undefined) fail('report: an evaluation-only run (out null) needs "report"');
  if (c.backbone.size !== c.dataset.size) fail(`backbone.size: must equal dataset.size (${c.dataset.size}), got ${c.backbone.size}`);
  if (c.style && c.style.backbone.size !== c.dataset.size) fail(`style.backbone.size: must equal dataset.size (${c.dataset.size}), got ${c.style.backbone.size}`);
}

export interface ClassifierRunOptions {
  /** Stop at this step (a later run resumes); default: the configured total. */
  maxSteps?: number;
  /** The config file path, recorded in the manifest's command. */
  configPath?: string;
  /** Print progress (default true). */
  progress?: boolean;
  log?: (s: string) => void;
  /** Dataset cache root (tests). */
  cacheDir?: string;
}

/** The data a classifier run sees: which records train, which test, and the style mask. */
export interface ClassifierSplits {
  train: number[];
  heldOutVendor: number[];
  /** Per concept index: true when the style head never sees it. */
  styleHeld: boolean[];
}

export function classifierSplits(ds: Dataset, holdoutVendor: Vendor | null, styleHoldout: { fraction: number; seed: number }): ClassifierSplits {
  const hv = holdoutVendor === null ? -1 : ds.vendors.indexOf(holdoutVendor);
  const train: number[] = [];
  const held: number[] = [];
  for (let i = 0; i < ds.n; i++) (ds.vendorIndex[i] === hv ? held : train).push(i);
  // The style hold-out: the concepts with the smallest seeded hashes, an exact fraction.
  const k = Math.round(styleHoldout.fraction * ds.concepts.length);
  const ranked = ds.concepts.map((name, i) => [i, hashString(styleHoldout.seed, 'style-holdout', name)] as const).sort((a, b) => a[1] - b[1] || a[0] - b[0]);
  const styleHeld = new Array<boolean>(ds.concepts.length).fill(false);
  for (const [i] of ranked.slice(0, k)) styleHeld[i] = true;
  return { train, heldOutVendor: held, styleHeld };
}

/** Accuracy counts over a set of images. */
export interface AccuracyReport {
  images: number;
  top1: number;
  top5: number;
  style: number;
}

interface Batch {
  x: Tensor;
  concept: Tensor;
  style: Tensor;
  styleMask: Tensor;
}

/** Views of dataset records as model input: clean (seed null) or augmented with (seed, view). */
export function recordViews(
  ds: Dataset,
  masks: Uint8Array[],
  idx: readonly number[],
  aug: AugmentConfig,
  seed: number | null,
  view = 0,
): Float32Array {
  const s = ds.size;
  const per = s * s * 3;
  const x = new Float32Array(idx.length * per);
  idx.forEach((r, k) => {
    if (seed === null) {
      const img = ds.image(r);
      for (let j = 0; j < per; j++) x[k * per + j] = img[j]! / 127.5 - 1;
    } else {
      augmentInto(ds.image(r), masks[r]!, s, aug, new Rng(mixSeed(seed, r, view)), x, k * per);
    }
  });
  return x;
}

/**
 * Evaluate weights on records: top-1/top-5 concept accuracy and style accuracy, clean (seed null)
 * or on `views` augmented views per record. Also returns per-record top-1 hits (for per-target tables).
 */
export function evaluateRecords(
  cfg: ClassifierConfig,
  weights: Weights,
  ds: Dataset,
  masks: Uint8Array[],
  idx: readonly number[],
  aug: AugmentConfig,
  seed: number | null,
  views: number,
  batch: number,
): AccuracyReport & { hits: Float32Array; styleHits: Float32Array } {
  let t1 = 0, t5 = 0, st = 0, n = 0;
  const hits = new Float32Array(idx.length);
  const styleHits = new Float32Array(idx.length);
  const s = ds.size;
  const nv = seed === null ? 1 : views;
  for (let v = 0; v < nv; v++) {
    for (let i = 0; i < idx.length; i += batch) {
      const part = idx.slice(i, i + batch);
      const data = recordViews(ds, masks, part, aug, seed, v);
      const [cl, sl] = tf.tidy(() => {
        const o = classifierForward(cfg, weights, tf.tensor4d(data, [part.length, s, s, 3]));
        return [o.conceptLogits, o.styleLogits];
      });
      const c = cl!.dataSync() as Float32Array;
      const sy = sl!.dataSync() as Float32Array;
      tf.dispose([cl!, sl!]);
      const nc = cfg.concepts.length;
      const ns = cfg.styles.length;
      part.forEach((r, k) => {
        const top = topK(c.subarray(k * nc, (k + 1) * nc), 5);
        const want = ds.conceptIndex[r]!;
        if (top[0] === want) { t1++; hits[i + k]! += 1 / nv; }
        if (top.includes(want)) t5++;
        const srow = sy.subarray(k * ns, (k + 1) * ns);
        const sp = topK(srow, 1)[0]!;
        if (cfg.styles[sp] === ds.vendors[ds.vendorIndex[r]!]) { st++; styleHits[i + k]! += 1 / nv; }
        n++;
      });
    }
  }
  return { images: n, top1: n ? t1 / n : 0, top5: n ? t5 / n : 0, style: n ? st / n : 0, hits, styleHits };
}

/** About `n` evenly spaced items of a list (all of it when shorter). */
function thinTo<T>(list: readonly T[], n: number): T[] {
  if (list.length <= n) return [...list];
  const k = Math.ceil(list.length / n);
  return list.filter((_, i) => i % k === 0);
}

function pick(r: AccuracyReport & { hits?: unknown; styleHits?: unknown }): AccuracyReport {
  return { images: r.images, top1: round(r.top1), top5: round(r.top5), style: round(r.style) };
}

/** Run (or resume) a classifier config; writes the model and manifest, or the report. */
export async function trainClassifier(cfg: ClassifierTrainConfig, opts: ClassifierRunOptions = {}): Promise<Record<string, unknown>> {
  const where = opts.configPath ?? 'classifier config';
  validateClassifierConfig(cfg, where);
  const log = opts.log ?? ((s: string) => process.stderr.write(s + '\n'));
  const t = cfg.train;
  const aug = resolveAugment(cfg.augment);

  const ds = buildDataset({
    size: cfg.dataset.size,
    ...(cfg.dataset.concepts !== undefined ? { concepts: cfg.dataset.concepts } : {}),
    ...(opts.cacheDir ? { cacheDir: opts.cacheDir } : {}),
    onProgress: (d, n) => { if (d === n || d % 1024 === 0) log(`rendering dataset: ${d}/${n}`); },
  });
  let modelCfg: ClassifierConfig = { backbone: cfg.backbone, concepts: [...ds.concepts], styles: [...ds.vendors] };
  const splits = classifierSplits(ds, cfg.holdoutVendor, cfg.styleHoldout);
  const masks: Uint8Array[] = [];
  for (let i = 0; i < ds.n; i++) masks.push(backgroundMask(ds.image(i), ds.size));
  log(`${cfg.name}: ${ds.n} renders (${splits.train.length} train${cfg.holdoutVendor ? `, ${splits.heldOutVendor.length} held-out ${cfg.holdoutVendor}` : ''}), ` +
    `${ds.concepts.length} concepts, ${ds.vendors.length} styles, dataset ${ds.hash.slice(0, 12)}; ` +
    `${(backboneMacs(cfg.backbone) / 1e6).toFixed(1)}M MACs/image, backend ${currentBackendSafe()}`);

  const init = initClassifier(modelCfg, t.seed);
  const params: Params = {};
  for (const [name, shape] of classifierSpecs(modelCfg)) params[name] = tf.variable(tf.tensor(init[name]!.data, shape, 'float32'), true, `clf/${name}`);
  const total = opts.maxSteps !== undefined ? Math.min(t.steps, opts.maxSteps) : t.steps;
  const nc = modelCfg.concepts.length;
  const ns = modelCfg.styles.length;
  const s = ds.size;
  // A fixed sample for the quick evaluation logged during training.
  const quick = splits.train.filter((_, i) => i % Math.max(1, Math.floor(splits.train.length / cfg.eval.quickImages)) === 0).slice(0, cfg.eval.quickImages);

  type StageTrain = ClassifierTrainConfig['train'];
  /** One concept-training stage over `params` (stage 1, then the optional fine-tuning stage). */
  const conceptStage = async (st: {
    label: string; dir: string; tr: StageTrain; aug: AugmentConfig; salt: number; total: number; hash: Record<string, unknown>;
  }) => {
    const tr = st.tr;
    const optimizer = new AdamW(params, {
      lr: tr.lr,
      weightDecay: tr.weightDecay,
      maxGradNorm: tr.maxGradNorm,
      schedule: warmupCosineSchedule(tr.warmup, tr.steps),
      groups: [{ name: 'no-decay', match: /(norm\.(weight|bias)|\.bias)$/, weightDecay: 0 }],
    });
    try {
      return await train<Batch>({
        params,
        optimizer,
        steps: st.total,
        seed: tr.seed,
        dir: st.dir,
        checkpointEvery: tr.checkpointEvery,
        keepCheckpoints: 2,
        config: st.hash,
        batchFn: (ctx) => {
          const { indices } = epochBatch(splits.train.length, tr.batch, tr.seed, ctx.index);
          const recs = indices.map((i) => splits.train[i]!);
          const x = new Float32Array(recs.length * s * s * 3);
          recs.forEach((r, k) => augmentInto(ds.image(r), masks[r]!, s, st.aug, new Rng(mixSeed(tr.seed, st.salt, ctx.index, k)), x, k * s * s * 3));
          return {
            x: tf.tensor4d(x, [recs.length, s, s, 3]),
            concept: tf.tensor1d(recs.map((r) => ds.conceptIndex[r]!), 'int32'),
            style: tf.tensor1d(recs.map((r) => ds.vendorIndex[r]!), 'int32'),
            styleMask: tf.tensor1d(recs.map((r) => (splits.styleHeld[ds.conceptIndex[r]!] ? 0 : 1)), 'float32'),
          };
        },
        lossFn: (p, b, ctx) => {
          const o = classifierForward(modelCfg, p, b.x, { rate: tr.featureDropout, seed: ctx.seed });
          const ls = tr.labelSmoothing;
          const target = tf.add(tf.mul(tf.oneHot(b.concept, nc).toFloat(), 1 - ls), ls / nc);
          const concept = tf.neg(tf.mean(tf.sum(tf.mul(target, tf.logSoftmax(o.conceptLogits)), 1))) as tf.Scalar;
          const perStyle = tf.neg(tf.sum(tf.mul(tf.oneHot(b.style, ns).toFloat(), tf.logSoftmax(o.styleLogits)), 1));
          const style = tf.div(tf.sum(tf.mul(perStyle, b.styleMask)), tf.maximum(tf.sum(b.styleMask), 1)) as tf.Scalar;
          const loss = tf.add(concept, tf.mul(style, tr.styleWeight)) as tf.Scalar;
          return { loss, terms: { concept, style } };
        },
        evalEvery: tr.evalEvery,
        onEval: ({ step, params: p, progress }) => {
          if (step === tr.steps) return; // the full evaluation follows
          const r = evaluateRecords(modelCfg, p, ds, masks, quick, aug, cfg.eval.seed, 1, cfg.eval.batch);
          progress.log(`${st.label} eval @${step}: augmented views (${r.images}) top1 ${(100 * r.top1).toFixed(1)}% top5 ${(100 * r.top5).toFixed(1)}% style ${(100 * r.style).toFixed(1)}%`);
        },
        progress: opts.progress === false ? false : { label: st.label },
      });
    } finally {
      optimizer.dispose();
    }
  };

  const result = await conceptStage({
    label: cfg.name,
    dir: cfg.run,
    tr: t,
    aug,
    salt: 0x61756720,
    total,
    hash: {
      kind: cfg.kind, dataset: { ...cfg.dataset, hash: ds.hash }, holdoutVendor: cfg.holdoutVendor, styleHoldout: cfg.styleHoldout,
      backbone: cfg.backbone, train: t, augment: aug, concepts: nc,
    },
  });
  const ft = cfg.finetune;
  const allSteps = t.steps + (ft ? ft.train.steps : 0) + (cfg.style && cfg.holdoutVendor === null ? cfg.style.train.steps : 0);
  if (result.step < t.steps) {
    log(`${cfg.name}: stopped at step ${result.step}/${t.steps}; run the same command again to continue`);
    tf.dispose(Object.values(params));
    return { step: result.step, total: allSteps, complete: false };
  }
  let trainingSeconds = result.elapsedSeconds;
  const stages: Record<string, { steps: number; seconds: number }> = { concept: { steps: t.steps, seconds: Math.round(result.elapsedSeconds) } };

  // Fine-tuning: a second cosine cycle from the stage-1 weights, at a lower rate with milder augmentation.
  if (ft) {
    const ftAug = resolveAugment(ft.augment);
    const ftTotal = Math.min(ft.train.steps, opts.maxSteps !== undefined ? Math.max(0, opts.maxSteps - t.steps) : ft.train.steps);
    const r2 = await conceptStage({
      label: `${cfg.name}/finetune`,
      dir: join(cfg.run, 'finetune'),
      tr: ft.train,
      aug: ftAug,
      salt: 0x66696e65,
      total: ftTotal,
      hash: {
        kind: 'classifier-finetune', dataset: { ...cfg.dataset, hash: ds.hash }, holdoutVendor: cfg.holdoutVendor, styleHoldout: cfg.styleHoldout,
        backbone: cfg.backbone, from: { train: t, augment: aug }, train: ft.train, augment: ftAug, concepts: nc,
      },
    });
    if (r2.step < ft.train.steps) {
      log(`${cfg.name}: fine-tuning stopped at step ${r2.step}/${ft.train.steps}; run the same command again to continue`);
      tf.dispose(Object.values(params));
      return { step: t.steps + r2.step, total: allSteps, complete: false };
    }
    trainingSeconds += r2.elapsedSeconds;
    stages['finetune'] = { steps: ft.train.steps, seconds: Math.round(r2.elapsedSeconds) };
  }

  // The dedicated style network (shipped model): trained after the concept stage, on the same
  // records, without the style-held-out concepts.
  if (cfg.style && cfg.holdoutVendor === null) {
    const st = cfg.style;
    const sAug = resolveAugment(st.augment);
    const sCfg: ClassifierConfig = { ...modelCfg, styleBackbone: st.backbone };
    const sInit = initClassifier(sCfg, st.train.seed);
    const sParams: Params = {};
    for (const [name, shape] of classifierSpecs(sCfg)) {
      if (name.startsWith('style.') || name.startsWith('style_head.')) sParams[name] = tf.variable(tf.tensor(sInit[name]!.data, shape, 'float32'), true, `clfstyle/${name}`);
    }
    const sOpt = new AdamW(sParams, {
      lr: st.train.lr,
      weightDecay: st.train.weightDecay,
      maxGradNorm: st.train.maxGradNorm,
      schedule: warmupCosineSchedule(st.train.warmup, st.train.steps),
      groups: [{ name: 'no-decay', match: /(norm\.(weight|bias)|\.bias)$/, weightDecay: 0 }],
    });
    const styleTrain = splits.train.filter((r) => !splits.styleHeld[ds.conceptIndex[r]!]);
    const before = t.steps + (ft ? ft.train.steps : 0);
    const left = opts.maxSteps !== undefined ? Math.max(0, opts.maxSteps - before) : st.train.steps;
    const sTotal = Math.min(st.train.steps, left);
    const quickStyle = thinTo(splits.train, cfg.eval.quickImages);
    const heldStyle = thinTo(splits.train.filter((r) => splits.styleHeld[ds.conceptIndex[r]!]), cfg.eval.quickImages);
    const sResult = await train<Batch>({
      params: sParams,
      optimizer: sOpt,
      steps: sTotal,
      seed: st.train.seed,
      dir: join(cfg.run, 'style'),
      checkpointEvery: st.train.checkpointEvery,
      keepCheckpoints: 2,
      config: { kind: 'classifier-style', dataset: { ...cfg.dataset, hash: ds.hash }, styleHoldout: cfg.styleHoldout, backbone: st.backbone, train: st.train, augment: sAug, styles: ns },
      batchFn: (ctx) => {
        const { indices } = epochBatch(styleTrain.length, st.train.batch, st.train.seed, ctx.index);
        const recs = indices.map((i) => styleTrain[i]!);
        const x = new Float32Array(recs.length * s * s * 3);
        recs.forEach((r, k) => augmentInto(ds.image(r), masks[r]!, s, sAug, new Rng(mixSeed(st.train.seed, 0x73747965, ctx.index, k)), x, k * s * s * 3));
        return {
          x: tf.tensor4d(x, [recs.length, s, s, 3]),
          concept: tf.tensor1d(recs.map((r) => ds.conceptIndex[r]!), 'int32'),
          style: tf.tensor1d(recs.map((r) => ds.vendorIndex[r]!), 'int32'),
          styleMask: tf.ones([recs.length]),
        };
      },
      lossFn: (p, b) => {
        const ls = st.train.labelSmoothing;
        const target = tf.add(tf.mul(tf.oneHot(b.style, ns).toFloat(), 1 - ls), ls / ns);
        return tf.neg(tf.mean(tf.sum(tf.mul(target, tf.logSoftmax(styleForward(st.backbone, p, b.x))), 1))) as tf.Scalar;
      },
      evalEvery: st.train.evalEvery,
      onEval: ({ step, params: p, progress }) => {
        if (step === st.train.steps) return;
        const all = { ...params, ...p };
        const a = evaluateRecords(sCfg, all, ds, masks, quickStyle, sAug, cfg.eval.seed, 1, cfg.eval.batch);
        const h = evaluateRecords(sCfg, all, ds, masks, heldStyle, sAug, cfg.eval.seed, 1, cfg.eval.batch);
        progress.log(`${cfg.name} style eval @${step}: augmented views ${(100 * a.style).toFixed(1)}%, held-out concepts ${(100 * h.style).toFixed(1)}%`);
      },
      progress: opts.progress === false ? false : { label: `${cfg.name}/style` },
    });
    sOpt.dispose();
    if (sResult.step < st.train.steps) {
      log(`${cfg.name}: style stage stopped at step ${sResult.step}/${st.train.steps}; run the same command again to continue`);
      tf.dispose([...Object.values(params), ...Object.values(sParams)]);
      return { step: before + sResult.step, total: allSteps, complete: false };
    }
    // The combined model: concept backbone and head, the style network and its head.
    params['style_head.weight']!.dispose();
    params['style_head.bias']!.dispose();
    delete params['style_head.weight'];
    delete params['style_head.bias'];
    Object.assign(params, sParams);
    modelCfg = sCfg;
    trainingSeconds += sResult.elapsedSeconds;
    stages['style'] = { steps: st.train.steps, seconds: Math.round(sResult.elapsedSeconds) };
  }

  // Full evaluation.
  log(`${cfg.name}: evaluating`);
  const t0 = Date.now();
  const thin = (idx: number[]): number[] => (cfg.eval.limit ? thinTo(idx, cfg.eval.limit) : idx);
  const ev = (idx: readonly number[], seed: number | null) => evaluateRecords(modelCfg, params, ds, masks, idx, aug, seed, cfg.eval.views, cfg.eval.batch);
  const evalTrain = thin(splits.train);
  const clean = ev(evalTrain, null);
  const augmented = ev(evalTrain, cfg.eval.seed);
  const styleHeldIdx = thin(splits.train.filter((r) => splits.styleHeld[ds.conceptIndex[r]!]));
  const styleHeldClean = ev(styleHeldIdx, null);
  const styleHeldAug = ev(styleHeldIdx, cfg.eval.seed);
  const quality: Record<string, unknown> = {
    realRenders: { ...pick(clean), note: 'clean renders of the training vendors (the training images)' },
    augmentedViews: { ...pick(augmented), views: cfg.eval.views, seed: cfg.eval.seed, note: 'held-out augmented views of the training renders (a seed no training batch uses)' },
    styleOnHeldOutConcepts: {
      concepts: splits.styleHeld.filter(Boolean).length,
      clean: round(styleHeldClean.style),
      augmented: round(styleHeldAug.style),
      note: 'style accuracy on concepts whose images the style network never saw',
    },
  };
  if (cfg.holdoutVendor) {
    const hvIdx = thin(splits.heldOutVendor);
    const hvClean = ev(hvIdx, null);
    const hvAug = ev(hvIdx, cfg.eval.seed);
    quality['heldOutVendor'] = {
      vendor: cfg.holdoutVendor,
      trainedOn: ds.vendors.filter((v) => v !== cfg.holdoutVendor),
      clean: { images: hvClean.images, top1: round(hvClean.top1), top5: round(hvClean.top5) },
      augmented: { images: hvAug.images, top1: round(hvAug.top1), top5: round(hvAug.top5) },
      note: 'concept accuracy on a vendor (art style) never seen in training; style is not defined for it',
    };
  }
  // Erasure targets: how often each target's own renders are classified as the target.
  const targets: Record<string, { clean: number; augmented: number }> = {};
  const pos = new Map(evalTrain.map((r, i) => [r, i]));
  for (const tg of erasureTargets()) {
    if (tg.kind !== 'concept' || !tg.concept) continue;
    const ci = ds.concepts.indexOf(tg.concept);
    const rs = evalTrain.filter((r) => ds.conceptIndex[r] === ci);
    if (!rs.length) continue;
    targets[tg.name] = {
      clean: round(rs.reduce((a, r) => a + clean.hits[pos.get(r)!]!, 0) / rs.length),
      augmented: round(rs.reduce((a, r) => a + augmented.hits[pos.get(r)!]!, 0) / rs.length),
    };
  }
  quality['erasureTargets'] = { ...targets, note: 'top-1 accuracy on each target concept\'s renders (clean; augmented views)' };
  log(`${cfg.name}: evaluation took ${((Date.now() - t0) / 1000).toFixed(0)} s`);
  log(`${cfg.name}: real renders top1 ${(100 * clean.top1).toFixed(2)}% top5 ${(100 * clean.top5).toFixed(2)}% style ${(100 * clean.style).toFixed(2)}%; ` +
    `augmented views top1 ${(100 * augmented.top1).toFixed(2)}% top5 ${(100 * augmented.top5).toFixed(2)}% style ${(100 * augmented.style).toFixed(2)}%; ` +
    `style on held-out concepts ${(100 * styleHeldClean.style).toFixed(1)}% clean, ${(100 * styleHeldAug.style).toFixed(1)}% augmented`);
  if (quality['heldOutVendor']) log(`${cfg.name}: held-out vendor ${JSON.stringify(quality['heldOutVendor'])}`);

  const machine = machineInfo();
  const command = trainCommand('classifier', opts.configPath ?? '<config>');
  const training = {
    steps: allSteps,
    seconds: Math.round(trainingSeconds),
    stages,
    machine: `${machine.cpu} x${machine.cores}`,
    cores: machine.cores,
    cpu: machine.cpu,
    memoryGiB: machine.memoryGiB,
    platform: machine.platform,
    node: machine.node,
    backend: currentBackendSafe(),
    note: 'a shared 2-core machine: other training jobs ran at the same time',
  };
  let out: Record<string, unknown>;
  if (cfg.out !== null) {
    mkdirSync(cfg.out, { recursive: true });
    const weightsPath = join(cfg.out, 'model.safetensors');
    await saveClassifier(weightsPath, modelCfg, params, cfg.dtype, { name: cfg.name, dataset: ds.hash });
    const heldOutVendorRuns: unknown[] = [];
    for (const p of cfg.heldOutVendorReports ?? []) {
      if (existsSync(p)) heldOutVendorRuns.push({ report: p, ...(readConfigFile<Record<string, unknown>>(p)) });
      else log(`${cfg.name}: held-out vendor report ${p} not found (run its config first); the manifest leaves it out`);
    }
    if (heldOutVendorRuns.length) quality['heldOutVendorRuns'] = heldOutVendorRuns.map((r) => {
      const q = (r as { quality?: Record<string, unknown> }).quality ?? {};
      return { report: (r as { report: string }).report, command: (r as { command?: string }).command, ...(q['heldOutVendor'] as object) };
    });
    out = {
      name: cfg.name,
      kind: 'classifier',
      description: `emoji-world concept classifier (all catalogue concepts) and style (vendor) classifier${modelCfg.styleBackbone ? ' (a separate small network in the same file)' : ' (a second head on the same backbone)'}; trained on real renders only, never on generated images. The concept backbone's pooled features are the feature space of "FID/KID (emoji classifier features)".`,
      file: 'model.safetensors',
      sha256: sha256File(weightsPath),
      bytes: fileBytes(weightsPath),
      dtype: cfg.dtype,
      parameters: Object.values(params).reduce((a, v) => a + v.size, 0),
      macsPerImage: backboneMacs(cfg.backbone),
      input: { size: cfg.backbone.size, layout: 'NHWC', range: '[-1, 1]', background: 'white' },
      featureDim: cfg.backbone.widths[cfg.backbone.widths.length - 1],
      classes: { concepts: nc, styles: modelCfg.styles },
      config: cfg,
      command,
      dataset: datasetSummary(ds),
      training,
      quality,
      date: new Date().toISOString(),
    };
    await writeJson(join(cfg.out, 'manifest.json'), out);
    log(`${cfg.name}: wrote ${weightsPath} (${(fileBytes(weightsPath) / 1e6).toFixed(2)} MB) and manifest.json`);
  } else {
    out = { name: cfg.name, kind: 'classifier-evaluation', config: cfg, command, dataset: datasetSummary(ds), training, quality, date: new Date().toISOString() };
    await writeJson(cfg.report!, out);
    log(`${cfg.name}: wrote ${cfg.report}`);
  }
  tf.dispose(Object.values(params));
  return out;
}

function currentBackendSafe(): string {
  try {
    return currentBackend();
  } catch {
    return tf.getBackend();
  }
}

/** `mce train classifier --config FILE`. */
export async function trainClassifierFromFile(path: string, opts: ClassifierRunOptions = {}): Promise<Record<string, unknown>> {
  const cfg = readConfigFile<ClassifierTrainConfig>(path);
  return trainClassifier(cfg, { ...opts, configPath: path });
}
