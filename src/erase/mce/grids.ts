// The pictures of an MCE run, for any erase subject (FLUX or UNet): validation grids during training
// (original | continuous masks | binary masks) and, after it, the before/after grid with the
// trajectory divergence curve: the mean |x_t original - x_t erased| at every sampling state, same
// noise, on erase and on preserve prompts (does the erased model follow the original for most of
// the trajectory and depart only at the end?).
import { tf, type Tensor } from '../../engine/tf.js';
import { imageGrid, type RgbImage } from '../../generate/flux-emoji.js';
import { fluxMasksFrom, type HostMasks } from './masks.js';
import { noiseSeed } from './objective.js';
import type { PromptSets } from './prompts.js';
import type { EraseSubject, SubjectSampler } from './subject.js';

/** Nearest-neighbour upscale by an integer factor (32 px emoji are unreadable in a report). */
export function upscale(img: RgbImage, f: number): RgbImage {
  const W = img.width * f;
  const H = img.height * f;
  const data = new Uint8Array(W * H * 3);
  for (let y = 0; y < H; y++) for (let x = 0; x < W; x++) {
    const src = ((Math.floor(y / f) * img.width) + Math.floor(x / f)) * 3;
    data.set(img.data.subarray(src, src + 3), (y * W + x) * 3);
  }
  return { width: W, height: H, data };
}

/** The upscale factor that shows images of `size` px at about 128 px. */
export function displayScale(size: number): number {
  return Math.max(1, Math.floor(128 / size));
}

/** Noise seeds of the validation grids and of the before/after grid (fixed per run seed). */
export const validationSeeds = (runSeed: number, n: number): number[] => Array.from({ length: n }, (_, i) => noiseSeed(runSeed + 104729, i));
const beforeAfterSeeds = (runSeed: number, n: number): number[] => Array.from({ length: n }, (_, i) => noiseSeed(runSeed + 7919, i));

/** One validation grid: a row per prompt; columns original | continuous masks | binary masks (same noise). */
export function validationGrid(subject: EraseSubject, sampler: SubjectSampler, prompts: readonly string[], runSeed: number, logits: Readonly<Record<string, Tensor>>): RgbImage {
  const seeds = validationSeeds(runSeed, prompts.length);
  const scale = displayScale(subject.imageSize);
  const cols: RgbImage[][] = [];
  for (const mode of [null, 'continuous', 'binary'] as const) {
    const masks = mode ? fluxMasksFrom(logits, mode, 0) : undefined;
    const r = sampler.sample(prompts, seeds, masks);
    cols.push(subject.decode(r.final).map((im) => upscale(im, scale)));
    tf.dispose([r.final, ...Object.values(masks ?? {})]);
  }
  return imageGrid(prompts.map((_, i) => cols.map((c) => c[i]!)));
}

export interface BeforeAfter {
  /** Mean |x_t original - x_t erased (binary masks)| at every state x_0..x_N, per prompt kind. */
  divergence: Record<string, number[]>;
  /** Row labels of the grid. */
  rows: { kind: string; prompt: string }[];
  /** Columns original | erased; null when not asked for. */
  grid: RgbImage | null;
}

/** The original and the erased model (binary masks at 0 of `logits`, or keep-masks) on the first erase and preserve prompts, same noise. */
export function beforeAfter(subject: EraseSubject, sets: PromptSets, logits: Readonly<HostMasks>, runSeed: number, opts: { grid: boolean }): BeforeAfter {
  const rows: { kind: string; prompt: string }[] = [
    ...sets.erase.slice(0, 3).map((p) => ({ kind: 'erase', prompt: p.prompt })),
    ...sets.preserve.slice(0, 3).map((p) => ({ kind: sets.neighbours.length ? 'neighbour/preserve' : 'preserve', prompt: p })),
  ];
  const scale = displayScale(subject.imageSize);
  const sampler = subject.newSampler();
  const masks = fluxMasksFrom(logits, 'binary', 0);
  const divergence: Record<string, number[]> = {};
  const gridRows: RgbImage[][] = [];
  try {
    for (const kind of ['erase', 'preserve'] as const) {
      const prompts = kind === 'erase' ? sets.erase.slice(0, 4).map((p) => p.prompt) : sets.preserve.slice(0, 4);
      if (!prompts.length) continue;
      const seeds = beforeAfterSeeds(runSeed, prompts.length);
      const a = sampler.sample(prompts, seeds, undefined, true);
      const b = sampler.sample(prompts, seeds, masks, true);
      divergence[kind] = a.xs!.map((x, k) => {
        const d = tf.tidy(() => tf.mean(tf.abs(tf.sub(x, b.xs![k]!))));
        const v = d.dataSync()[0]!;
        d.dispose();
        return Number(v.toFixed(6));
      });
      if (opts.grid) {
        const ia = subject.decode(a.final);
        const ib = subject.decode(b.final);
        prompts.slice(0, 3).forEach((_, i) => gridRows.push([upscale(ia[i]!, scale), upscale(ib[i]!, scale)]));
      }
      tf.dispose([...a.xs!, ...b.xs!]);
    }
  } finally {
    tf.dispose(Object.values(masks));
    sampler.dispose();
  }
  return { divergence, rows, grid: gridRows.length ? imageGrid(gridRows) : null };
}
