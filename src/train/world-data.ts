// What the emoji-world base-model trainers (flow: flux-emoji, diffusion: sd-emoji) share: the
// clean training samples (dataset renders encoded by the trained autoencoder, or raw pixels), the
// TRAIN caption lists of every record and the per-sample caption draw (with caption dropout for
// classifier-free guidance), the text encoder's vocabulary, and the text-encoder file they ship.
import { existsSync } from 'node:fs';
import { tf, type Tensor } from '../engine/tf.js';
import type { Rng } from '../engine/rng.js';
import { loadFloat32 } from '../io/safetensors.js';
import { AutoEncoder, type AutoEncoderParams } from '../models/flux/autoencoder.js';
import { buildTextVocab, initTextEncoderWeights, PromptTokenizer, type TextEncoderParams } from '../models/text/encoder.js';
import { captions, PLAIN_TEMPLATES, STYLE_TEMPLATES } from '../world/captions.js';
import { loadCatalogue } from '../world/catalogue.js';
import type { Dataset } from '../world/dataset.js';
import { STYLES, VENDORS, type Vendor } from '../world/vendors.js';
import { datasetImages, writeWeights } from './common.js';
import type { Params } from './optim.js';

/** The latent of a base model: the trained autoencoder's (file path), or the pixels themselves. */
export type LatentSpec = { kind: 'ae'; ae: string } | { kind: 'pixels' };

/** Every phrase the world can put in a caption (train and held-out): the text encoder's vocabulary source. */
export function worldPhrases(): string[] {
  const out: string[] = ['a an the'];
  for (const c of loadCatalogue().concepts) out.push(c.name, ...c.synonyms);
  for (const v of VENDORS) out.push(STYLES[v].name, ...STYLES[v].synonyms);
  for (const t of [...PLAIN_TEMPLATES, ...STYLE_TEMPLATES]) out.push(t.replace(/\{A\}|\{c\}|\{s\}|\{aS\}/g, ' '));
  return out;
}

/** The text encoder's vocabulary (CLIP ids of every world phrase) and its prompt tokenizer. */
export function worldTextTokenizer(text: TextEncoderParams): { vocab: number[]; tok: PromptTokenizer } {
  const vocab = buildTextVocab(worldPhrases());
  return { vocab, tok: new PromptTokenizer(vocab, text.context_length) };
}

export async function loadAeFile(path: string): Promise<{ ae: AutoEncoder; params: AutoEncoderParams }> {
  if (!existsSync(path)) throw new Error(`autoencoder weights not found: ${path} (train them first: mce train ae --config configs/flux-emoji-ae.json, then configs/flux-emoji-ae-decoder.json for flux-emoji's)`);
  const { tensors, metadata } = await loadFloat32(path);
  const raw = metadata['params'];
  if (!raw) throw new Error(`${path}: no "params" metadata (not an mce autoencoder file)`);
  const params = JSON.parse(raw) as AutoEncoderParams;
  return { ae: AutoEncoder.fromWeights(params, tensors), params };
}

/** Clean samples of every dataset record, in record order. */
export interface WorldLatents {
  /** Per record, `perSample` floats: the latent (NCHW) after `layout`, row-major. */
  x0: Float32Array;
  perSample: number;
  /** Latent grid before `layout`: channels x h x w. */
  latentShape: [number, number, number];
  ae: AutoEncoder | null;
  aeParams: AutoEncoderParams | null;
  /** Milliseconds spent encoding. */
  ms: number;
}

/**
 * Encode every record of `ds` (the autoencoder's mean latent, scaled, or pixels in [-1, 1]), 64 at a
 * time; `layout` maps each NCHW chunk to the stored layout (e.g. FLUX 2x2 packing). The autoencoder
 * stays loaded (the caller disposes it).
 */
