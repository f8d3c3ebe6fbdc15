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
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { tf, type Tensor } from '../engine/tf.js';
import { randnArray } from '../engine/rng.js';
import { writeFileAtomic } from '../io/atomic.js';
import { loadFloat32 } from '../io/safetensors.js';
import { AutoEncoder, type AutoEncoderParams } from '../models/flux/autoencoder.js';
import { fluxForward } from '../models/flux/model.js';
import { makeImgIds, makeTxtIds, packLatents } from '../models/flux/pack.js';
import { type FluxParams, fluxParamSpecs } from '../models/flux/params.js';
import { initFluxWeights } from '../models/flux/weights.js';
import {
  buildTextVocab, initTextEncoderWeights, PromptTokenizer, textEncoderForward, type TextEncoderParams,
} from '../models/text/encoder.js';
import { captions, templates, PLAIN_TEMPLATES, STYLE_TEMPLATES } from '../world/captions.js';
import { loadCatalogue } from '../world/catalogue.js';
import { buildDataset, type Dataset } from '../world/dataset.js';
import { STYLES, VENDORS, type Vendor } from '../world/vendors.js';
import { sha256 } from '../world/util.js';
import { FLUX_EMOJI_FORMAT } from '../generate/flux-emoji.js';
import { AdamW, type Params } from './optim.js';
import { train, type TrainResult } from './loop.js';
import { loadCheckpoint, restoreParams } from './state.js';
import { datasetImages, machineDescription, readJsonConfig, warmupCosine, writeWeights } from './common.js';


export type LatentSpec = { kind: 'ae'; ae: string } | { kind: 'pixels' };

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

