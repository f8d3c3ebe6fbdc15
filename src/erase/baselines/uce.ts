// UCE (Unified Concept Editing, Gandikota et al., WACV 2024): a closed-form edit of the linear maps
// that turn the text sequence into what the image reads (closed-form.ts has the formula), so the
// concept's tokens produce what the guide concept's tokens produce, and preserved texts are kept.
//
// Which maps:
//   UNet (sd-emoji)  every cross-attention `attn2.to_k` and `attn2.to_v` (UCE edits exactly these);
//                    their input is the text encoder's token sequence itself.
//   FLUX             the K and V rows of `double_blocks.i.txt_attn.qkv`: the keys and values the
//                    image tokens attend to in the joint attention are the analogue of SD's
//                    cross-attention to_k/to_v. Not edited: the Q rows (text queries: SD has no
//                    such path), single blocks (linear1 serves image and text tokens alike, an edit
//                    would hit every image), and the pooled vector path `vector_in` (FLUX's second
//                    way for text to reach the image, which SD1.x cross-attention has no analogue of).
//                    The input of txt_attn.qkv is the text stream after txt_in, earlier blocks and
//                    the block's AdaLN modulation, so it depends on the time and (from block 1 on) on
//                    the image: it is captured on the ORIGINAL model at every step of a seeded
//                    sampler run (CFG), the concept and the guide text at the same states.
//
// Texts, as train_erase.py: erase texts are the concept phrases (the target's name and members),
// each mapped to the guide phrase (the target's neutral, "spoon"); tokens are aligned from the
// last word token to the end (EOT and padding included), as UCE slices them. Preserved: "" and
// the preserve concept names, every token, mapped through the original W.
// Published defaults (train_erase.py main): lambda 0.5, erase_scale 1, preserve_scale
// max(0.1, 1 / #retain texts), technique 'replace', with_to_k true.
import { tf, type Tensor } from '../../engine/tf.js';
import { layerNorm, linear, modulate, silu } from '../../engine/ops.js';
import { modulation } from '../../models/flux/blocks.js';
import { mlpEmbedder, timestepEmbedding } from '../../models/flux/embed.js';
import { fluxForwardWithActivations } from '../../models/flux/model.js';
import { makeImgIds, makeTxtIds } from '../../models/flux/pack.js';
import type { FluxParams } from '../../models/flux/params.js';
import { uceClosedForm, type Rows } from './closed-form.js';
import { disposeCond, guidedPredict, type BaselineModel } from './family.js';

export interface UceSettings {
  lambda: number;
  eraseScale: number;
  /** null: max(0.1, 1 / number of retain texts), as train_erase.py. */
  preserveScale: number | null;
  /** FLUX: sampler steps whose states the inputs are captured at. */
  captureSteps: number;
  /** FLUX: CFG of the capture runs. */
  captureCfg: number;
  /** Seed of the capture runs' noise. */
  seed: number;
}

export const UCE_DEFAULTS: Readonly<UceSettings> = Object.freeze({
  lambda: 0.5,
  eraseScale: 1,
  preserveScale: null,
  captureSteps: 6,
  captureCfg: 4,
  seed: 0,
});

export interface UceTexts {
  /** Concept phrases to erase. */
  erase: readonly string[];
  /** What they map to (one guide for all, or one per erase text). */
  guide: string | readonly string[];
  /** Concept phrases to keep ("" is added, as train_erase.py does). */
  preserve: readonly string[];
}

/** One edited map: a weight and the row range of it that is edited (FLUX qkv: the K and V rows). */
export interface UceSite {
  weight: string;
  rows: readonly [number, number];
}

export interface UceResult {
  /** The edited weights (new tensors; only the changed ones). */
  weights: Record<string, Tensor>;
  sites: UceSite[];
  settings: UceSettings & { preserveScale: number };
  /** Erase / preserve input rows per site (token rows x states). */
  rows: { erase: number; preserve: number };
}

