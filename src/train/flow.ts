// `mce train flow`: flux-emoji, the FLUX architecture at a small config trained by rectified flow
// on emoji-world, jointly with its text encoder (src/models/text/encoder.ts).
//
//   data     every (concept, style) render of the dataset (world/dataset.ts), encoded once by the
//            trained autoencoder (mean latent, scaled) and 2x2-packed; or packed pixels.
//   caption  per sample: with p = captionDropout the empty prompt "" (classifier-free guidance),
//            else a TRAIN caption of the concept, styled ("... in twemoji style") with
//            p = styledFraction, plain otherwise. Held-out templates and synonyms are never seen.
//   noise    x_t = (1 - t) x0 + t eps, eps ~ N(0, I); target v = eps - x0 (rectified flow, the
//            FLUX convention: t = 1 is noise). t ~ logit-normal(0, 1) (SD3 / FLUX training), or
//            uniform with tSampling "uniform".
//   loss     MSE between the FLUX velocity prediction and v; gradients reach the transformer and
//            the text encoder.
//   init     torch-default Linear init; adaLN-Zero (every modulation Linear and the final linear
//            start at zero, so every block starts as the identity and the model outputs 0).
//
// The run folder holds resumable checkpoints (train/loop.ts); every `exportEvery` steps and at the
// end the shipped files are (re)written atomically: transformer.safetensors (reference FLUX names),
// text_encoder.safetensors, manifest.json.
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { tf, type Tensor } from '../engine/tf.js';
import { randnArray } from '../engine/rng.js';
import type { AutoEncoder, AutoEncoderParams } from '../models/flux/autoencoder.js';
import { fluxForward } from '../models/flux/model.js';
import { makeImgIds, makeTxtIds, packLatents } from '../models/flux/pack.js';
import { type FluxParams, fluxParamSpecs } from '../models/flux/params.js';
import { initFluxWeights } from '../models/flux/weights.js';
import { PromptTokenizer, textEncoderForward, type TextEncoderParams } from '../models/text/encoder.js';
import { buildDataset, type Dataset } from '../world/dataset.js';
import { sha256 } from '../world/util.js';
import { FLUX_EMOJI_FORMAT } from '../generate/flux-emoji.js';
import type { Params } from './optim.js';
import type { TrainResult } from './loop.js';
import { runBaseTraining, type TrainRunOptions } from './base-run.js';
import { machineDescription, readJsonConfig, writeWeights } from './common.js';
import {
  bundleAutoencoder, datasetRecord, emaRecord, fileInfo, r6, totalSteps, trainingCommand, writeManifest, type RunInfo,
} from './run-record.js';
import {
  addTextEncoderParams, drawTrainSamples, encodeWorldLatents, splitTextParams, trainCaptionLists, worldTextTokenizer, writeTextEncoderFile, type LatentSpec,
} from './world-data.js';

export { loadAeFile, worldPhrases, type LatentSpec } from './world-data.js';

export interface FlowTrainConfig {
  kind: 'flow';
  /** Model name in the manifest. */
  name: string;
  /** Run folder (checkpoints). */
  run: string;
  /** Folder of the shipped model (transformer, text encoder, manifest; the AE file when kind "ae"). */
  out: string;
  dataset: { size: number; concepts: number | string[]; seed: number };
  latent: LatentSpec;
  flux: FluxParams;
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
    tSampling: 'logit-normal' | 'uniform';
    checkpointEvery: number;
    exportEvery: number;
    /**
     * Start from the last checkpoint of another run folder (an earlier stage, e.g. a constant-rate
     * stage followed by an annealing stage with its own schedule). Its loss curve, step count and
     * training time are carried into this run's manifest. Ignored once this run has a checkpoint.
     */
    init?: string;
    /** Ship the parameters' exponential moving average with this decay (e.g. 0.999). */
    ema?: number;
  };
  /** Defaults of `mce generate` for this model. */
  sampling: { steps: number; cfg: number; shift: boolean };
  /** Free-form notes copied into the manifest (e.g. the latent decision's measurements). */
  notes?: Record<string, unknown>;
}

export function validateFlowConfig(c: FlowTrainConfig, where: string): void {
  if (c.kind !== 'flow') throw new Error(`${where}: kind must be "flow"`);
  for (const k of ['run', 'out', 'name'] as const) if (typeof c[k] !== 'string') throw new Error(`${where}: "${k}" must be a string`);
  if (!c.flux || !c.text || !c.train || !c.dataset || !c.latent || !c.sampling) {
    throw new Error(`${where}: needs "flux", "text", "train", "dataset", "latent" and "sampling" sections`);
  }
  fluxParamSpecs(c.flux);
  if (c.flux.context_in_dim !== c.text.width || c.flux.vec_in_dim !== c.text.width) {
    throw new Error(`${where}: flux.context_in_dim and flux.vec_in_dim must equal text.width (${c.text.width})`);
  }
  if (c.flux.guidance_embed) throw new Error(`${where}: flux-emoji uses real CFG, so guidance_embed must be false`);
}

