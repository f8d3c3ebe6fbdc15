// `mce train ae`: the FLUX autoencoder (reference architecture, small config) trained on emoji-world
// renders. Loss: MSE + L1 of the reconstruction of a sampled latent (z = mean + sigma * noise), plus
// a small KL term to N(0, 1), as a KL-regularised VAE. After training, the latent statistics over
// the dataset set the reference `shift_factor` / `scale_factor`, so encode() gives latents of about
// zero mean and unit variance, which is what the flow model expects.
//
// A later stage can start from a trained autoencoder (`train.init`, an ae.safetensors) and train
// only its decoder (`train.freeze: "encoder"`). The encoder, and so every latent a flow model was
// trained on, stays bit for bit the same: a sharper decoder improves a trained generator's images
// without retraining it.
import { mkdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { tf, type Tensor } from '../engine/tf.js';
import { randnArray } from '../engine/rng.js';
import { writeFileAtomic } from '../io/atomic.js';
import { AutoEncoder, type AutoEncoderParams } from '../models/flux/autoencoder.js';
import { buildDataset, type DatasetConfig } from '../world/dataset.js';
import { AdamW, type Params } from './optim.js';
import { train, type TrainResult } from './loop.js';
import { datasetImages, machineDescription, readJsonConfig, warmupCosine, writeWeights } from './common.js';
import { conceptsField, count, kind, nonNegative, parseConfig, path, positive, positiveInt, schedule, z } from './config-schema.js';
import { sha256, stableStringify } from '../world/util.js';
import { existsSync, readFileSync } from 'node:fs';
import { loadAutoEncoderFile } from '../generate/bundle.js';

export interface AeTrainConfig {
  kind: 'ae';
  /** Run folder for checkpoints and the log (e.g. runs/flux-emoji-ae). */
  run: string;
  /** Where the trained weights go (e.g. models/flux-emoji/ae.safetensors). */
  out: string;
  dataset: { size: number; concepts: number | string[]; seed: number };
  ae: AutoEncoderParams;
  train: {
    steps: number;
    batch: number;
    lr: number;
    warmup: number;
    weightDecay: number;
    klWeight: number;
    l1Weight: number;
    seed: number;
    checkpointEvery: number;
    /** Start from this trained autoencoder (an ae.safetensors with params metadata). */
    init?: string;
    /** Keep the encoder fixed (needs `init`): the latent space stays the one a generator learnt. */
    freeze?: 'encoder';
  };
}

/** The config's schema (errors name the field: `train.lr: expected a positive number`). */
export const AE_CONFIG_SCHEMA: z.ZodType<AeTrainConfig> = z.strictObject({
  kind: kind('ae'),
  run: path(),
  out: path(),
  dataset: z.strictObject({ size: positiveInt(), concepts: conceptsField(), seed: count() }),
  ae: z.strictObject({
    resolution: positiveInt(),
    in_channels: positiveInt(),
    ch: positiveInt(),
    out_ch: positiveInt(),
    ch_mult: z.array(positiveInt()).min(1),
    num_res_blocks: positiveInt(),
    z_channels: positiveInt(),
    scale_factor: positive(),
    shift_factor: z.number(),
  }),
  train: schedule({
    klWeight: nonNegative(),
    l1Weight: nonNegative(),
    checkpointEvery: positiveInt(),
    init: path().optional(),
    freeze: z.literal('encoder', { error: 'expected "encoder"' }).optional(),
  }),
});

export function validateAeConfig(c: AeTrainConfig, where: string): void {
  parseConfig(AE_CONFIG_SCHEMA, c, where, 'ae');
  if (c.ae.resolution !== c.dataset.size) throw new Error(`${where}: ae.resolution: must equal dataset.size (${c.dataset.size}), got ${c.ae.resolution}`);
  if (c.train.freeze && !c.train.init) throw new Error(`${where}: train.freeze: freezing the encoder needs train.init (a trained ae.safetensors)`);
}

/** The layer fields of autoencoder params (all but the latent scale and shift). */
const architecture = (p: AutoEncoderParams): string => stableStringify({ ...p, scale_factor: undefined, shift_factor: undefined });

/** The starting weights: seeded random, or a trained autoencoder of the same architecture. */
async function initialWeights(cfg: AeTrainConfig, where: string): Promise<{ weights: Record<string, Tensor>; from: { path: string; sha256: string } | null }> {
  const t = cfg.train;
  if (!t.init) {
    const ae = AutoEncoder.random(cfg.ae, t.seed);
    return { weights: { ...ae.weights }, from: null };
  }
  if (!existsSync(t.init)) throw new Error(`${where}: train.init: no such file ${t.init}`);
  const ae = await loadAutoEncoderFile(t.init);
  if (architecture(ae.params) !== architecture(cfg.ae)) throw new Error(`${where}: train.init: ${t.init} has another architecture than ae (${architecture(ae.params)})`);
  return { weights: { ...ae.weights }, from: { path: t.init, sha256: sha256(readFileSync(t.init)) } };
}

export interface AeRunOptions {
  /** Stop after this many steps of this session (for tests); default: run to the end. */
  maxSteps?: number;
  progress?: boolean;
  log?: (s: string) => void;
}

/** Mean and std of the encoder means over the whole dataset (unscaled latents). */
export function latentStats(ae: AutoEncoder, images: (idx: number[]) => Tensor, n: number, batch = 64): { mean: number; std: number } {
  let s = 0;
  let s2 = 0;
  let count = 0;
  for (let i = 0; i < n; i += batch) {
    const idx = Array.from({ length: Math.min(batch, n - i) }, (_, k) => i + k);
    const [a, b, c] = tf.tidy(() => {
      const x = images(idx);
      const { mean } = ae.encodeMoments(x);
      return [tf.sum(mean).dataSync()[0]!, tf.sum(tf.square(mean)).dataSync()[0]!, mean.size];
    });
    s += a!;
    s2 += b!;
    count += c!;
  }
  const mean = s / count;
  return { mean, std: Math.sqrt(Math.max(1e-12, s2 / count - mean * mean)) };
}

export async function trainAe(cfg: AeTrainConfig, configPath: string, opts: AeRunOptions = {}): Promise<TrainResult> {
  validateAeConfig(cfg, configPath);
  const log = opts.log ?? ((s: string) => process.stderr.write(s + '\n'));
  const dsCfg: DatasetConfig = { size: cfg.dataset.size, concepts: cfg.dataset.concepts, seed: cfg.dataset.seed };
  const ds = buildDataset(dsCfg);
  log(`ae: dataset ${ds.n} images (${ds.concepts.length} concepts x ${ds.vendors.length} styles) at ${ds.size}px, hash ${ds.hash.slice(0, 16)}`);
  const aeParams: AutoEncoderParams = { ...cfg.ae, scale_factor: 1, shift_factor: 0 };
  const t = cfg.train;
  const init = await initialWeights(cfg, configPath);
  if (init.from) log(`ae: init from ${init.from.path} (sha256 ${init.from.sha256.slice(0, 16)})${t.freeze ? ', encoder frozen' : ''}`);
  // Trained params go to the optimizer and the checkpoints; frozen ones stay plain tensors.
  const params: Params = {};
  const frozen: Record<string, Tensor> = {};
  for (const [n, w] of Object.entries(init.weights)) {
    if (t.freeze === 'encoder' && n.startsWith('encoder.')) frozen[n] = w;
    else {
      params[n] = tf.variable(w, true);
      w.dispose();
    }
  }
  const ae = AutoEncoder.fromWeights(aeParams, { ...frozen, ...params });
  const optimizer = new AdamW(params, {
    lr: t.lr,
    weightDecay: t.weightDecay,
    maxGradNorm: 1.0,
    schedule: warmupCosine(t.warmup, t.steps),
    groups: [{ name: 'norms', match: /norm.*\.(weight|bias)$|\.bias$/, weightDecay: 0 }],
  });
  const total = opts.maxSteps !== undefined ? Math.min(t.steps, opts.maxSteps) : t.steps;
  const t0 = Date.now();
  let curve: [number, number][] = [];
  let secondsBefore = 0;
  const seconds = (): number => secondsBefore + (Date.now() - t0) / 1000;
  const result = await train<{ x: Tensor }>({
    params,
    optimizer,
    steps: total,
    seed: t.seed,
    dir: cfg.run,
    checkpointEvery: t.checkpointEvery,
    config: { ae: cfg.ae, dataset: cfg.dataset, train: { ...t, steps: t.steps }, init: init.from },
    batchFn: (_ctx, rng) => {
      const idx = Array.from({ length: t.batch }, () => rng.int(ds.n));
      return { x: datasetImages(ds, idx) };
    },
    lossFn: (_p, batch, ctx) => {
      const { mean, logvar } = ae.encodeMoments(batch.x);
      const lv = tf.clipByValue(logvar, -30, 20);
      const z = tf.add(mean, tf.mul(tf.exp(tf.mul(lv, 0.5)), tf.tensor(randnArray(mean.size, ctx.seed), mean.shape)));
      const rec = ae.decode(z);
      const diff = tf.sub(rec, batch.x);
      const mse = tf.mean(tf.square(diff));
      const l1 = tf.mean(tf.abs(diff));
      const kl = tf.mul(0.5, tf.mean(tf.sub(tf.add(tf.square(mean), tf.exp(lv)), tf.add(lv, 1))));
      const loss = tf.addN([mse, tf.mul(l1, t.l1Weight), tf.mul(kl, t.klWeight)]) as tf.Scalar;
      return { loss, terms: { mse: mse as tf.Scalar, kl: kl as tf.Scalar } };
    },
    state: {
      save: () => ({ curve, seconds: seconds() }),
      load: (saved) => {
        const v = (saved ?? {}) as { curve?: [number, number][]; seconds?: number };
        curve = v.curve ?? [];
        secondsBefore = v.seconds ?? 0;
      },
    },
    onStep: (info) => {
      if (info.step === 1 || info.step % 25 === 0 || info.step === total) curve.push([info.step, Number(info.terms['mse']?.toFixed(6))]);
    },
    progress: opts.progress === false ? false : { label: 'train ae', tty: false, interval: 10_000 },
  });
  // Latent statistics -> shift/scale, then export.
  const stats = latentStats(ae, (idx) => datasetImages(ds, idx), ds.n);
  const finalParams: AutoEncoderParams = { ...cfg.ae, shift_factor: Number(stats.mean.toFixed(6)), scale_factor: Number((1 / stats.std).toFixed(6)) };
  // Reconstruction error over the dataset (mean latent, no sampling), in [0, 1] pixel units.
  let se = 0;
  let ae1 = 0;
  let cnt = 0;
  for (let i = 0; i < ds.n; i += 64) {
    const idx = Array.from({ length: Math.min(64, ds.n - i) }, (_, k) => i + k);
    const [a, b, c] = tf.tidy(() => {
      const x = datasetImages(ds, idx);
      const { mean } = ae.encodeMoments(x);
      const d = tf.div(tf.sub(tf.clipByValue(ae.decode(mean), -1, 1), x), 2);
      return [tf.sum(tf.square(d)).dataSync()[0]!, tf.sum(tf.abs(d)).dataSync()[0]!, d.size];
    });
    se += a!;
    ae1 += b!;
    cnt += c!;
  }
  const mse01 = se / cnt;
  const quality = { recon_mse_01: mse01, recon_psnr_db: 10 * Math.log10(1 / mse01), recon_l1_01: ae1 / cnt };
  log(`ae: reconstruction PSNR ${quality.recon_psnr_db.toFixed(2)} dB, MSE ${mse01.toExponential(3)} (pixels in [0, 1]); latent mean ${stats.mean.toFixed(4)} std ${stats.std.toFixed(4)}`);
  mkdirSync(dirname(cfg.out), { recursive: true });
  const weights: Record<string, Tensor> = { ...frozen };
  for (const [n, v] of Object.entries(params)) weights[n] = v;
  await writeWeights(cfg.out, weights, 'F32', { format: 'mce-ae/1', params: JSON.stringify(finalParams) });
  const info = {
    params: finalParams,
    dataset: { ...cfg.dataset, hash: ds.hash, images: ds.n },
    steps: result.step,
    total_steps: t.steps,
    training_seconds: Math.round(Math.max(result.elapsedSeconds, seconds())),
    session_seconds: Math.round((Date.now() - t0) / 1000),
    machine: machineDescription(),
    command: `mce train ae --config ${configPath}`,
    init: init.from,
    frozen: t.freeze ?? null,
    quality,
    loss_curve: curve,
    sha256: sha256(readFileSync(cfg.out)),
  };
  await writeFileAtomic(join(dirname(cfg.out), 'ae.json'), JSON.stringify(info, null, 2) + '\n');
  optimizer.dispose();
  tf.dispose([...Object.values(params), ...Object.values(frozen)]);
  return result;
}

export async function trainAeFromFile(path: string, opts: AeRunOptions = {}): Promise<TrainResult> {
  return trainAe(readJsonConfig<AeTrainConfig>(path), path, opts);
}
