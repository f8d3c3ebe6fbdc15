// Helpers shared by the evaluator trainers (classifier, clip): config files, schedules, the
// machine description, manifests, and the batched evaluation loop.
import { createHash } from 'node:crypto';
import { mkdirSync, readFileSync, statSync } from 'node:fs';
import * as os from 'node:os';
import { dirname } from 'node:path';
import { writeFileAtomic } from '../io/atomic.js';
import type { Dataset } from '../world/dataset.js';

/** Read a JSON config, one clear line on failure. */
export function readConfigFile<T>(path: string): T {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new Error(`cannot read config ${path}: ${code === 'ENOENT' ? 'no such file' : code ?? (e as Error).message}`);
  }
  try {
    return JSON.parse(text) as T;
  } catch (e) {
    throw new Error(`config ${path} is not valid JSON: ${(e as Error).message.split('\n')[0]}`);
  }
}

/** Learning-rate multiplier: linear warmup, then cosine decay to `floor` at `total`. */
export function warmupCosineSchedule(warmup: number, total: number, floor = 0.02): (step: number) => number {
  return (step) => {
    if (step < warmup) return (step + 1) / warmup;
    const p = Math.min(1, (step - warmup) / Math.max(1, total - warmup));
    return floor + (1 - floor) * 0.5 * (1 + Math.cos(Math.PI * p));
  };
}

/** The machine, as manifests record it. */
export function machineInfo(): { cpu: string; cores: number; memoryGiB: number; platform: string; node: string } {
  const cpus = os.cpus();
  return {
    cpu: cpus[0]?.model ?? 'unknown cpu',
    cores: cpus.length,
    memoryGiB: Math.round(os.totalmem() / 2 ** 30),
    platform: `${os.platform()} ${os.arch()}`,
    node: process.version,
  };
}

export function sha256File(path: string): string {
  return createHash('sha256').update(readFileSync(path)).digest('hex');
}

export function fileBytes(path: string): number {
  return statSync(path).size;
}

/** Write a JSON file atomically (2-space indent, trailing newline), creating its folder. */
export async function writeJson(path: string, value: unknown): Promise<void> {
  mkdirSync(dirname(path), { recursive: true });
  await writeFileAtomic(path, JSON.stringify(value, null, 2) + '\n');
}

/** What a manifest says about the data a model was trained on. */
export function datasetSummary(ds: Dataset): Record<string, unknown> {
  return {
    hash: ds.hash,
    key: ds.manifest.key,
    format: ds.manifest.format,
    size: ds.size,
    records: ds.n,
    concepts: ds.concepts.length,
    vendors: [...ds.vendors],
    sources: ds.manifest.sources,
    renderer: ds.manifest.renderer,
  };
}

/** The command line that reproduces a run, as the manifest records it. */
export function trainCommand(kind: string, configPath: string): string {
  return `mce train ${kind} --config ${configPath}`;
}

/** Round to `d` decimals (for readable manifests). */
export function round(x: number, d = 4): number {
  const f = 10 ** d;
  return Math.round(x * f) / f;
}
