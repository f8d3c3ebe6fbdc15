// `mce train diffusion`: sd-emoji, an SD-style UNet (models/unet) trained as an epsilon-prediction
// latent diffusion model on emoji-world, jointly with its own text encoder (same architecture as
// flux-emoji's, trained from scratch).
//
//   data     every (concept, style) render of the dataset, encoded once by the flux-emoji
//            autoencoder (mean latent, scaled; NCHW 8x8x8 for 32x32 images), or raw pixels
//            (world-data.ts, shared with train/flow.ts).
//   caption  per sample: with p = captionDropout the empty prompt "" (classifier-free guidance),
//            else a TRAIN caption of the concept, styled with p = styledFraction, plain otherwise.
//   noise    DDPM: t uniform in {0, ..., 999}, eps ~ N(0, I),
//            x_t = sqrt(ab_t) x0 + sqrt(1 - ab_t) eps with SD's scaled-linear schedule
//            (0.00085 to 0.012 over 1000 steps; sampling/diffusion-schedule.ts).
//   loss     MSE between the UNet's eps prediction (cross-attention on the text sequence) and eps;
//            gradients reach the UNet and the text encoder.
//   init     torch-default conv/linear init with the LDM zero_module on every residual branch's
//            last layer and conv_out (the model starts as the identity and predicts 0).
//
// The run folder holds resumable checkpoints (train/loop.ts); every `exportEvery` steps and at the
// end the shipped files are (re)written: unet.safetensors (diffusers names, BF16),
// text_encoder.safetensors, a copy of the autoencoder (ae.safetensors), manifest.json.
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { tf, type Tensor } from '../engine/tf.js';
import { randnArray } from '../engine/rng.js';
import type { AutoEncoderParams } from '../models/flux/autoencoder.js';
import { textEncoderForward, type PromptTokenizer, type TextEncoderParams } from '../models/text/encoder.js';
import { initUnetWeights, unetForward, unetParamSpecs, countUnetParams, type UnetParams } from '../models/unet/index.js';
import { qSample, sdDiffusionSchedule } from '../sampling/diffusion-schedule.js';
import { buildDataset, type Dataset } from '../world/dataset.js';
import { sha256 } from '../world/util.js';
import { SD_EMOJI_FORMAT } from '../generate/sd-emoji.js';
import type { Params } from './optim.js';
import type { TrainResult } from './loop.js';
import { runBaseTraining, type TrainRunOptions } from './base-run.js';
import { machineDescription, readJsonConfig, writeWeights } from './common.js';
import {
  bundleAutoencoder, datasetRecord, emaRecord, fileInfo, r6, totalSteps, trainingCommand, writeManifest, type RunInfo,
} from './run-record.js';
import {
  addTextEncoderParams, drawTrainSamples, encodeWorldLatents, splitTextParams, trainCaptionLists, worldTextTokenizer, writeTextEncoderFile,
  type LatentSpec, type TrainCaptions,
} from './world-data.js';

export interface DiffusionTrainConfig {
  kind: 'diffusion';
  /** Model name in the manifest. */
  name: string;
  /** Run folder (checkpoints). */
  run: string;
  /** Folder of the shipped model. */
  out: string;
  dataset: { size: number; concepts: number | string[]; seed: number };
  latent: LatentSpec;
  unet: UnetParams;
  text: TextEncoderParams;
  train: {
    steps: number;
    batch: number;
    lr: number;
    warmup: number;
    weightDecay: number;
    seed: number;
    captionDropout: number;
    styledFraction: number;
    checkpointEvery: number;
    exportEvery: number;
    /**
     * Start from the last checkpoint of another run folder (an earlier stage, e.g. more steps with
     * a schedule of their own). Its loss curve, step count and training time are carried into this
     * run's manifest. Ignored once this run has a checkpoint.
     */
    init?: string;
    /** Ship the parameters' exponential moving average with this decay (e.g. 0.999). */
    ema?: number;
  };
  /** Defaults of `mce generate` for this model: DDIM steps and the CFG scale. */
  sampling: { steps: number; cfg: number };
  /** Free-form notes copied into the manifest (e.g. the step-time measurements behind the UNet size). */
  notes?: Record<string, unknown>;
}

export function validateDiffusionConfig(c: DiffusionTrainConfig, where: string): void {
  if (c.kind !== 'diffusion') throw new Error(`${where}: kind must be "diffusion"`);
  for (const k of ['run', 'out', 'name'] as const) if (typeof c[k] !== 'string') throw new Error(`${where}: "${k}" must be a string`);
  if (!c.unet || !c.text || !c.train || !c.dataset || !c.latent || !c.sampling) {
    throw new Error(`${where}: needs "unet", "text", "train", "dataset", "latent" and "sampling" sections`);
  }
  unetParamSpecs(c.unet);
  if (c.unet.cross_attention_dim !== c.text.width) throw new Error(`${where}: unet.cross_attention_dim must equal text.width (${c.text.width})`);
  if (c.unet.in_channels !== c.unet.out_channels) throw new Error(`${where}: unet.in_channels and out_channels must be equal (epsilon prediction)`);
}

