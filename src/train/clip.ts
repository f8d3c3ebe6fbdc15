// `mce train clip`: the emoji CLIP-style dual encoder (models/clip/clip.ts), trained contrastively
// on real renders (augmented) paired with TRAIN-split captions only. Held-out captions (held-out
// templates and synonyms) are used only for the zero-shot evaluation.
//
// A batch holds `batch` distinct concepts (so no two pairs in a batch share a concept), each with a
// random vendor's render (augmented) and a random train caption: with probability `styledFraction`
// one that names the render's style, otherwise a plain one.
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { tf, type Tensor } from '../engine/tf.js';
import { currentBackend } from '../engine/backend.js';
import { Rng, mixSeed } from '../engine/rng.js';
import { backboneMacs, type BackboneConfig, type Weights } from '../models/classifier/backbone.js';
import { topK } from '../models/classifier/classifier.js';
import {
  ClipVocab, clipSpecs, encodeImageWith, encodeTextWith, initClip, logitScale, saveClip, validateClipConfig,
  type ClipConfig, type TextTowerConfig,
} from '../models/clip/clip.js';
import type { FloatDtype } from '../io/dtypes.js';
import { buildDataset, type Dataset } from '../world/dataset.js';
import { loadCatalogue } from '../world/catalogue.js';
import { captions, fillTemplate, PLAIN_TEMPLATES, seededCaption, STYLE_TEMPLATES } from '../world/captions.js';
import { STYLES, type Vendor } from '../world/vendors.js';
import { augmentInto, backgroundMask, resolveAugment, type AugmentConfig } from './augment.js';
import { augment, backbone, conceptsField, count, floatDtype, fraction, kind, name, parseConfig, path, positive, positiveInt, schedule, z } from './config-schema.js';
import { AdamW, type Params } from './optim.js';
import { epochBatch, train } from './loop.js';
import {
  datasetSummary, fileBytes, machineInfo, readConfigFile, round, sha256File, trainCommand, warmupCosineSchedule, writeJson,
} from './evaluator-common.js';

export interface ClipTrainConfig {
  kind: 'clip';
  name: string;
  run: string;
  /** Output folder: model.safetensors + manifest.json. */
  out: string;
  /** concepts: the whole catalogue (default), a list of names, or a count (see buildDataset); tests use a few. */
  dataset: { size: number; concepts?: number | string[] };
  image: BackboneConfig;
  text: TextTowerConfig;
  embedDim: number;
  train: {
    steps: number;
    batch: number;
    lr: number;
    warmup: number;
    weightDecay: number;
    maxGradNorm: number;
    styledFraction: number;
    seed: number;
    checkpointEvery: number;
    evalEvery: number;
  };
  augment?: Partial<AugmentConfig>;
  /** limit: evaluate on every k-th render only, about this many (tests); default all. */
  eval: { seed: number; batch: number; limit?: number };
  dtype: FloatDtype;
}

export interface ClipRunOptions {
  maxSteps?: number;
  configPath?: string;
  progress?: boolean;
  log?: (s: string) => void;
  cacheDir?: string;
}

/** The config's schema (errors name the field: `train.lr: expected a positive number`). */
export const CLIP_CONFIG_SCHEMA: z.ZodType<ClipTrainConfig> = z.strictObject({
  kind: kind('clip'),
  name: name(),
  run: path(),
  out: path(),
  dataset: z.strictObject({ size: positiveInt(), concepts: conceptsField().optional() }),
  image: backbone(),
  text: z.strictObject({ context: positiveInt(), width: positiveInt(), layers: positiveInt(), heads: positiveInt(), mlpRatio: positive() }),
  embedDim: positiveInt(),
  train: schedule({ maxGradNorm: positive(), styledFraction: fraction(), checkpointEvery: count(), evalEvery: count() }),
  augment: augment().optional(),
  eval: z.strictObject({ seed: count(), batch: positiveInt(), limit: positiveInt().optional() }),
  dtype: floatDtype(),
});

