// The model `mce erase` works on, whatever its family: a FLUX bundle (flux-emoji: Euler on the FLUX
// schedule) or an SD-style UNet bundle (sd-emoji: DDIM, CFG inside each step). The bundle's manifest
// picks the family loader (generate/); the result is what the trainer, the grids, the evaluation and
// the mask file need: the erase model, its sampler settings, a way to sample prompts from seeded
// noise with or without masks, and a decoder to RGB.
import { tf, type Tensor } from '../../engine/tf.js';
import { readManifest } from '../../generate/bundle.js';
import { FLUX_EMOJI_FORMAT, ModelLoadError, decodePacked, loadFluxEmoji, type RgbImage } from '../../generate/flux-emoji.js';
import { SD_EMOJI_FORMAT, decodeLatents, loadSdEmoji } from '../../generate/sd-emoji.js';
import { fluxMaskSpecs } from '../../models/flux/masks.js';
import type { FluxParams } from '../../models/flux/params.js';
import type { UnetParams } from '../../models/unet/params.js';
import { unetMaskSpecs } from '../../models/unet/masks.js';
import { ddimPlan } from '../../sampling/diffusion-schedule.js';
import { fluxSchedule } from '../../sampling/schedule.js';
import { PromptCache, packedNoise, sampleFinal, type FluxEraseModel, type SamplerSettings } from './objective.js';
import { UnetPromptCache, unetNoise, unetSample, type DdimSettings, type UnetEraseModel } from './unet.js';
import type { GuidanceInterval } from '../../sampling/guidance.js';

/** Masks by hook-point name (FLUX or UNet names). */
export type NamedMasks = Readonly<Record<string, Tensor>>;

/** States of one sampling run: the final output, and with a trajectory every state x_0..x_N (xs[N] is final). */
export interface SampleRun {
  final: Tensor;
  xs?: Tensor[];
}

/** Samples prompts with the subject's sampler; prompt encodings are cached until dispose(). */
export interface SubjectSampler {
  /** Prompt i starts from the noise of noiseSeeds[i]; all prompts run as one batch. */
  sample(prompts: readonly string[], noiseSeeds: readonly number[], masks?: NamedMasks, trajectory?: boolean): SampleRun;
  dispose(): void;
}

export interface EraseSubject {
  /** 'flow' (FLUX, Euler) or 'diffusion' (UNet, DDIM). */
  family: 'flow' | 'diffusion';
  /** What trainMce takes. */
  model: FluxEraseModel | UnetEraseModel;
  sampler: SamplerSettings | DdimSettings;
  /** The sampler as summary.json records it. */
  samplerRecord: { kind: string; steps: number; cfg: number; cfgInterval?: GuidanceInterval; timesteps: number[] };
  imageSize: number;
  /** Every hook point of the model. */
  maskSpecs: { name: string; size: number }[];
  /** The architecture the mask file records (saveMasks' `cfg` for FLUX, `unet` for a UNet). */
  maskArch: { cfg: FluxParams } | { unet: UnetParams };
  newSampler(): SubjectSampler;
  /** Final outputs (a batch) -> RGB images. */
  decode(final: Tensor): RgbImage[];
  dispose(): void;
}

export interface SubjectOptions {
  /** Sampling steps (default: the bundle's). */
  steps?: number;
  /** CFG scale (default: the bundle's). */
  cfg?: number;
  /** Guide only in this interval of sampler time (sampling/guidance.ts; default: every step). */
  cfgInterval?: GuidanceInterval;
}

/** The guidance interval as settings carry it: only when one is set, so earlier runs' records and hashes stay as they were. */
function interval(opts: SubjectOptions): { cfgInterval?: GuidanceInterval } {
  return opts.cfgInterval ? { cfgInterval: opts.cfgInterval } : {};
}