/** Training data: clean latents (NCHW) of every record and their caption lists. */
export interface DiffusionData extends TrainCaptions {
  ds: Dataset;
  /** [N, C, H, W] row-major. */
  x0: Float32Array;
  latentShape: [number, number, number];
  aeParams: AutoEncoderParams | null;
  /** Mean and std of x0 (the schedule assumes roughly unit variance). */
  stats: { mean: number; std: number };
}

export async function prepareDiffusionData(cfg: DiffusionTrainConfig, log: (s: string) => void = () => {}): Promise<DiffusionData> {
  const ds = buildDataset({ size: cfg.dataset.size, concepts: cfg.dataset.concepts, seed: cfg.dataset.seed });
  const lat = await encodeWorldLatents(ds, cfg.latent);
  lat.ae?.dispose();
  const [c, h, w] = lat.latentShape;
  if (c !== cfg.unet.in_channels) throw new Error(`unet.in_channels is ${cfg.unet.in_channels}, the latent has ${c} channels`);
  let s = 0;
  let sq = 0;
  for (const v of lat.x0) {
    s += v;
    sq += v * v;
  }
  const mean = s / lat.x0.length;
  const stats = { mean: r6(mean), std: r6(Math.sqrt(Math.max(0, sq / lat.x0.length - mean * mean))) };
  log(`diffusion: ${ds.n} samples encoded (${cfg.latent.kind}) in ${lat.ms} ms: ${c}x${h}x${w}, mean ${stats.mean}, std ${stats.std}`);
  return { ds, x0: lat.x0, latentShape: lat.latentShape, aeParams: lat.aeParams, stats, ...trainCaptionLists(ds) };
}

/** Fresh trainable parameters: the UNet (zero_module init) and the text encoder (prefixed "text."). */
export function initDiffusionParams(cfg: DiffusionTrainConfig, vocabRows: number): Params {
  const params: Params = {};
  for (const [n, t] of Object.entries(initUnetWeights(cfg.unet, cfg.train.seed, { zeroOut: true }))) {
    params[n] = tf.variable(t, true);
    t.dispose();
  }
  addTextEncoderParams(params, cfg.text, vocabRows, cfg.train.seed + 1);
  return params;
}

interface DiffusionBatch {
  x0: Tensor;
  noise: Tensor;
  /** Integer timesteps in [0, 1000). */
  t: number[];
  prompts: string[];
}

/** The epsilon-prediction loss of a batch (differentiable in params). */
export function diffusionLoss(cfg: DiffusionTrainConfig, params: Record<string, Tensor>, tok: PromptTokenizer, b: DiffusionBatch): tf.Scalar {
  return tf.tidy(() => {
    const { model: unet, text } = splitTextParams(params);
    const enc = textEncoderForward(cfg.text, text, tok.batch(b.prompts));
    const xt = qSample(b.x0, b.noise, b.t);
    const eps = unetForward(cfg.unet, unet, { sample: xt, timesteps: tf.tensor1d(b.t, 'float32'), context: enc.txt });
    return tf.mean(tf.square(tf.sub(eps, b.noise))) as tf.Scalar;
  });
}

export async function trainDiffusion(cfg: DiffusionTrainConfig, configPath: string, opts: TrainRunOptions = {}): Promise<TrainResult> {
  validateDiffusionConfig(cfg, configPath);
  const log = opts.log ?? ((s: string) => process.stderr.write(s + '\n'));
  const data = await prepareDiffusionData(cfg, log);
  const { vocab, tok } = worldTextTokenizer(cfg.text);
  const params = initDiffusionParams(cfg, tok.rows);
  const t = cfg.train;
  log(`diffusion: UNet ${countUnetParams(cfg.unet)} parameters`);
  const [c, h, w] = data.latentShape;
  const per = c * h * w;
  const T = sdDiffusionSchedule().numTrainTimesteps;
  return runBaseTraining<DiffusionBatch>({
    kind: 'diffusion',
    train: t,
    params,
    dir: cfg.run,
    configPath,
    config: { unet: cfg.unet, text: cfg.text, dataset: cfg.dataset, latent: cfg.latent, train: t, vocab: sha256(vocab.join(',')) },
    batchFn: (_ctx, rng) => {
      const b = drawTrainSamples(rng, data, t, per, () => rng.int(T));
      return {
        x0: tf.tensor4d(b.x0, [t.batch, c, h, w]),
        noise: tf.tensor4d(randnArray(t.batch * per, rng.nextU32()), [t.batch, c, h, w]),
        t: b.t,
        prompts: b.prompts,
      };
    },
    lossFn: (p, batch) => diffusionLoss(cfg, p, tok, batch),
    exportModel: (run, weights) => exportDiffusionModel(cfg, configPath, weights, vocab, data, run),
    outDir: cfg.out,
    maxSteps: opts.maxSteps,
    progress: opts.progress,
    log,
  });
}