export function validateClipTrainConfig(c: ClipTrainConfig, where: string): void {
  parseConfig(CLIP_CONFIG_SCHEMA, c, where, 'clip');
  // What a schema of single fields cannot say: fields that must agree.
  if (c.image.size !== c.dataset.size) throw new Error(`${where}: image.size: must equal dataset.size (${c.dataset.size}), got ${c.image.size}`);
  if (c.text.width % c.text.heads !== 0) throw new Error(`${where}: text.heads: must divide text.width (${c.text.width}), got ${c.text.heads}`);
}

/**
 * Every phrase a caption of this world can contain, train and held-out (concept names and synonyms,
 * style names and synonyms, template words, articles): the text tower's vocabulary covers them.
 * Tokens only held-out captions use get rows that training never updates: zero-shot evaluation on
 * held-out captions therefore measures transfer through the shared tokens, as it should.
 */
export function worldPhrases(): string[] {
  const out = new Set<string>(['a', 'an']);
  for (const c of loadCatalogue().concepts) {
    out.add(c.name);
    for (const s of c.synonyms) out.add(s);
  }
  for (const v of Object.keys(STYLES) as Vendor[]) {
    out.add(STYLES[v].name);
    for (const s of STYLES[v].synonyms) out.add(s);
  }
  for (const t of [...PLAIN_TEMPLATES, ...STYLE_TEMPLATES]) out.add(t.replace(/\{A\}|\{c\}|\{s\}|\{aS\}/g, ' '));
  return [...out].sort();
}

/** Caption lists per (concept, style or null), cached. */
class CaptionBank {
  private readonly cache = new Map<string, string[]>();
  get(concept: string, style: Vendor | null, split: 'train' | 'heldout'): string[] {
    const k = `${concept}|${style ?? ''}|${split}`;
    let v = this.cache.get(k);
    if (!v) {
      v = captions(concept, style, split);
      this.cache.set(k, v);
    }
    return v;
  }
}

/** One held-out caption of a concept (seeded pick among all its held-out captions in that style, or plain). */
export function heldOutCaption(concept: string, style: Vendor | null, seed: number): string {
  return seededCaption(concept, style, 'heldout', seed).text;
}

interface Batch {
  x: Tensor;
  rows: Tensor;
  eot: Int32Array;
}

export interface RetrievalReport {
  images: number;
  top1: number;
  top5: number;
}

/**
 * Zero-shot concept classification of renders by their similarity to one text per concept:
 * `texts[c]` describes concept c. Returns top-1/top-5 over the given records.
 */
function zeroShot(
  cfg: ClipConfig,
  p: Weights,
  vocab: ClipVocab,
  ds: Dataset,
  masks: Uint8Array[],
  idx: readonly number[],
  textsFor: (r: number) => { texts: string[]; want: number },
  classTexts: string[] | null,
  aug: AugmentConfig | null,
  seed: number,
  batch: number,
): RetrievalReport {
  const T = cfg.text.context;
  const embedTexts = (texts: string[]): Tensor => {
    const parts: Tensor[] = [];
    for (let i = 0; i < texts.length; i += 512) {
      const chunk = texts.slice(i, i + 512);
      const { rows, eot } = vocab.encode(chunk, T);
      parts.push(tf.tidy(() => encodeTextWith(cfg, p, tf.tensor2d(rows, [chunk.length, T], 'int32'), eot)));
    }
    const all = tf.concat(parts, 0);
    tf.dispose(parts);
    return all;
  };
  const shared = classTexts ? embedTexts(classTexts) : null;
  let t1 = 0, t5 = 0, n = 0;
  const s = ds.size;
  const per = s * s * 3;
  for (let i = 0; i < idx.length; i += batch) {
    const part = idx.slice(i, i + batch);
    const x = new Float32Array(part.length * per);
    part.forEach((r, k) => {
      if (aug) augmentInto(ds.image(r), masks[r]!, s, aug, new Rng(mixSeed(seed, r)), x, k * per);
      else { const img = ds.image(r); for (let j = 0; j < per; j++) x[k * per + j] = img[j]! / 127.5 - 1; }
    });
    const img = tf.tidy(() => encodeImageWith(cfg, p, tf.tensor4d(x, [part.length, s, s, 3])));
    if (shared) {
      const sim = tf.tidy(() => tf.matMul(img, shared, false, true));
      const d = sim.dataSync() as Float32Array;
      sim.dispose();
      const C = shared.shape[0]!;
      part.forEach((r, k) => {
        const top = topK(d.subarray(k * C, (k + 1) * C), 5);
        const want = textsFor(r).want;
        if (top[0] === want) t1++;
        if (top.includes(want)) t5++;
        n++;
      });
    } else {
      // Per-record candidate texts (e.g. the three styles of its concept).
      const imgData = img.dataSync() as Float32Array;
      const D = img.shape[1]!;
      part.forEach((r, k) => {
        const { texts, want } = textsFor(r);
        const te = embedTexts(texts);
        const td = te.dataSync() as Float32Array;
        te.dispose();
        const sims = texts.map((_, j) => {
          let acc = 0;
          for (let q = 0; q < D; q++) acc += imgData[k * D + q]! * td[j * D + q]!;
          return acc;
        });
        const top = topK(sims, Math.min(5, sims.length));
        if (top[0] === want) t1++;
        if (top.includes(want)) t5++;
        n++;
      });
    }
    img.dispose();
  }
  shared?.dispose();
  return { images: n, top1: n ? round(t1 / n) : 0, top5: n ? round(t5 / n) : 0 };
}

