// Wrapper bundles: a model bundle whose manifest has a `wrapper` entry that changes how it samples,
// not its weights (erase/baselines writes them; loadTextToImage hands them here). Known wrappers:
//   sld   Safe Latent Diffusion guidance (sampling/sld.ts) inside every step, with a third
//         prediction for the safety concept: FLUX (Euler on the velocity) and the UNet (DDIM on the
//         noise). Without CFG (cfg 1) SLD is off, as in diffusers' safe pipeline.
//   flowedit  FlowEdit (Kulikov et al.) as an eraser, FLUX only: when a prompt names an erased
//         concept, the model's own image for it is edited along the flow toward the same prompt with
//         each named concept replaced by its neutral phrase (other prompts sample as the base model).
// Same seed and flags, same pixels: the noise is drawn as the plain generators draw it.
import { tf, type Tensor } from '../engine/tf.js';
import { mixSeed, randnArray, randnBatch } from '../engine/rng.js';
import { makeImgIds, makeTxtIds, packLatents } from '../models/flux/pack.js';
import { unetDenoiser } from '../models/unet/index.js';
import { ddimSample } from '../sampling/ddim.js';
import { ddimPlan } from '../sampling/diffusion-schedule.js';
import { eulerSample } from '../sampling/euler.js';
import { fluxDenoiser } from '../sampling/flux.js';
import { fluxSchedule } from '../sampling/schedule.js';
import { scaledWarmup, sldCombine, type SldParams, type SldState } from '../sampling/sld.js';
import { readManifest } from './bundle.js';
import {
  FLUX_EMOJI_FORMAT, decodePacked, generate as fluxGenerate, loadFluxEmoji, ModelLoadError,
  type FluxEmojiModel, type GenerateOptions, type GenerateResult,
} from './flux-emoji.js';
import type { TextToImageModel } from './index.js';
import { decodeLatents, generateSd, loadSdEmoji, SD_EMOJI_FORMAT, type SdEmojiModel } from './sd-emoji.js';

/** The `wrapper` entry of an SLD wrapper manifest. */
export interface SldWrapperEntry {
  method: 'sld';
  safety_concept: string;
  params: SldParams;
  reference_steps: number;
}

/** One erased target of a FlowEdit wrapper: phrases that mark a prompt as showing it, and what they become. */
export interface FlowEditEdit {
  /** "kitchen knife" and its members. */
  concepts: string[];
  /** "spoon". */
  neutral: string;
}

/** The `wrapper` entry of a FlowEdit wrapper manifest. */
export interface FlowEditWrapperEntry {
  method: 'flowedit';
  /** One edit per erased target. */
  edits: FlowEditEdit[];
  params: { srcGuidance: number; tarGuidance: number; nMax: number; nMin: number; nAvg: number };
  reference_steps: number;
}

type WrapperEntry = SldWrapperEntry | FlowEditWrapperEntry;

const isEdit = (e: unknown): e is FlowEditEdit =>
  !!e && Array.isArray((e as FlowEditEdit).concepts) && typeof (e as FlowEditEdit).neutral === 'string';

function wrapperEntry(dir: string, w: unknown): WrapperEntry {
  const e = w as Record<string, unknown> | null;
  const bad = (): never => {
    throw new ModelLoadError(`${dir}/manifest.json: unknown or incomplete wrapper (known: sld, flowedit)`);
  };
  if (!e || !e.params || typeof e.reference_steps !== 'number') return bad();
  if (e.method === 'sld' && typeof e.safety_concept === 'string') return e as unknown as SldWrapperEntry;
  if (e.method !== 'flowedit') return bad();
  if (Array.isArray(e.edits) && e.edits.length > 0 && e.edits.every(isEdit)) return e as unknown as FlowEditWrapperEntry;
  // Bundles written before several targets: one target's `concepts` and `neutral` at the top level.
  if (isEdit(e)) return { method: 'flowedit', edits: [{ concepts: e.concepts, neutral: e.neutral }], params: e.params as FlowEditWrapperEntry['params'], reference_steps: e.reference_steps };
  return bad();
}