/** Training data of a flow model: clean samples (packed), caption lists, geometry. */
export interface FlowData {
  ds: Dataset;
  /** [N, L, C] packed clean latents (or pixels), row-major. */
  x0: Float32Array;
  tokens: number;
  channels: number;
  /** Latent grid (before packing): channels x h x w. */
  latentShape: [number, number, number];
  /** Per record: its styled and plain train captions. */
  styled: string[][];
  plain: string[][];
  ae: AutoEncoder | null;
  aeParams: AutoEncoderParams | null;
}

export async function prepareFlowData(cfg: FlowTrainConfig, log: (s: string) => void = () => {}): Promise<FlowData> {
  const ds = buildDataset({ size: cfg.dataset.size, concepts: cfg.dataset.concepts, seed: cfg.dataset.seed });
  const lat = await encodeWorldLatents(ds, cfg.latent, packLatents);
  const [c, h, w] = lat.latentShape;
  const tokens = (h / 2) * (w / 2);
  const channels = c * 4;
  log(`flow: ${ds.n} samples encoded (${cfg.latent.kind}) in ${lat.ms} ms: ${tokens} tokens x ${channels} channels`);
  const { styled, plain } = trainCaptionLists(ds);
  return { ds, x0: lat.x0, tokens, channels, latentShape: lat.latentShape, styled, plain, ae: lat.ae, aeParams: lat.aeParams };
}

/** Split a params record into FLUX weights and text-encoder weights. */
export function splitParams(params: Record<string, Tensor>): { flux: Record<string, Tensor>; text: Record<string, Tensor> } {
  const { model, text } = splitTextParams(params);
  return { flux: model, text };
}

/** Fresh trainable parameters: FLUX (adaLN-Zero) and the text encoder (prefixed "text."). */
export function initFlowParams(cfg: FlowTrainConfig, vocabRows: number): Params {
  const params: Params = {};
  const fw = initFluxWeights(cfg.flux, cfg.train.seed);
  for (const [n, t] of Object.entries(fw)) {
    const zero = /(_mod\.lin|modulation\.lin|adaLN_modulation\.1|final_layer\.linear)\.(weight|bias)$/.test(n);
    const init = zero ? tf.zerosLike(t) : t;
    params[n] = tf.variable(init, true);
    if (zero) init.dispose();
    t.dispose();
  }
  addTextEncoderParams(params, cfg.text, vocabRows, cfg.train.seed + 1);
  return params;
}

interface FlowBatch {
  x0: Tensor;
  noise: Tensor;
  t: Tensor;
  prompts: string[];
}

/** The rectified-flow loss of a batch (differentiable in params). */
export function flowLoss(cfg: FlowTrainConfig, params: Record<string, Tensor>, tok: PromptTokenizer, tokens: number, latentHW: [number, number], b: FlowBatch): tf.Scalar {
  return tf.tidy(() => {
    const { flux, text } = splitParams(params);
    const n = b.x0.shape[0]!;
    const enc = textEncoderForward(cfg.text, text, tok.batch(b.prompts));
    const tt = b.t.reshape([n, 1, 1]);
    const xt = tf.add(tf.mul(tf.sub(1, tt), b.x0), tf.mul(tt, b.noise));
    const target = tf.sub(b.noise, b.x0);
    const v = fluxForward(cfg.flux, flux, {
      img: xt,
      img_ids: makeImgIds(n, latentHW[0] / 2, latentHW[1] / 2),
      txt: enc.txt,
      txt_ids: makeTxtIds(n, cfg.text.context_length),
      timesteps: b.t,
      y: enc.y,
    });
    void tokens;
    return tf.mean(tf.square(tf.sub(v, target))) as tf.Scalar;
  });
}

