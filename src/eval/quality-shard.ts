// `mce eval quality --shard I/N --out DIR` and `mce eval quality merge DIR... --out DIR`: the
// evaluation's items (one per held-out prompt, quality.ts qualityPlan) go round-robin to shards;
// a shard appends each scored item to DIR/items.shard-I-of-N.jsonl as it ends (a killed shard
// resumes where it stopped; a torn last line is ignored), and DIR/quality-shard.json records the
// setup every shard must share. Merging checks the setups match, takes the union of the items and
// aggregates them as the unsharded run does: the same numbers, exactly (features and CLIP scores
// are float32 values, stored losslessly: features as little-endian bytes in base64).
import { createHash } from 'node:crypto';
import { appendFileSync, existsSync, mkdirSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { RgbImage, TextToImageModel } from '../generate/index.js';
import { writeFileAtomicSync } from '../io/atomic.js';
import { aggregateQuality, scoreItems, setupPlan, type QualityResult, type QualitySetup, type ScoredItem } from './quality.js';

interface ShardSettings {
  /** sha256 of the setup and the model's manifest.json: shards of one evaluation share it. */
  hash: string;
  setup: QualitySetup;
}

interface ItemRow {
  index: number;
  item: ScoredItem['item'];
  k: number;
  top: number[];
  style: number[];
  dim: number;
  /** Float32 little-endian, base64. */
  features: string;
  clip: number[] | null;
  samples: { width: number; height: number; data: string }[];
  seconds: ScoredItem['seconds'];
}

const f32ToBase64 = (x: Float32Array): string => Buffer.from(x.buffer, x.byteOffset, x.byteLength).toString('base64');

function base64ToF32(s: string): Float32Array {
  const b = Buffer.from(s, 'base64');
  const out = new Float32Array(b.byteLength / 4);
  new Uint8Array(out.buffer).set(b);
  return out;
}

function toRow(s: ScoredItem): ItemRow {
  return {
    index: s.index,
    item: s.item,
    k: s.scores.k,
    top: [...s.scores.top],
    style: [...s.scores.style],
    dim: s.scores.features.dim,
    features: f32ToBase64(s.scores.features.data),
    clip: s.clip,
    samples: s.samples.map((img) => ({ width: img.width, height: img.height, data: Buffer.from(img.data).toString('base64') })),
    seconds: s.seconds,
  };
}

function fromRow(r: ItemRow): ScoredItem {
  return {
    index: r.index,
    item: r.item,
    scores: { k: r.k, top: Int32Array.from(r.top), style: Int32Array.from(r.style), features: { dim: r.dim, data: base64ToF32(r.features) } },
    clip: r.clip,
    samples: r.samples.map((s): RgbImage => ({ width: s.width, height: s.height, data: new Uint8Array(Buffer.from(s.data, 'base64')) })),
    seconds: r.seconds,
  };
}

export function shardSettings(model: TextToImageModel, setup: QualitySetup): ShardSettings {
  const manifest = readFileSync(join(model.dir, 'manifest.json'));
  return { hash: createHash('sha256').update(JSON.stringify(setup)).update(manifest).digest('hex'), setup };
}

function readSettings(dir: string): ShardSettings {
  const file = join(dir, 'quality-shard.json');
  if (!existsSync(file)) throw new Error(`${dir}: no quality-shard.json (not a folder written by mce eval quality --shard)`);
  return JSON.parse(readFileSync(file, 'utf8')) as ShardSettings;
}

/** Every scored item of every items*.jsonl in `dir`; a later row of the same item wins. */
export function readItems(dir: string): ScoredItem[] {
  const byIndex = new Map<number, ItemRow>();
  for (const f of readdirSync(dir).filter((f) => /^items.*\.jsonl$/.test(f)).sort()) {
    for (const line of readFileSync(join(dir, f), 'utf8').split('\n')) {
      if (!line.trim()) continue;
      let row: ItemRow;
      try {
        row = JSON.parse(line) as ItemRow;
      } catch {
        continue; // a torn last line
      }
      if (typeof row.index === 'number') byIndex.set(row.index, row);
    }
  }
  return [...byIndex.values()].map(fromRow);
}

/** Run shard i (0-based) of n into `dir`; returns how many of its items it scored now and before. */
export async function runQualityShard(
  model: TextToImageModel,
  setup: QualitySetup,
  dir: string,
  shard: { i: number; n: number },
  opts: { progress?: boolean } = {},
): Promise<{ scored: number; resumed: number; items: number }> {
  const settings = shardSettings(model, setup);
  mkdirSync(dir, { recursive: true });
  const file = join(dir, 'quality-shard.json');
  if (existsSync(file)) {
    const prev = readSettings(dir);
    if (prev.hash !== settings.hash) throw new Error(`${dir} holds items of another evaluation (${prev.hash.slice(0, 12)}, now ${settings.hash.slice(0, 12)}): use another --out, or the same model and flags`);
  } else {
    writeFileAtomicSync(file, JSON.stringify(settings, null, 2) + '\n');
  }
  const mine = setupPlan(setup).map((_, index) => index).filter((index) => index % shard.n === shard.i);
  const done = new Set(readItems(dir).map((s) => s.index));
  const todo = mine.filter((index) => !done.has(index));
  const out = join(dir, shard.n > 1 ? `items.shard-${shard.i + 1}-of-${shard.n}.jsonl` : 'items.jsonl');
  await scoreItems(model, setup, (s) => appendFileSync(out, JSON.stringify(toRow(s)) + '\n'), { indices: todo, progress: opts.progress });
  return { scored: todo.length, resumed: mine.length - todo.length, items: mine.length };
}

/** The report of the whole evaluation from its shard folders (every item must be there). */
export async function mergeQualityShards(dirs: readonly string[]): Promise<QualityResult> {
  const first = readSettings(dirs[0]!);
  for (const d of dirs.slice(1)) {
    const h = readSettings(d).hash;
    if (h !== first.hash) throw new Error(`${d} holds items of another evaluation (${h.slice(0, 12)}) than ${dirs[0]} (${first.hash.slice(0, 12)})`);
  }
  const byIndex = new Map<number, ScoredItem>();
  for (const d of dirs) for (const s of readItems(d)) byIndex.set(s.index, s);
  const plan = setupPlan(first.setup);
  const missing = plan.map((_, i) => i).filter((i) => !byIndex.has(i));
  if (missing.length) {
    const it = plan[missing[0]!]!;
    throw new Error(`${missing.length} of ${plan.length} items missing (first: ${it.concept} / ${it.style}, item ${missing[0]}); run the missing shards, then merge again`);
  }
  return aggregateQuality(first.setup, [...byIndex.values()]);
}