/** The prompt with each edit's concept (its longest phrase named, once) replaced by its neutral; null when it names none. */
export function editPrompt(prompt: string, edits: readonly FlowEditEdit[]): string | null {
  let out: string | null = null;
  for (const e of edits) out = replaceConcept(out ?? prompt, e.concepts, e.neutral) ?? out;
  return out;
}

/** The prompt with the first concept phrase (and its article) replaced by the neutral phrase; null when it names none. */
export function replaceConcept(prompt: string, concepts: readonly string[], neutral: string): string | null {
  for (const c of [...concepts].sort((a, b) => b.length - a.length)) {
    const re = new RegExp(`\\b(?:(an?|the)\\s+)?${c.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}\\b`, 'i');
    if (re.test(prompt)) {
      const art = /^[aeiou]/i.test(neutral) ? 'an' : 'a';
      return prompt.replace(re, (_m, a: string | undefined) => (a ? `${a.toLowerCase() === 'the' ? 'the' : art} ${neutral}` : neutral)).replace(/\s+/g, ' ').trim();
    }
  }
  return null;
}

function noiseFor(seed: number, n: number, shape: readonly [number, number, number], first = 0): Tensor {
  const per = shape[0] * shape[1] * shape[2];
  return tf.tensor4d(randnBatch(n, per, seed, first), [n, ...shape]);
}

/** The guided prediction from one forward over [x; x; x] with [prompt; negative; safety]. */
function sldPrediction(out: Tensor, n: number, cfg: number, p: SldParams, step: number, state: SldState): Tensor {
  const [c, u, s] = tf.split(out, [n, n, n], 0) as [Tensor, Tensor, Tensor];
  const pred = sldCombine(c, u, s, cfg, p, step, state);
  tf.dispose([c, u, s]);
  return pred;
}

/** SLD and FlowEdit guide in their own way: a guidance interval does not apply to them. */
function refuseInterval(opts: GenerateOptions, what: string): void {
  if (opts.cfgInterval) throw new Error(`${what} guides every step in its own way; a guidance interval (--cfg-interval) does not apply to it`);
}

function generateFluxSld(m: FluxEmojiModel, opts: GenerateOptions, w: SldWrapperEntry): GenerateResult {
  refuseInterval(opts, 'SLD');
  const man = m.manifest;
  const cfg = opts.cfg ?? man.sampling.cfg;
  if (cfg === 1) return fluxGenerate(m, opts);
  const seed = opts.seed ?? 0;
  const steps = opts.steps ?? man.sampling.steps;
  const n = opts.n ?? 1;
  const p = { ...w.params, warmupSteps: scaledWarmup(w.params.warmupSteps, steps, w.reference_steps) };
  const [, lh, lw] = man.latent.shape;
  const timesteps = fluxSchedule(steps, { imageSeqLen: man.latent.packed_tokens, shift: man.sampling.shift });
  const texts = [...Array<string>(n).fill(opts.prompt), ...Array<string>(n).fill(opts.negative ?? ''), ...Array<string>(n).fill(w.safety_concept)];
  const enc = m.text.encode(texts);
  const img_ids = makeImgIds(3 * n, lh / 2, lw / 2);
  const txt_ids = makeTxtIds(3 * n, enc.txt.shape[1]!);
  const den = fluxDenoiser(m.cfg, m.weights, { img_ids, txt: enc.txt, txt_ids, y: enc.y });
  const x0 = tf.tidy(() => packLatents(noiseFor(seed, n, man.latent.shape, opts.first ?? 0)));
  const state: SldState = { momentum: null };
  const velocity = (x: Tensor, t: number): Tensor =>
    tf.tidy(() => sldPrediction(den.velocity(tf.concat([x, x, x], 0), t), n, cfg, p, timesteps.indexOf(t), state));
  const res = eulerSample(velocity, x0, timesteps, { trajectory: opts.trajectory ?? false });
  const images = decodePacked(m, res.final);
  const trajectory = opts.trajectory ? res.x0Preds!.map((x) => decodePacked(m, x)) : undefined;
  tf.dispose([res.final, ...(res.xs ?? []), ...(res.x0Preds ?? []), x0, img_ids, txt_ids, enc.txt, enc.y]);
  state.momentum?.dispose();
  den.dispose();
  return { images, trajectory, steps, cfg, seed, timesteps };
}