/** The maps UCE edits in a model. */
export function uceSites(model: BaselineModel): UceSite[] {
  if (model.family === 'flow') {
    const cfg = model.params as FluxParams;
    const h = cfg.hidden_size;
    return Array.from({ length: cfg.depth }, (_, i) => ({ weight: `double_blocks.${i}.txt_attn.qkv.weight`, rows: [h, 3 * h] as const }));
  }
  return Object.keys(model.weights)
    .filter((n) => /\.attn2\.to_[kv]\.weight$/.test(n))
    .sort()
    .map((n) => ({ weight: n, rows: [0, model.weights[n]!.shape[0]!] as const }));
}

/**
 * FLUX: the input of every double block's txt_attn.qkv for one text at a batch of states
 * (x [S, L, C] at times ts): [S, T, hidden] per block.
 */
function fluxQkvInputs(model: BaselineModel, text: string, x: Tensor, ts: readonly number[]): Tensor[] {
  const cfg = model.params as FluxParams;
  const w = model.weights;
  const s = x.shape[0]!;
  const [, lh, lw] = model.latent;
  return tf.tidy(() => {
    const e = model.encode([text]);
    const txt = tf.tile(e.txt, [s, 1, 1]);
    const y = tf.tile(e.y!, [s, 1]);
    const timesteps = tf.tensor1d([...ts]);
    const guidance = cfg.guidance_embed ? tf.fill([s], 4.0) : null;
    const inputs = { img: x, img_ids: makeImgIds(s, lh / 2, lw / 2), txt, txt_ids: makeTxtIds(s, txt.shape[1]!), timesteps, y, guidance };
    const { acts } = fluxForwardWithActivations(cfg, w, inputs);
    let vec = mlpEmbedder(w, 'time_in', timestepEmbedding(timesteps, 256));
    if (guidance) vec = tf.add(vec, mlpEmbedder(w, 'guidance_in', timestepEmbedding(guidance, 256)));
    const svec = silu(tf.add(vec, mlpEmbedder(w, 'vector_in', y)));
    const out: Tensor[] = [];
    for (let i = 0; i < cfg.depth; i++) {
      const stream = i === 0 ? linear(txt, w['txt_in.weight']!, w['txt_in.bias']) : acts[`double_blocks.${i - 1}.txt`]!;
      const [shift, scale] = modulation(w, `double_blocks.${i}.txt_mod`, svec, 6);
      out.push(modulate(layerNorm(stream, 1e-6), shift!, scale!));
    }
    return out;
  });
}

/** The states a text's inputs are captured at: every step of a seeded CFG run of the original model (FLUX). */
export function captureStates(model: BaselineModel, text: string, s: UceSettings): { x: Tensor; ts: number[] } {
  const sampler = model.sampler(s.captureSteps);
  const cond = model.encode([text]);
  const uncond = model.encode(['']);
  const xs: Tensor[] = [model.noise(s.seed, 1)];
  for (let k = 0; k + 1 < sampler.steps; k++) {
    const cur = xs[k]!;
    xs.push(tf.tidy(() => sampler.update(cur, guidedPredict(model, cur, sampler.times[k]!, cond, uncond, s.captureCfg), k)));
  }
  const x = tf.concat(xs, 0);
  tf.dispose(xs);
  disposeCond(cond);
  disposeCond(uncond);
  return { x, ts: [...sampler.times] };
}

/** Per site, the input rows [S, T, d] of a text at the given states (UNet: the text sequence, the same tensor for every site). */
export function siteInputs(model: BaselineModel, text: string, states: { x: Tensor; ts: number[] } | null): Tensor[] {
  if (model.family === 'flow') return fluxQkvInputs(model, text, states!.x, states!.ts);
  const e = model.encode([text]);
  return uceSites(model).map(() => e.txt);
}

/** Token rows [from, to) of every state of a [S, T, d] input, flattened into host rows. */
function tokenRows(t: Tensor, from: number, to: number): Float32Array {
  return hostData(() => t.slice([0, from, 0], [-1, to - from, -1]));
}

/** A tensor's numbers on the host (the tensor made by fn is freed). */
function hostData(fn: () => Tensor): Float32Array {
  const t = fn();
  const d = t.dataSync() as Float32Array;
  t.dispose();
  return d;
}

