// Wrapper bundles: a model bundle whose manifest has a `wrapper` entry that changes how it samples,
// not its weights (erase/baselines writes them; loadTextToImage hands them here). Known wrappers:
//   sld   Safe Latent Diffusion guidance (sampling/sld.ts) inside every step, with a third
//         prediction for the safety concept: FLUX (Euler on the velocity) and the UNet (DDIM on the
//         noise). Without CFG (cfg 1) SLD is off, as in diffusers' safe pipeline.
// Same seed and flags, same pixels: the noise is drawn as the plain generators draw it.
import { tf, type Tensor } from '../engine/tf.js';
import { mixSeed, randnArray } from '../engine/rng.js';
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

function sldEntry(dir: string, w: unknown): SldWrapperEntry {
  const e = w as Partial<SldWrapperEntry> | null;
  if (!e || e.method !== 'sld' || typeof e.safety_concept !== 'string' || !e.params || typeof e.reference_steps !== 'number') {
    throw new ModelLoadError(`${dir}/manifest.json: unknown or incomplete wrapper (known: sld with safety_concept, params, reference_steps)`);
  }
  return e as SldWrapperEntry;
}

function noiseFor(seed: number, n: number, shape: readonly [number, number, number]): Tensor {
  const per = shape[0] * shape[1] * shape[2];
  const data = new Float32Array(n * per);
  for (let i = 0; i < n; i++) data.set(randnArray(per, mixSeed(seed, i)), i * per);
  return tf.tensor4d(data, [n, ...shape]);
}

/** The guided prediction from one forward over [x; x; x] with [prompt; negative; safety]. */
function sldPrediction(out: Tensor, n: number, cfg: number, p: SldParams, step: number, state: SldState): Tensor {
  const [c, u, s] = tf.split(out, [n, n, n], 0) as [Tensor, Tensor, Tensor];
  const pred = sldCombine(c, u, s, cfg, p, step, state);
  tf.dispose([c, u, s]);
  return pred;
}

function generateFluxSld(m: FluxEmojiModel, opts: GenerateOptions, w: SldWrapperEntry): GenerateResult {
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
  const x0 = tf.tidy(() => packLatents(noiseFor(seed, n, man.latent.shape)));
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

function generateSdSld(m: SdEmojiModel, opts: GenerateOptions, w: SldWrapperEntry): GenerateResult {
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
  const xT = noiseFor(seed, n, man.latent.shape);
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
  const w = sldEntry(dir, manifest['wrapper']);
  const format = String(manifest['format']);
  if (format === FLUX_EMOJI_FORMAT) {
    const m = await loadFluxEmoji(dir);
    return {
      name: m.manifest.name, family: 'flow', dir: m.dir, manifest: m.manifest, imageSize: m.manifest.image_size,
      defaults: { steps: m.manifest.sampling.steps, cfg: m.manifest.sampling.cfg },
      generate: (opts) => generateFluxSld(m, opts, w),
      dispose: () => m.dispose(),
    };
  }
  if (format === SD_EMOJI_FORMAT) {
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