/** Every phrase the world can put in a caption (train and held-out): the text encoder's vocabulary source. */
export function worldPhrases(): string[] {
  const out: string[] = ['a an the'];
  for (const c of loadCatalogue().concepts) out.push(c.name, ...c.synonyms);
  for (const v of VENDORS) out.push(STYLES[v].name, ...STYLES[v].synonyms);
  for (const t of [...PLAIN_TEMPLATES, ...STYLE_TEMPLATES]) out.push(t.replace(/\{A\}|\{c\}|\{s\}|\{aS\}/g, ' '));
  return out;
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

export async function loadAeFile(path: string): Promise<{ ae: AutoEncoder; params: AutoEncoderParams }> {
  if (!existsSync(path)) throw new Error(`autoencoder weights not found: ${path} (train them first: mce train ae --config configs/flux-emoji-ae.json)`);
  const { tensors, metadata } = await loadFloat32(path);
  const raw = metadata['params'];
  if (!raw) throw new Error(`${path}: no "params" metadata (not an mce autoencoder file)`);
  const params = JSON.parse(raw) as AutoEncoderParams;
  return { ae: AutoEncoder.fromWeights(params, tensors), params };
}

export async function prepareFlowData(cfg: FlowTrainConfig, log: (s: string) => void = () => {}): Promise<FlowData> {
  const ds = buildDataset({ size: cfg.dataset.size, concepts: cfg.dataset.concepts, seed: cfg.dataset.seed });
  let ae: AutoEncoder | null = null;
  let aeParams: AutoEncoderParams | null = null;
  let latentShape: [number, number, number];
  const chunks: Float32Array[] = [];
  if (cfg.latent.kind === 'ae') {
    ({ ae, params: aeParams } = await loadAeFile(cfg.latent.ae));
    const f = 2 ** (aeParams.ch_mult.length - 1);
    latentShape = [aeParams.z_channels, ds.size / f, ds.size / f];
  } else {
    latentShape = [3, ds.size, ds.size];
  }
  const t0 = Date.now();
  for (let i = 0; i < ds.n; i += 64) {
    const idx = Array.from({ length: Math.min(64, ds.n - i) }, (_, k) => i + k);
    const packed = tf.tidy(() => {
      const img = datasetImages(ds, idx);
      return packLatents(ae ? ae.encode(img) : img);
    });
    chunks.push(packed.dataSync() as Float32Array);
    packed.dispose();
  }
  const [c, h, w] = latentShape;
  const tokens = (h / 2) * (w / 2);
  const channels = c * 4;
  const x0 = new Float32Array(ds.n * tokens * channels);
  let off = 0;
  for (const ch of chunks) {
    x0.set(ch, off);
    off += ch.length;
  }
  log(`flow: ${ds.n} samples encoded (${cfg.latent.kind}) in ${Date.now() - t0} ms: ${tokens} tokens x ${channels} channels`);
  const cat = loadCatalogue();
  const styledCache = new Map<string, string[]>();
  const plainCache = new Map<string, string[]>();
  const styled: string[][] = [];
  const plain: string[][] = [];
  for (let i = 0; i < ds.n; i++) {
    const cname = ds.concepts[ds.conceptIndex[i]!]!;
    const v = ds.vendors[ds.vendorIndex[i]!]! as Vendor;
    const key = `${cname}|${v}`;
    if (!styledCache.has(key)) styledCache.set(key, captions(cat.get(cname), v, 'train'));
    if (!plainCache.has(cname)) plainCache.set(cname, captions(cat.get(cname), null, 'train'));
    styled.push(styledCache.get(key)!);
    plain.push(plainCache.get(cname)!);
  }
  return { ds, x0, tokens, channels, latentShape, styled, plain, ae, aeParams };
}

/** Split a params record into FLUX weights and text-encoder weights. */
export function splitParams(params: Record<string, Tensor>): { flux: Record<string, Tensor>; text: Record<string, Tensor> } {
  const flux: Record<string, Tensor> = {};
  const text: Record<string, Tensor> = {};
  for (const [n, t] of Object.entries(params)) {
    if (n.startsWith('text.')) text[n.slice(5)] = t;
    else flux[n] = t;
  }
  return { flux, text };
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
  const tw = initTextEncoderWeights(cfg.text, vocabRows, cfg.train.seed + 1);
  for (const [n, t] of Object.entries(tw)) {
    params[`text.${n}`] = tf.variable(t, true);
    t.dispose();
  }
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

export interface FlowRunOptions {
  /** Stop at this step (a later run resumes). */
  maxSteps?: number;
  progress?: boolean;
  log?: (s: string) => void;
}

/** Round a loss for the manifest. */
const r6 = (x: number): number => Number(x.toPrecision(6));

export async function trainFlow(cfg: FlowTrainConfig, configPath: string, opts: FlowRunOptions = {}): Promise<TrainResult> {
  validateFlowConfig(cfg, configPath);
  const log = opts.log ?? ((s: string) => process.stderr.write(s + '\n'));
  const data = await prepareFlowData(cfg, log);
  const vocab = buildTextVocab(worldPhrases());
  const tok = new PromptTokenizer(vocab, cfg.text.context_length);
  const params = initFlowParams(cfg, tok.rows);
  const t = cfg.train;
  let stage0: StageInfo | null = null;
  if (t.init) {
    const ck = await loadCheckpoint(t.init);
    if (!ck) throw new Error(`${configPath}: train.init: no checkpoint in ${t.init}`);
    restoreParams(params, ck.params, ck.path);
    const user = ((ck.metadata as { user?: unknown }).user ?? {}) as { curve?: [number, number][]; firstLoss?: number | null; seconds?: number };
    stage0 = { path: ck.path, step: ck.step, seconds: user.seconds ?? ck.elapsedSeconds, curve: user.curve ?? [], firstLoss: user.firstLoss ?? null };
    log(`flow: initialised from ${ck.path} (step ${ck.step})`);
  }
  const optimizer = new AdamW(params, {
    lr: t.lr,
    weightDecay: t.weightDecay,
    maxGradNorm: 1.0,
    schedule: warmupCosine(t.warmup, t.steps),
    groups: [{ name: 'no-decay', match: /\.bias$|norm|ln_|scale$|embedding/, weightDecay: 0 }],
  });
  const total = opts.maxSteps !== undefined ? Math.min(t.steps, opts.maxSteps) : t.steps;
  const { tokens, channels } = data;
  const latentHW: [number, number] = [data.latentShape[1], data.latentShape[2]];
  const per = tokens * channels;
  // Loss curve: mean loss over windows of up to 50 steps, saved in checkpoints so it survives resumes.
  const curveWindow = Math.max(1, Math.min(50, Math.floor(t.steps / 20)));
  let curve: [number, number][] = [];
  let win = 0;
  let winN = 0;
  let firstLoss: number | null = null;
  let secondsBefore = 0;
  const sessionStart = Date.now();
  const seconds = (): number => secondsBefore + (Date.now() - sessionStart) / 1000;
  const exportNow = async (step: number, elapsed: number): Promise<void> => {
    await exportFlowModel(cfg, configPath, params, vocab, data, withStage0(stage0, { step, elapsedSeconds: elapsed, curve, firstLoss }));
    log(`flow: exported step ${step} to ${cfg.out}`);
  };
  const result = await train<FlowBatch>({
    params,
    optimizer,
    steps: total,
    seed: t.seed,
    dir: cfg.run,
    checkpointEvery: t.checkpointEvery,
    config: { flux: cfg.flux, text: cfg.text, dataset: cfg.dataset, latent: cfg.latent, train: t, vocab: sha256(vocab.join(',')) },
    state: {
      save: () => ({ curve, win, winN, firstLoss, seconds: seconds() }),
      load: (s) => {
        const v = (s ?? {}) as { curve?: [number, number][]; win?: number; winN?: number; firstLoss?: number | null; seconds?: number };
        secondsBefore = v.seconds ?? 0;
        curve = v.curve ?? [];
        win = v.win ?? 0;
        winN = v.winN ?? 0;
        firstLoss = v.firstLoss ?? null;
      },
    },
    batchFn: (ctx, rng) => {
      const x = new Float32Array(t.batch * per);
      const ts = new Float32Array(t.batch);
      const prompts: string[] = [];
      for (let i = 0; i < t.batch; i++) {
        const k = rng.int(data.ds.n);
        x.set(data.x0.subarray(k * per, (k + 1) * per), i * per);
        const u = rng.uniform();
        if (u < t.captionDropout) prompts.push('');
        else {
          const list = rng.uniform() < t.styledFraction ? data.styled[k]! : data.plain[k]!;
          prompts.push(list[rng.int(list.length)]!);
        }
        if (t.tSampling === 'uniform') ts[i] = rng.uniform();
        else ts[i] = 1 / (1 + Math.exp(-rng.normal()));
      }
      return {
        x0: tf.tensor3d(x, [t.batch, tokens, channels]),
        noise: tf.tensor3d(randnArray(t.batch * per, rng.nextU32()), [t.batch, tokens, channels]),
        t: tf.tensor1d(ts),
        prompts,
      };
    },
    lossFn: (p, batch) => flowLoss(cfg, p, tok, tokens, latentHW, batch),
    onStep: async (info) => {
      if (firstLoss === null) firstLoss = info.loss;
      win += info.loss;
      winN++;
      if (winN === curveWindow) {
        curve.push([info.step, r6(win / winN)]);
        win = 0;
        winN = 0;
      }
      if (t.exportEvery > 0 && info.step % t.exportEvery === 0) {
        await exportNow(info.step, seconds());
      }
    },
    progress: opts.progress === false ? false : { label: 'train flow', tty: false, interval: 15_000 },
  });
  await exportFlowModel(cfg, configPath, params, vocab, data, withStage0(stage0, { step: result.step, elapsedSeconds: seconds(), curve, firstLoss }));
  log(`flow: done, step ${result.step}, exported to ${cfg.out}`);
  optimizer.dispose();
  tf.dispose(Object.values(params));
  return result;
}

interface StageInfo {
  path: string;
  step: number;
  seconds: number;
  curve: [number, number][];
  firstLoss: number | null;
}

interface RunInfo {
  step: number;
  elapsedSeconds: number;
  curve: [number, number][];
  firstLoss: number | null;
  init?: { checkpoint: string; step: number };
}

/** Fold an earlier stage into this run's record: steps, time and loss curve continue from it. */
function withStage0(s: StageInfo | null, r: RunInfo): RunInfo {
  if (!s) return r;
  return {
    step: s.step + r.step,
    elapsedSeconds: s.seconds + r.elapsedSeconds,
    curve: [...s.curve, ...r.curve.map(([k, l]): [number, number] => [s.step + k, l])],
    firstLoss: s.firstLoss ?? r.firstLoss,
    init: { checkpoint: s.path, step: s.step },
  };
}

function fileInfo(path: string): { sha256: string; bytes: number } {
  const b = readFileSync(path);
  return { sha256: sha256(b), bytes: b.byteLength };
}

/** Write the shipped files of a flow model: transformer, text encoder (BF16), manifest. */
export async function exportFlowModel(
  cfg: FlowTrainConfig,
  configPath: string,
  params: Params,
  vocab: readonly number[],
  data: FlowData,
  run: RunInfo,
): Promise<void> {
  mkdirSync(cfg.out, { recursive: true });
  const { flux, text } = splitParams(params);
  const meta = { format: FLUX_EMOJI_FORMAT, step: String(run.step) };
  await writeWeights(join(cfg.out, 'transformer.safetensors'), flux, 'BF16', { ...meta, params: JSON.stringify(cfg.flux) });
  await writeWeights(join(cfg.out, 'text_encoder.safetensors'), text, 'BF16', { ...meta, params: JSON.stringify(cfg.text) }, {
    'vocab.clip_ids': { dtype: 'I32', shape: [vocab.length], data: Int32Array.from(vocab) },
  });
  const files: Record<string, { sha256: string; bytes: number }> = {
    'transformer.safetensors': fileInfo(join(cfg.out, 'transformer.safetensors')),
    'text_encoder.safetensors': fileInfo(join(cfg.out, 'text_encoder.safetensors')),
  };
  let aeInfo: unknown = null;
  if (cfg.latent.kind === 'ae') {
    const aeName = 'ae.safetensors';
    const aePath = join(cfg.out, aeName);
    if (existsSync(aePath)) files[aeName] = fileInfo(aePath);
    const aeJson = join(cfg.out, 'ae.json');
    if (existsSync(aeJson)) aeInfo = JSON.parse(readFileSync(aeJson, 'utf8'));
  }
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
    dataset: {
      ...cfg.dataset,
      hash: data.ds.hash,
      images: data.ds.n,
      concepts: data.ds.concepts.length,
      styles: data.ds.vendors,
      captions: `TRAIN templates and synonyms only (world/captions.ts split seed); ${templates('train', false).length} plain + ${templates('train', true).length} styled train templates`,
    },
    training: {
      command: run.init && typeof cfg.notes?.['stage1_command'] === 'string'
        ? `${cfg.notes['stage1_command'] as string} && mce train flow --config ${configPath}`
        : `mce train flow --config ${configPath}`,
      config: cfg,
      objective: 'rectified flow: x_t = (1 - t) x0 + t eps, predict v = eps - x0, MSE',
      t_sampling: cfg.train.tSampling === 'uniform' ? 'uniform(0, 1)' : 'logit-normal: t = sigmoid(n), n ~ N(0, 1)',
      caption_dropout: cfg.train.captionDropout,
      steps: run.step,
      // A chain of stages: notes.prior_steps counts every step before this stage's init checkpoint's.
      total_steps: (typeof cfg.notes?.['prior_steps'] === 'number' ? (cfg.notes['prior_steps'] as number) : run.init?.step ?? 0) + cfg.train.steps,
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
  // Keep measured quality numbers (written by other tools) across re-exports.
  const mpath = join(cfg.out, 'manifest.json');
  if (existsSync(mpath)) {
    try {
      const old = JSON.parse(readFileSync(mpath, 'utf8')) as { quality?: Record<string, unknown> };
      if (old.quality) manifest.quality = old.quality;
    } catch {
      // a broken old manifest is simply replaced
    }
  }
  await writeFileAtomic(mpath, JSON.stringify(manifest, null, 2) + '\n');
}

export async function trainFlowFromFile(path: string, opts: FlowRunOptions = {}): Promise<TrainResult> {
  return trainFlow(readJsonConfig<FlowTrainConfig>(path), path, opts);
}