export async function trainClip(cfg: ClipTrainConfig, opts: ClipRunOptions = {}): Promise<Record<string, unknown>> {
  const where = opts.configPath ?? 'clip config';
  validateClipTrainConfig(cfg, where);
  const log = opts.log ?? ((s: string) => process.stderr.write(s + '\n'));
  const t = cfg.train;
  const aug = resolveAugment(cfg.augment);
  const ds = buildDataset({
    size: cfg.dataset.size,
    ...(cfg.dataset.concepts !== undefined ? { concepts: cfg.dataset.concepts } : {}),
    ...(opts.cacheDir ? { cacheDir: opts.cacheDir } : {}),
    onProgress: (d, n) => { if (d === n || d % 1024 === 0) log(`rendering dataset: ${d}/${n}`); },
  });
  const masks: Uint8Array[] = [];
  for (let i = 0; i < ds.n; i++) masks.push(backgroundMask(ds.image(i), ds.size));
  const vocabIds = ClipVocab.covering(worldPhrases());
  const modelCfg: ClipConfig = { image: cfg.image, text: cfg.text, embedDim: cfg.embedDim, vocab: vocabIds };
  validateClipConfig(modelCfg);
  const vocab = new ClipVocab(vocabIds);
  const bank = new CaptionBank();
  // Records of each concept.
  const recordsOf: number[][] = ds.concepts.map(() => []);
  for (let i = 0; i < ds.n; i++) recordsOf[ds.conceptIndex[i]!]!.push(i);
  const nConcepts = ds.concepts.length;
  log(`${cfg.name}: ${ds.n} renders of ${nConcepts} concepts, vocabulary ${vocabIds.length} BPE tokens, ` +
    `image tower ${(backboneMacs(cfg.image) / 1e6).toFixed(1)}M MACs, dataset ${ds.hash.slice(0, 12)}, backend ${backendName()}`);

  const init = initClip(modelCfg, t.seed);
  const params: Params = {};
  for (const [name, shape] of clipSpecs(modelCfg)) params[name] = tf.variable(tf.tensor(init[name]!.data, shape, 'float32'), true, `clip/${name}`);
  const optimizer = new AdamW(params, {
    lr: t.lr,
    weightDecay: t.weightDecay,
    maxGradNorm: t.maxGradNorm,
    betas: [0.9, 0.98],
    eps: 1e-6,
    schedule: warmupCosineSchedule(t.warmup, t.steps),
    groups: [{ name: 'no-decay', match: /(norm\.(weight|bias)|ln\d?(_final)?\.(weight|bias)|\.bias|logit_scale|positional_embedding)$/, weightDecay: 0 }],
  });
  const total = opts.maxSteps !== undefined ? Math.min(t.steps, opts.maxSteps) : t.steps;
  const s = ds.size;
  const T = cfg.text.context;
  const labelsFor = (B: number): Tensor => tf.tidy(() => tf.oneHot(tf.range(0, B, 1, 'int32'), B).toFloat());

  // Quick evaluation: a fixed sample of clean renders against the canonical held-out caption of every concept.
  const quickIdx = Array.from({ length: Math.min(384, ds.n) }, (_, k) => Math.floor((k * ds.n) / Math.min(384, ds.n)));
  const heldPlain = ds.concepts.map((c) => heldOutCaption(c, null, cfg.eval.seed));

  const result = await train<Batch>({
    params,
    optimizer,
    steps: total,
    seed: t.seed,
    dir: cfg.run,
    checkpointEvery: t.checkpointEvery,
    keepCheckpoints: 2,
    config: { kind: cfg.kind, dataset: { ...cfg.dataset, hash: ds.hash }, image: cfg.image, text: cfg.text, embedDim: cfg.embedDim, vocab: vocabIds.length, train: t, augment: aug },
    batchFn: (ctx, rng) => {
      const { indices } = epochBatch(nConcepts, t.batch, t.seed, ctx.index);
      const x = new Float32Array(indices.length * s * s * 3);
      const texts: string[] = [];
      indices.forEach((ci, k) => {
        const recs = recordsOf[ci]!;
        const r = recs[rng.int(recs.length)]!;
        augmentInto(ds.image(r), masks[r]!, s, aug, new Rng(mixSeed(t.seed, 0x636c6970, ctx.index, k)), x, k * s * s * 3);
        const vendor = ds.vendors[ds.vendorIndex[r]!]!;
        const list = bank.get(ds.concepts[ci]!, rng.uniform() < t.styledFraction ? vendor : null, 'train');
        texts.push(list[rng.int(list.length)]!);
      });
      const { rows, eot } = vocab.encode(texts, T);
      return { x: tf.tensor4d(x, [indices.length, s, s, 3]), rows: tf.tensor2d(rows, [indices.length, T], 'int32'), eot };
    },
    lossFn: (p, b) => {
      const B = b.x.shape[0]!;
      const ie = encodeImageWith(modelCfg, p, b.x);
      const te = encodeTextWith(modelCfg, p, b.rows, b.eot);
      const scale = logitScale(p);
      const logits = tf.mul(tf.matMul(ie, te, false, true), scale);
      const y = labelsFor(B);
      const li = tf.neg(tf.mean(tf.sum(tf.mul(y, tf.logSoftmax(logits)), 1)));
      const lt = tf.neg(tf.mean(tf.sum(tf.mul(y, tf.logSoftmax(tf.transpose(logits))), 1)));
      const loss = tf.mul(tf.add(li, lt), 0.5) as tf.Scalar;
      return { loss, terms: { scale: scale as tf.Scalar } };
    },
    evalEvery: t.evalEvery,
    onEval: ({ step, params: p, progress }) => {
      if (step === t.steps) return;
      const r = zeroShot(modelCfg, p, vocab, ds, masks, quickIdx, (rec) => ({ texts: [], want: ds.conceptIndex[rec]! }), heldPlain, null, 0, cfg.eval.batch);
      progress.log(`${cfg.name} eval @${step}: zero-shot on held-out captions (${r.images} renders, ${nConcepts} concepts) top1 ${(100 * r.top1).toFixed(1)}% top5 ${(100 * r.top5).toFixed(1)}%`);
    },
    progress: opts.progress === false ? false : { label: cfg.name },
  });

  if (result.step < t.steps) {
    log(`${cfg.name}: stopped at step ${result.step}/${t.steps}; run the same command again to continue`);
    optimizer.dispose();
    tf.dispose(Object.values(params));
    return { step: result.step, total: t.steps, complete: false };
  }

  log(`${cfg.name}: evaluating`);
  const t0 = Date.now();
  const stride = cfg.eval.limit ? Math.max(1, Math.floor(ds.n / cfg.eval.limit)) : 1;
  const all = Array.from({ length: Math.ceil(ds.n / stride) }, (_, i) => i * stride);
  const byConcept = (rec: number) => ({ texts: [], want: ds.conceptIndex[rec]! });
  const canonical = ds.concepts.map((c) => fillTemplate('{A}', c));
  const heldStyled = (v: Vendor) => ds.concepts.map((c) => heldOutCaption(c, v, cfg.eval.seed));
  const quality: Record<string, unknown> = {};
  quality['zeroShotHeldOutCaptions'] = {
    clean: zeroShot(modelCfg, params, vocab, ds, masks, all, byConcept, heldPlain, null, 0, cfg.eval.batch),
    augmented: zeroShot(modelCfg, params, vocab, ds, masks, all, byConcept, heldPlain, aug, cfg.eval.seed, cfg.eval.batch),
    classes: nConcepts,
    note: 'each render classified among all concepts by cosine similarity to one HELD-OUT caption per concept (held-out template, held-out synonym half the time); never trained on',
  };
  // Styled held-out captions: per vendor, the class texts name that vendor's style.
  const styledReports: Record<string, RetrievalReport> = {};
  for (const v of ds.vendors) {
    const vi = ds.vendors.indexOf(v);
    const idx = all.filter((r) => ds.vendorIndex[r] === vi);
    styledReports[v] = zeroShot(modelCfg, params, vocab, ds, masks, idx, byConcept, heldStyled(v), null, 0, cfg.eval.batch);
  }
  quality['zeroShotHeldOutStyledCaptions'] = { ...styledReports, note: 'as above with held-out captions that also name the render\'s style (held-out style templates and style synonyms)' };
  quality['trainCanonicalCaptions'] = {
    clean: zeroShot(modelCfg, params, vocab, ds, masks, all, byConcept, canonical, null, 0, cfg.eval.batch),
    note: 'for comparison: the canonical TRAIN caption "a kitchen knife" per concept',
  };
  // Zero-shot style: the three held-out styled captions of the render's own concept, one per vendor.
  const styleZs = zeroShot(modelCfg, params, vocab, ds, masks, all, (rec) => {
      const c = ds.concepts[ds.conceptIndex[rec]!]!;
      return { texts: ds.vendors.map((v) => heldOutCaption(c, v, cfg.eval.seed + 1)), want: ds.vendorIndex[rec]! };
    }, null, null, 0, cfg.eval.batch);
  quality['zeroShotStyle'] = {
    images: styleZs.images,
    accuracy: styleZs.top1,
    note: 'which of the concept\'s held-out styled captions (one per vendor) fits the render best; chance is 1/3',
  };
  // CLIP score of matching vs mismatched pairs (the metric as a generation would be scored).
  const scores = clipScoreStats(modelCfg, params, vocab, ds, heldPlain, cfg.eval.batch, all);
  quality['clipScore'] = { ...scores, note: 'CLIP score (emoji dual encoder) = 100 * max(cos, 0) between a clean render and a held-out caption; "matching" uses its own concept, "mismatched" a random other concept' };
  log(`${cfg.name}: evaluation took ${((Date.now() - t0) / 1000).toFixed(0)} s`);
  log(`${cfg.name}: ${JSON.stringify(quality['zeroShotHeldOutCaptions'])}`);

  const machine = machineInfo();
  mkdirSync(cfg.out, { recursive: true });
  const weightsPath = join(cfg.out, 'model.safetensors');
  await saveClip(weightsPath, modelCfg, params, cfg.dtype, { name: cfg.name, dataset: ds.hash });
  const manifest = {
    name: cfg.name,
    kind: 'clip',
    description: 'emoji-world CLIP-style dual encoder (image tower: small ResNet; text tower: causal transformer over CLIP BPE tokens), trained contrastively on real renders and TRAIN-split captions only. Its metric is named "CLIP score (emoji dual encoder)": 100 * max(cos(image, text), 0).',
    file: 'model.safetensors',
    sha256: sha256File(weightsPath),
    bytes: fileBytes(weightsPath),
    dtype: cfg.dtype,
    parameters: Object.values(params).reduce((a, v) => a + v.size, 0),
    vocabulary: vocabIds.length,
    input: { size: cfg.image.size, layout: 'NHWC', range: '[-1, 1]', background: 'white', textContext: cfg.text.context },
    config: cfg,
    command: trainCommand('clip', opts.configPath ?? '<config>'),
    dataset: datasetSummary(ds),
    training: {
      steps: t.steps,
      seconds: Math.round(result.elapsedSeconds),
      machine: `${machine.cpu} x${machine.cores}`,
      cores: machine.cores,
      cpu: machine.cpu,
      memoryGiB: machine.memoryGiB,
      platform: machine.platform,
      node: machine.node,
      backend: backendName(),
      finalTemperature: round(1 / (tf.tidy(() => logitScale(params).dataSync()[0]!)), 5),
      note: 'a shared 2-core machine: other training jobs ran at the same time',
    },
    quality,
    date: new Date().toISOString(),
  };
  await writeJson(join(cfg.out, 'manifest.json'), manifest);
  log(`${cfg.name}: wrote ${weightsPath} (${(fileBytes(weightsPath) / 1e6).toFixed(2)} MB) and manifest.json`);
  optimizer.dispose();
  tf.dispose(Object.values(params));
  return manifest;
}