/** CFG velocity of FLUX for a batch: one forward over [x; x] with [prompts; negatives]. */
function fluxGuided(m: FluxEmojiModel, prompts: readonly string[], negative: string, cfg: number): { velocity: (x: Tensor, t: number) => Tensor; dispose(): void } {
  const n = prompts.length;
  const [, lh, lw] = m.manifest.latent.shape;
  const enc = m.text.encode([...prompts, ...Array<string>(n).fill(negative)]);
  const img_ids = makeImgIds(2 * n, lh / 2, lw / 2);
  const txt_ids = makeTxtIds(2 * n, enc.txt.shape[1]!);
  const den = fluxDenoiser(m.cfg, m.weights, { img_ids, txt: enc.txt, txt_ids, y: enc.y });
  return {
    velocity: (x, t) =>
      tf.tidy(() => {
        const v = den.velocity(tf.concat([x, x], 0), t);
        const [c, u] = tf.split(v, 2, 0) as [Tensor, Tensor];
        return tf.add(u, tf.mul(tf.sub(c, u), cfg));
      }),
    dispose: () => {
      tf.dispose([img_ids, txt_ids, enc.txt, enc.y]);
      den.dispose();
    },
  };
}

function generateFluxFlowEdit(m: FluxEmojiModel, opts: GenerateOptions, w: FlowEditWrapperEntry): GenerateResult {
  refuseInterval(opts, 'FlowEdit');
  const target = editPrompt(opts.prompt, w.edits);
  if (target === null) return fluxGenerate(m, opts);
  // (no trajectory: the edit is not one sampler run)
  const man = m.manifest;
  const cfg = opts.cfg ?? man.sampling.cfg;
  const seed = opts.seed ?? 0;
  const steps = opts.steps ?? man.sampling.steps;
  const n = opts.n ?? 1;
  const ts = fluxSchedule(steps, { imageSeqLen: man.latent.packed_tokens, shift: man.sampling.shift });
  // The source image: the model's own sample for the prompt (the same noise and CFG as fluxGenerate).
  const x0 = tf.tidy(() => packLatents(noiseFor(seed, n, man.latent.shape, opts.first ?? 0)));
  const gen = fluxGuided(m, Array<string>(n).fill(opts.prompt), opts.negative ?? '', cfg);
  const xSrc = eulerSample(gen.velocity, x0, ts).final;
  gen.dispose();
  // FlowEdit over steps [N - nMax, N - nMin): z_src = (1 - t) x_src + t eps, z_tar = z + z_src - x_src,
  // z += dt (v_tar(z_tar) - v_src(z_src)), v averaged over nAvg noises; the published nMax/nMin count
  // steps of a run of reference_steps, kept as fractions of this run's steps.
  const nMax = Math.round((w.params.nMax * steps) / w.reference_steps);
  const nMin = Math.round((w.params.nMin * steps) / w.reference_steps);
  const src = fluxGuided(m, Array<string>(n).fill(opts.prompt), opts.negative ?? '', w.params.srcGuidance);
  const tar = fluxGuided(m, Array<string>(n).fill(target), opts.negative ?? '', w.params.tarGuidance);
  let z = xSrc.clone();
  for (let i = Math.max(0, steps - nMax); i < steps - nMin; i++) {
    const t = ts[i]!;
    const dt = ts[i + 1]! - t;
    const next = tf.tidy(() => {
      let dv: Tensor = tf.zerosLike(z);
      for (let a = 0; a < w.params.nAvg; a++) {
        const eps = tf.tensor(randnArray(xSrc.size, mixSeed(seed, 0x666c6f77, i, a)), xSrc.shape);
        const zSrc = tf.add(tf.mul(xSrc, 1 - t), tf.mul(eps, t));
        const zTar = tf.add(z, tf.sub(zSrc, xSrc));
        dv = tf.add(dv, tf.sub(tar.velocity(zTar, t), src.velocity(zSrc, t)));
      }
      return tf.add(z, tf.mul(dv, dt / w.params.nAvg));
    });
    z.dispose();
    z = next;
  }
  src.dispose();
  tar.dispose();
  const images = decodePacked(m, z);
  tf.dispose([x0, xSrc, z]);
  return { images, steps, cfg, seed, timesteps: ts };
}