function concatRows(parts: Float32Array[], dim: number): Rows {
  const n = parts.reduce((a, p) => a + p.length, 0);
  const data = new Float32Array(n);
  let o = 0;
  for (const p of parts) {
    data.set(p, o);
    o += p.length;
  }
  return { data, n: n / dim, dim };
}

/** Run UCE on a model: the edited weights (the model's own weights are not changed). */
export function uceEdit(model: BaselineModel, texts: UceTexts, settings: Partial<UceSettings> = {}): UceResult {
  const s: UceSettings = { ...UCE_DEFAULTS, ...settings };
  if (!(s.lambda > 0)) throw new Error('UCE: lambda must be > 0');
  const retain = ['', ...texts.preserve];
  const preserveScale = s.preserveScale ?? Math.max(0.1, 1 / retain.length);
  const sites = uceSites(model);
  const guides = typeof texts.guide === 'string' ? texts.erase.map(() => texts.guide as string) : texts.guide;
  if (guides.length !== texts.erase.length) throw new Error('UCE: one guide per erase text');

  const eraseIn: Float32Array[][] = sites.map(() => []);
  const eraseNew: Float32Array[][] = sites.map(() => []);
  const keepIn: Float32Array[][] = sites.map(() => []);
  texts.erase.forEach((old, j) => {
    const neu = guides[j]!;
    const states = model.family === 'flow' ? captureStates(model, old, s) : null;
    const a = siteInputs(model, old, states);
    const b = siteInputs(model, neu, states);
    // train_erase.py: from the last word token (EOT - 1) to the end, the longer text's tail cut so both align.
    const T = a[0]!.shape[1]!;
    const fo = model.eot(old) - 1;
    const fn = model.eot(neu) - 1;
    const far = Math.max(fo, fn);
    sites.forEach((_, k) => {
      eraseIn[k]!.push(tokenRows(a[k]!, fo, T - Math.max(0, far - fo)));
      eraseNew[k]!.push(tokenRows(b[k]!, fn, T - Math.max(0, far - fn)));
    });
    tf.dispose([...new Set([...a, ...b])]);
    if (states) states.x.dispose();
  });
  for (const text of retain) {
    const states = model.family === 'flow' ? captureStates(model, text, s) : null;
    const a = siteInputs(model, text, states);
    sites.forEach((_, k) => keepIn[k]!.push(tokenRows(a[k]!, 0, a[k]!.shape[1]!)));
    tf.dispose([...new Set(a)]);
    if (states) states.x.dispose();
  }

  const out: Record<string, Tensor> = {};
  let rows = { erase: 0, preserve: 0 };
  sites.forEach((site, k) => {
    const full = model.weights[site.weight]!;
    const [r0, r1] = site.rows;
    const d = full.shape[1]!;
    const o = r1 - r0;
    const wSite = hostData(() => full.slice([r0, 0], [o, d]));
    const cIn = concatRows(eraseIn[k]!, d);
    const cNew = concatRows(eraseNew[k]!, d);
    // technique 'replace': the target of an erase token is W applied to the guide's token.
    const targets: Rows = (() => {
      const t = new Float64Array(cNew.n * o);
      for (let r = 0; r < cNew.n; r++)
        for (let i = 0; i < o; i++) {
          let acc = 0;
          for (let c = 0; c < d; c++) acc += wSite[i * d + c]! * cNew.data[r * d + c]!;
          t[r * o + i] = acc;
        }
      return { data: t, n: cNew.n, dim: o };
    })();
    const keep = concatRows(keepIn[k]!, d);
    const edited = uceClosedForm(wSite, o, { inputs: cIn, targets }, keep, { lambda: s.lambda, eraseScale: s.eraseScale, preserveScale });
    out[site.weight] = tf.tidy(() => {
      const e = tf.tensor2d(edited, [o, d]);
      const parts = [r0 > 0 ? full.slice([0, 0], [r0, d]) : null, e, r1 < full.shape[0]! ? full.slice([r1, 0], [-1, d]) : null].filter((p): p is Tensor => p !== null);
      return parts.length === 1 ? parts[0]! : tf.concat(parts, 0);
    });
    rows = { erase: cIn.n, preserve: keep.n };
  });
  return { weights: out, sites, settings: { ...s, preserveScale }, rows };
}