export async function trainFlow(cfg: FlowTrainConfig, configPath: string, opts: TrainRunOptions = {}): Promise<TrainResult> {
  validateFlowConfig(cfg, configPath);
  const log = opts.log ?? ((s: string) => process.stderr.write(s + '\n'));
  const data = await prepareFlowData(cfg, log);
  const { vocab, tok } = worldTextTokenizer(cfg.text);
  const params = initFlowParams(cfg, tok.rows);
  const t = cfg.train;
  const { tokens, channels } = data;
  const latentHW: [number, number] = [data.latentShape[1], data.latentShape[2]];
  const per = tokens * channels;
  return runBaseTraining<FlowBatch>({
    kind: 'flow',
    train: t,
    params,
    dir: cfg.run,
    configPath,
    config: { flux: cfg.flux, text: cfg.text, dataset: cfg.dataset, latent: cfg.latent, train: t, vocab: sha256(vocab.join(',')) },
    batchFn: (_ctx, rng) => {
      const drawT = t.tSampling === 'uniform' ? () => rng.uniform() : () => 1 / (1 + Math.exp(-rng.normal()));
      const b = drawTrainSamples(rng, data, t, per, drawT);
      return {
        x0: tf.tensor3d(b.x0, [t.batch, tokens, channels]),
        noise: tf.tensor3d(randnArray(t.batch * per, rng.nextU32()), [t.batch, tokens, channels]),
        t: tf.tensor1d(b.t),
        prompts: b.prompts,
      };
    },
    lossFn: (p, batch) => flowLoss(cfg, p, tok, tokens, latentHW, batch),
    exportModel: (run, weights) => exportFlowModel(cfg, configPath, weights, vocab, data, run),
    outDir: cfg.out,
    maxSteps: opts.maxSteps,
    progress: opts.progress,
    log,
  });
}

/** Write the shipped files of a flow model: transformer, text encoder (BF16), manifest. */
export async function exportFlowModel(
  cfg: FlowTrainConfig,
  configPath: string,
  weights: Record<string, Tensor>,
  vocab: readonly number[],
  data: FlowData,
  run: RunInfo,
): Promise<void> {
  mkdirSync(cfg.out, { recursive: true });
  const { flux, text } = splitParams(weights);
  const meta = { format: FLUX_EMOJI_FORMAT, step: String(run.step) };
  await writeWeights(join(cfg.out, 'transformer.safetensors'), flux, 'BF16', { ...meta, params: JSON.stringify(cfg.flux) });
  await writeTextEncoderFile(join(cfg.out, 'text_encoder.safetensors'), text, cfg.text, vocab, meta);
  const files: Record<string, { sha256: string; bytes: number }> = {
    'transformer.safetensors': fileInfo(join(cfg.out, 'transformer.safetensors')),
    'text_encoder.safetensors': fileInfo(join(cfg.out, 'text_encoder.safetensors')),
  };
  // The autoencoder travels with the bundle, as in sd-emoji's, with its training record.
  const aeInfo = cfg.latent.kind === 'ae' ? bundleAutoencoder(cfg.latent.ae, cfg.out, files) : null;
  const endLoss = run.curve.length ? run.curve[run.curve.length - 1]![1] : null;
  const manifest = {
    format: FLUX_EMOJI_FORMAT,
    name: cfg.name,
    architecture: 'FLUX.1 (double-stream + single-stream MMDiT, RoPE over (t, h, w), QK RMSNorm, AdaLN), small config; reference parameter names',
    flux: cfg.flux,
    text_encoder: {
      params: cfg.text,
      vocab_rows: vocab.length + 1,
      description: 'CLIP-style causal transformer over CLIP BPE ids (vocabulary: the emoji-world phrases); txt = final-normed token features, y = EOT features; trained jointly with the flow model',
    },
    latent: {
      kind: cfg.latent.kind,
      shape: data.latentShape,
      packed_tokens: data.tokens,
      packed_channels: data.channels,
      autoencoder: cfg.latent.kind === 'ae' ? { file: 'ae.safetensors', params: data.aeParams, training: aeInfo } : null,
    },
    image_size: cfg.dataset.size,
    sampling: { ...cfg.sampling, schedule: 'FLUX get_schedule (time shift, mu from the image token count)', sampler: 'Euler' },
    files,
    dataset: datasetRecord(cfg.dataset, data),
    training: {
      command: trainingCommand('flow', configPath, run, cfg.train.steps, cfg.notes),
      config: cfg,
      objective: 'rectified flow: x_t = (1 - t) x0 + t eps, predict v = eps - x0, MSE',
      t_sampling: cfg.train.tSampling === 'uniform' ? 'uniform(0, 1)' : 'logit-normal: t = sigmoid(n), n ~ N(0, 1)',
      caption_dropout: cfg.train.captionDropout,
      ema: emaRecord(cfg.train.ema),
      steps: run.step,
      total_steps: totalSteps(run, cfg.notes),
      init: run.init ?? null,
      batch: cfg.train.batch,
      seconds: Math.round(run.elapsedSeconds),
      machine: machineDescription(),
      loss_first_step: run.firstLoss === null ? null : r6(run.firstLoss),
      loss_last_window: endLoss,
      loss_curve: run.curve,
    },
    notes: cfg.notes ?? {},
    quality: {},
  };
  await writeManifest(join(cfg.out, 'manifest.json'), manifest);
}

export async function trainFlowFromFile(path: string, opts: TrainRunOptions = {}): Promise<TrainResult> {
  return trainFlow(readJsonConfig<FlowTrainConfig>(path), path, opts);
}