function generateSdSld(m: SdEmojiModel, opts: GenerateOptions, w: SldWrapperEntry): GenerateResult {
  refuseInterval(opts, 'SLD');
  const man = m.manifest;
  const cfg = opts.cfg ?? man.sampling.cfg;
  if (cfg === 1) return generateSd(m, opts);
  const seed = opts.seed ?? 0;
  const steps = opts.steps ?? man.sampling.steps;
  const n = opts.n ?? 1;
  const p = { ...w.params, warmupSteps: scaledWarmup(w.params.warmupSteps, steps, w.reference_steps) };
  const plan = ddimPlan(steps);
  const texts = [...Array<string>(n).fill(opts.prompt), ...Array<string>(n).fill(opts.negative ?? ''), ...Array<string>(n).fill(w.safety_concept)];
  const enc = m.text.encode(texts);
  const den = unetDenoiser(m.cfg, m.weights, { context: enc.txt });
  const xT = noiseFor(seed, n, man.latent.shape, opts.first ?? 0);
  const state: SldState = { momentum: null };
  const eps = (x: Tensor, t: number): Tensor =>
    tf.tidy(() => sldPrediction(den.eps(tf.concat([x, x, x], 0), t), n, cfg, p, plan.timesteps.indexOf(t), state));
  const res = ddimSample(eps, xT, plan, { trajectory: opts.trajectory ?? false });
  const images = decodeLatents(m, res.final);
  const trajectory = opts.trajectory ? res.x0Preds!.map((x) => decodeLatents(m, x)) : undefined;
  tf.dispose([...new Set([res.final, ...(res.xs ?? []), ...(res.x0Preds ?? [])]), xT, enc.txt, enc.y]);
  state.momentum?.dispose();
  den.dispose();
  return { images, trajectory, steps, cfg, seed, timesteps: [...plan.timesteps] };
}

/** Load a wrapper bundle (its manifest has `wrapper`) as a TextToImageModel that samples through the wrapper. */
export async function loadWrapped(nameOrPath: string): Promise<TextToImageModel> {
  const { dir, manifest } = readManifest(nameOrPath);
  const w = wrapperEntry(dir, manifest['wrapper']);
  const format = String(manifest['format']);
  if (format === FLUX_EMOJI_FORMAT) {
    const m = await loadFluxEmoji(dir);
    return {
      name: m.manifest.name, family: 'flow', dir: m.dir, manifest: m.manifest, imageSize: m.manifest.image_size,
      defaults: { steps: m.manifest.sampling.steps, cfg: m.manifest.sampling.cfg },
      generate: (opts) => (w.method === 'sld' ? generateFluxSld(m, opts, w) : generateFluxFlowEdit(m, opts, w)),
      dispose: () => m.dispose(),
    };
  }
  if (format === SD_EMOJI_FORMAT) {
    if (w.method !== 'sld') throw new ModelLoadError(`${dir}: the ${w.method} wrapper works on FLUX models only`);
    const m = await loadSdEmoji(dir);
    return {
      name: m.manifest.name, family: 'diffusion', dir: m.dir, manifest: m.manifest, imageSize: m.manifest.image_size,
      defaults: { steps: m.manifest.sampling.steps, cfg: m.manifest.sampling.cfg },
      generate: (opts) => generateSdSld(m, opts, w),
      dispose: () => m.dispose(),
    };
  }
  throw new ModelLoadError(`${dir}: a wrapper over an unknown model format '${format}'`);
}