/** Load a model bundle (shipped name or folder) as an erase subject. Bad paths and files throw ModelLoadError. */
export async function loadEraseSubject(nameOrPath: string, opts: SubjectOptions = {}): Promise<EraseSubject> {
  const format = String(readManifest(nameOrPath).manifest['format']);
  if (format === FLUX_EMOJI_FORMAT) return fluxSubject(await loadFluxEmoji(nameOrPath), opts);
  if (format === SD_EMOJI_FORMAT) return unetSubject(await loadSdEmoji(nameOrPath), opts);
  throw new ModelLoadError(`${nameOrPath}: mce erase works on ${FLUX_EMOJI_FORMAT} and ${SD_EMOJI_FORMAT} bundles, this one is '${format}'`);
}

function fluxSubject(m: Awaited<ReturnType<typeof loadFluxEmoji>>, opts: SubjectOptions): EraseSubject {
  const man = m.manifest;
  const model: FluxEraseModel = { cfg: m.cfg, weights: m.weights, latent: man.latent.shape, encode: (p) => m.text.encode(p) };
  const steps = opts.steps ?? man.sampling.steps;
  const sampler: SamplerSettings = {
    timesteps: fluxSchedule(steps, { imageSeqLen: man.latent.packed_tokens, shift: man.sampling.shift }),
    cfg: opts.cfg ?? man.sampling.cfg,
    ...interval(opts),
  };
  return {
    family: 'flow',
    model,
    sampler,
    samplerRecord: { kind: 'Euler (FLUX schedule)', steps, cfg: sampler.cfg, ...interval(opts), timesteps: [...sampler.timesteps] },
    imageSize: man.image_size,
    maskSpecs: fluxMaskSpecs(m.cfg),
    maskArch: { cfg: m.cfg },
    newSampler() {
      const cache = new PromptCache(model);
      return batchSampler((s) => packedNoise(model, s), (p, x, masks, tr) => sampleFinal(model, cache, p, x, sampler, masks, tr), () => cache.dispose());
    },
    decode: (final) => decodePacked(m, final),
    dispose: () => m.dispose(),
  };
}

function unetSubject(m: Awaited<ReturnType<typeof loadSdEmoji>>, opts: SubjectOptions): EraseSubject {
  const man = m.manifest;
  const model: UnetEraseModel = {
    kind: 'unet',
    cfg: m.cfg,
    weights: m.weights,
    latent: man.latent.shape,
    encode: (p) => {
      const e = m.text.encode(p);
      e.y.dispose();
      return e.txt;
    },
  };
  const steps = opts.steps ?? man.sampling.steps;
  const sampler: DdimSettings = { plan: ddimPlan(steps), cfg: opts.cfg ?? man.sampling.cfg, ...interval(opts) };
  return {
    family: 'diffusion',
    model,
    sampler,
    samplerRecord: { kind: 'DDIM (eta 0, leading), CFG inside each step', steps, cfg: sampler.cfg, ...interval(opts), timesteps: [...sampler.plan.timesteps] },
    imageSize: man.image_size,
    maskSpecs: unetMaskSpecs(m.cfg),
    maskArch: { unet: m.cfg },
    newSampler() {
      const cache = new UnetPromptCache(model);
      return batchSampler((s) => unetNoise(model, s), (p, x, masks, tr) => unetSample(model, cache, p, x, sampler, masks, tr), () => cache.dispose());
    },
    decode: (final) => decodeLatents(m, final),
    dispose: () => m.dispose(),
  };
}

/** A SubjectSampler from a family's noise (one item per seed) and its sampler run over a batch. */
function batchSampler(
  noiseOf: (seed: number) => Tensor,
  run: (prompts: readonly string[], noise: Tensor, masks: NamedMasks | undefined, trajectory: boolean) => { final: Tensor; xs?: Tensor[]; x0Preds?: Tensor[] },
  dispose: () => void,
): SubjectSampler {
  return {
    sample(prompts, seeds, masks, trajectory = false) {
      const noise = tf.tidy(() => tf.concat(seeds.map(noiseOf), 0));
      const r = run(prompts, noise, masks, trajectory);
      tf.dispose([noise, ...(r.x0Preds ?? [])]);
      return { final: r.final, xs: r.xs };
    },
    dispose,
  };
}