/** Write the shipped files: UNet and text encoder (BF16), a copy of the autoencoder, manifest. */
export async function exportDiffusionModel(
  cfg: DiffusionTrainConfig,
  configPath: string,
  weights: Record<string, Tensor>,
  vocab: readonly number[],
  data: DiffusionData,
  run: RunInfo,
): Promise<void> {
  mkdirSync(cfg.out, { recursive: true });
  const { model: unet, text } = splitTextParams(weights);
  const meta = { format: SD_EMOJI_FORMAT, step: String(run.step) };
  await writeWeights(join(cfg.out, 'unet.safetensors'), unet, 'BF16', { ...meta, params: JSON.stringify(cfg.unet) });
  await writeTextEncoderFile(join(cfg.out, 'text_encoder.safetensors'), text, cfg.text, vocab, meta);
  const files: Record<string, { sha256: string; bytes: number }> = {
    'unet.safetensors': fileInfo(join(cfg.out, 'unet.safetensors')),
    'text_encoder.safetensors': fileInfo(join(cfg.out, 'text_encoder.safetensors')),
  };
  // The autoencoder travels with the bundle (latent diffusion needs it to decode), with its training record.
  const aeTraining = cfg.latent.kind === 'ae' ? bundleAutoencoder(cfg.latent.ae, cfg.out, files) : null;
  const s = sdDiffusionSchedule();
  const manifest = {
    format: SD_EMOJI_FORMAT,
    name: cfg.name,
    architecture: 'SD-style UNet (diffusers UNet2DConditionModel, SD 1.x/2.x blocks: ResNet blocks, Transformer2D cross-attention on the text sequence, sinusoidal timestep embedding), small config; diffusers parameter names',
    unet: cfg.unet,
    unet_parameters: countUnetParams(cfg.unet),
    text_encoder: {
      params: cfg.text,
      vocab_rows: vocab.length + 1,
      description: 'CLIP-style causal transformer over CLIP BPE ids (vocabulary: the emoji-world phrases); the UNet cross-attends to its final-normed token features; trained jointly with the UNet (its own weights, not flux-emoji\'s)',
    },
    latent: {
      kind: cfg.latent.kind,
      shape: data.latentShape,
      stats: data.stats,
      autoencoder: cfg.latent.kind === 'ae' ? { file: 'ae.safetensors', source: cfg.latent.ae, params: data.aeParams, training: aeTraining } : null,
    },
    image_size: cfg.dataset.size,
    schedule: {
      prediction_type: 'epsilon',
      beta_schedule: 'scaled_linear',
      beta_start: 0.00085,
      beta_end: 0.012,
      num_train_timesteps: s.numTrainTimesteps,
    },
    sampling: { ...cfg.sampling, sampler: 'DDIM (eta 0), timestep_spacing leading, steps_offset 1, set_alpha_to_one false; CFG on the doubled batch [uncond ""; prompt]' },
    files,
    dataset: datasetRecord(cfg.dataset, data),
    training: {
      command: trainingCommand('diffusion', configPath, run, cfg.train.steps, cfg.notes),
      config: cfg,
      objective: 'DDPM epsilon prediction: t ~ uniform{0..999}, x_t = sqrt(ab_t) x0 + sqrt(1 - ab_t) eps, MSE(eps_pred, eps)',
      caption_dropout: cfg.train.captionDropout,
      ema: emaRecord(cfg.train.ema),
      steps: run.step,
      total_steps: totalSteps(run, cfg.notes),
      init: run.init ?? null,
      batch: cfg.train.batch,
      seconds: Math.round(run.elapsedSeconds),
      machine: machineDescription(),
      threads: process.env['MCE_THREADS'] ?? null,
      loss_first_step: run.firstLoss === null ? null : r6(run.firstLoss),
      loss_last_window: run.curve.length ? run.curve[run.curve.length - 1]![1] : null,
      loss_curve: run.curve,
    },
    notes: cfg.notes ?? {},
    quality: {},
  };
  await writeManifest(join(cfg.out, 'manifest.json'), manifest);
}

export async function trainDiffusionFromFile(path: string, opts: TrainRunOptions = {}): Promise<TrainResult> {
  return trainDiffusion(readJsonConfig<DiffusionTrainConfig>(path), path, opts);
}
