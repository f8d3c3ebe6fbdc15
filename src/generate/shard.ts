// `mce generate --n K` split across processes: the K images are made in fixed batches of
// SWEEP_BATCH (image k always in batch floor(k / SWEEP_BATCH), its noise seeded by mixSeed(seed, k)),
// whether the run is sharded or not. A batch's size changes the floating-point sums enough to move
// a pixel by one level, so fixed batches are what make a shard's images the same bytes as the whole
// run's. Shard I of N takes batches I-1, I-1+N, ... and writes each image as its own PNG in
// FILE.shard-I-of-N/ next to shard.json (the sweep's settings); images already there are kept, so a
// killed shard resumes. Merging checks the settings match and assembles the grid of the whole run.
import { existsSync, mkdirSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { writeFileAtomicSync } from '../io/atomic.js';
import { readPng, toRGB, writePngSync } from '../io/png.js';
import type { GenerateOptions, RgbImage } from './flux-emoji.js';
import { squareGrid } from './flux-emoji.js';

/** Images per generate call in a sweep. */
export const SWEEP_BATCH = 4;

/** What every shard of one sweep must share (shard.json). */
export interface SweepSettings {
  prompt: string;
  seed: number;
  steps: number;
  cfg: number;
  n: number;
  /** The model's name and the sha256 of its manifest.json (same model wherever its folder is). */
  model: { name: string; manifest: string };
  /** sha256 of --masks, or null. */
  masks: string | null;
}

export interface SweepBatch {
  first: number;
  n: number;
}

/** The batches of shard i (0-based) of `shards`: every shards-th batch, starting at batch i. */
export function sweepBatches(total: number, shard = 0, shards = 1): SweepBatch[] {
  if (!(Number.isInteger(shards) && shards >= 1 && Number.isInteger(shard) && shard >= 0 && shard < shards)) throw new Error(`bad shard ${shard}/${shards}`);
  const out: SweepBatch[] = [];
  for (let b = shard; b * SWEEP_BATCH < total; b += shards) out.push({ first: b * SWEEP_BATCH, n: Math.min(SWEEP_BATCH, total - b * SWEEP_BATCH) });
  return out;
}

/** Generate the sweep's images batch by batch (all of them, or a shard's batches). */
export function generateBatches(
  generate: (opts: GenerateOptions) => { images: RgbImage[]; trajectory?: RgbImage[][] },
  opts: Omit<GenerateOptions, 'n' | 'first'>,
  batches: readonly SweepBatch[],
  onBatch: (batch: SweepBatch, images: RgbImage[], trajectory?: RgbImage[][]) => void,
): void {
  for (const b of batches) {
    const res = generate({ ...opts, n: b.n, first: b.first });
    onBatch(b, res.images, res.trajectory);
  }
}

/** FILE.png -> FILE.shard-I-of-N (i 0-based). */
export function shardFolder(out: string, i: number, n: number): string {
  return `${out.replace(/\.png$/i, '')}.shard-${i + 1}-of-${n}`;
}

export const imageFile = (dir: string, k: number): string => join(dir, `img-${String(k).padStart(5, '0')}.png`);

/** Record the settings in dir/shard.json, or check that a resumed shard's folder has the same. */
export function claimShardFolder(dir: string, s: SweepSettings): void {
  mkdirSync(dir, { recursive: true });
  const file = join(dir, 'shard.json');
  const text = JSON.stringify(s, null, 2) + '\n';
  if (existsSync(file)) {
    if (readFileSync(file, 'utf8') !== text) throw new Error(`${dir} holds images of other settings (see its shard.json): use another --out, or the same flags`);
    return;
  }
  writeFileAtomicSync(file, text);
}

/** Whether every image of a batch is already in the shard folder (a resumed shard skips it). */
export function batchDone(dir: string, b: SweepBatch): boolean {
  for (let k = b.first; k < b.first + b.n; k++) if (!existsSync(imageFile(dir, k))) return false;
  return true;
}

export function writeShardImages(dir: string, first: number, images: readonly RgbImage[]): void {
  images.forEach((img, j) => writePngSync(imageFile(dir, first + j), { ...img, channels: 3 }));
}

function readSettings(dir: string): SweepSettings {
  const file = join(dir, 'shard.json');
  if (!existsSync(file)) throw new Error(`${dir}: no shard.json (not a folder written by mce generate --shard)`);
  return JSON.parse(readFileSync(file, 'utf8')) as SweepSettings;
}

/** The image of the whole sweep from its shard folders: one image, or the grid of all n. */
export function mergeShards(dirs: readonly string[]): { image: RgbImage; settings: SweepSettings } {
  const settings = readSettings(dirs[0]!);
  const key = JSON.stringify(settings);
  for (const d of dirs.slice(1)) if (JSON.stringify(readSettings(d)) !== key) throw new Error(`${d} holds images of other settings than ${dirs[0]} (compare their shard.json)`);
  const found = new Map<number, string>();
  for (const d of dirs) {
    for (const f of readdirSync(d)) {
      const m = /^img-(\d+)\.png$/.exec(f);
      if (m) found.set(Number(m[1]), join(d, f));
    }
  }
  const missing = Array.from({ length: settings.n }, (_, k) => k).filter((k) => !found.has(k));
  if (missing.length) throw new Error(`${missing.length} of ${settings.n} images missing (first: image ${missing[0]}); run the missing shards, then merge again`);
  const images = Array.from({ length: settings.n }, (_, k): RgbImage => {
    const png = readPng(found.get(k)!);
    return { width: png.width, height: png.height, data: toRGB(png) };
  });
  return { image: settings.n === 1 ? images[0]! : squareGrid(images), settings };
}