export async function encodeWorldLatents(ds: Dataset, latent: LatentSpec, layout: (x: Tensor) => Tensor = (x) => x.clone()): Promise<WorldLatents> {
  let ae: AutoEncoder | null = null;
  let aeParams: AutoEncoderParams | null = null;
  let latentShape: [number, number, number];
  if (latent.kind === 'ae') {
    ({ ae, params: aeParams } = await loadAeFile(latent.ae));
    const f = 2 ** (aeParams.ch_mult.length - 1);
    latentShape = [aeParams.z_channels, ds.size / f, ds.size / f];
  } else {
    latentShape = [3, ds.size, ds.size];
  }
  const t0 = Date.now();
  const chunks: Float32Array[] = [];
  for (let i = 0; i < ds.n; i += 64) {
    const idx = Array.from({ length: Math.min(64, ds.n - i) }, (_, k) => i + k);
    const out = tf.tidy(() => {
      const img = datasetImages(ds, idx);
      return layout(ae ? ae.encode(img) : img);
    });
    chunks.push(out.dataSync() as Float32Array);
    out.dispose();
  }
  const perSample = latentShape[0] * latentShape[1] * latentShape[2];
  const x0 = new Float32Array(ds.n * perSample);
  let off = 0;
  for (const ch of chunks) {
    x0.set(ch, off);
    off += ch.length;
  }
  return { x0, perSample, latentShape, ae, aeParams, ms: Date.now() - t0 };
}

/** Per record: its styled and its plain TRAIN captions (held-out templates and synonyms never appear). */
export interface TrainCaptions {
  styled: string[][];
  plain: string[][];
}

export function trainCaptionLists(ds: Dataset): TrainCaptions {
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
  return { styled, plain };
}

/**
 * The caption of one training sample of record k: with p = captionDropout the empty prompt ""
 * (the unconditional input of classifier-free guidance), else a styled TRAIN caption with
 * p = styledFraction, a plain one otherwise.
 */
export function sampleTrainCaption(rng: Rng, caps: TrainCaptions, k: number, captionDropout: number, styledFraction: number): string {
  if (rng.uniform() < captionDropout) return '';
  const list = rng.uniform() < styledFraction ? caps.styled[k]! : caps.plain[k]!;
  return list[rng.int(list.length)]!;
}

/**
 * A training batch's clean latents, captions and timesteps. Each sample draws its record, then its
 * caption, then its timestep (`drawT`), in that order, so a resumed run replays the same batches.
 */
export function drawTrainSamples<T>(
  rng: Rng,
  data: TrainCaptions & { ds: { n: number }; x0: Float32Array },
  train: { batch: number; captionDropout: number; styledFraction: number },
  per: number,
  drawT: () => T,
): { x0: Float32Array; t: T[]; prompts: string[] } {
  const x0 = new Float32Array(train.batch * per);
  const t: T[] = [];
  const prompts: string[] = [];
  for (let i = 0; i < train.batch; i++) {
    const k = rng.int(data.ds.n);
    x0.set(data.x0.subarray(k * per, (k + 1) * per), i * per);
    prompts.push(sampleTrainCaption(rng, data, k, train.captionDropout, train.styledFraction));
    t.push(drawT());
  }
  return { x0, t, prompts };
}

/** Write a trained text encoder (BF16, CLIP names) with its vocabulary ('vocab.clip_ids', I32). */
export async function writeTextEncoderFile(
  path: string,
  weights: Record<string, Tensor>,
  params: TextEncoderParams,
  vocab: readonly number[],
  metadata: Record<string, string>,
): Promise<void> {
  await writeWeights(path, weights, 'BF16', { ...metadata, params: JSON.stringify(params) }, {
    'vocab.clip_ids': { dtype: 'I32', shape: [vocab.length], data: Int32Array.from(vocab) },
  });
}

/** Add fresh text-encoder variables to a trainer's params, named "text.<CLIP name>" (seeded). */
export function addTextEncoderParams(params: Params, text: TextEncoderParams, vocabRows: number, seed: number): void {
  for (const [n, t] of Object.entries(initTextEncoderWeights(text, vocabRows, seed))) {
    params[`text.${n}`] = tf.variable(t, true);
    t.dispose();
  }
}

/** Split a trainer's params into the image model's weights and the text encoder's ("text." prefix removed). */
export function splitTextParams(params: Record<string, Tensor>): { model: Record<string, Tensor>; text: Record<string, Tensor> } {
  const model: Record<string, Tensor> = {};
  const text: Record<string, Tensor> = {};
  for (const [n, t] of Object.entries(params)) {
    if (n.startsWith('text.')) text[n.slice(5)] = t;
    else model[n] = t;
  }
  return { model, text };
}