/** Mean CLIP score of matching and mismatched (render, held-out caption) pairs over clean renders. */
function clipScoreStats(cfg: ClipConfig, p: Weights, vocab: ClipVocab, ds: Dataset, texts: string[], batch: number, idx: readonly number[]): Record<string, number> {
  const T = cfg.text.context;
  let match = 0, mis = 0, n = 0;
  const s = ds.size;
  const per = s * s * 3;
  for (let i = 0; i < idx.length; i += batch) {
    const recs = idx.slice(i, i + batch);
    const m = recs.length;
    const x = new Float32Array(m * per);
    recs.forEach((r, k) => { const img = ds.image(r); for (let j = 0; j < per; j++) x[k * per + j] = img[j]! / 127.5 - 1; });
    const own: string[] = [];
    const other: string[] = [];
    for (const r of recs) {
      const c = ds.conceptIndex[r]!;
      own.push(texts[c]!);
      other.push(texts[(c + 1 + ((r * 7919) % (texts.length - 1))) % texts.length]!);
    }
    const [a, b] = tf.tidy(() => {
      const ie = encodeImageWith(cfg, p, tf.tensor4d(x, [m, s, s, 3]));
      const e1 = vocab.encode(own, T);
      const e2 = vocab.encode(other, T);
      const t1 = encodeTextWith(cfg, p, tf.tensor2d(e1.rows, [m, T], 'int32'), e1.eot);
      const t2 = encodeTextWith(cfg, p, tf.tensor2d(e2.rows, [m, T], 'int32'), e2.eot);
      const sc = (t: Tensor): Tensor => tf.mul(tf.relu(tf.sum(tf.mul(ie, t), 1)), 100);
      return [sc(t1), sc(t2)];
    });
    const da = a!.dataSync();
    const db = b!.dataSync();
    tf.dispose([a!, b!]);
    for (let k = 0; k < m; k++) { match += da[k]!; mis += db[k]!; n++; }
  }
  return { matching: round(match / n, 2), mismatched: round(mis / n, 2) };
}

function backendName(): string {
  try {
    return currentBackend();
  } catch {
    return tf.getBackend();
  }
}

/** `mce train clip --config FILE`. */
export async function trainClipFromFile(path: string, opts: ClipRunOptions = {}): Promise<Record<string, unknown>> {
  const cfg = readConfigFile<ClipTrainConfig>(path);
  return trainClip(cfg, { ...opts, configPath: path });
}

