// The runs folder as the lab sees it: erase runs (folders with summary.json and masks.safetensors,
// as `mce erase` writes them), erasure benchmark folders (`mce bench`: bench.json and
// results*.jsonl) and engine benchmark results (`mce bench engine` JSON: an array of workload
// records). Read only: the server never rewrites a finished run.
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { basename, join } from 'node:path';
import { HttpError } from './http.js';
import { RUN_NAME } from './limits.js';

import { BENCH_METHODS, planUnits, type BenchSettings } from '../bench/erasure/plan.js';
import { readFolderSettings, readRows } from '../bench/erasure/store.js';
import { benchSummary } from '../bench/erasure/summary.js';

export type { RunListing, BenchListing, ErasureBenchListing } from './api-types.js';
import type { RunListing, BenchListing, ErasureBenchListing } from './api-types.js';

export interface RunDetail {
  name: string;
  dir: string;
  summary: Record<string, unknown>;
  /** Per-layer sparsity from sparsity.json (name, group, units, pruned, fraction). */
  layers: Record<string, unknown>[];
  /** PNG files in the run folder, for the page to show. */
  images: string[];
}

function readJson(path: string): unknown {
  try {
    return JSON.parse(readFileSync(path, 'utf8')) as unknown;
  } catch {
    return undefined;
  }
}

const obj = (v: unknown): Record<string, unknown> => (typeof v === 'object' && v !== null && !Array.isArray(v) ? (v as Record<string, unknown>) : {});
const num = (v: unknown): number | null => (typeof v === 'number' && Number.isFinite(v) ? v : null);

/** Is `dir` a finished erase run? (a summary from `mce erase` and the masks it wrote) */
function eraseSummary(dir: string): Record<string, unknown> | undefined {
  if (!existsSync(join(dir, 'masks.safetensors'))) return undefined;
  const s = readJson(join(dir, 'summary.json'));
  return obj(s)['command'] === 'mce erase' ? obj(s) : undefined;
}

function listing(name: string, s: Record<string, unknown>): RunListing {
  const settings = obj(s['settings']);
  const ev = obj(obj(s['evaluation'])['erase']);
  const before = num(ev['before']);
  const after = num(ev['after']);
  return {
    name,
    concepts: Array.isArray(s['concepts']) ? s['concepts'].map((c) => String(obj(c)['name'] ?? c)) : [],
    model: String(s['model'] ?? ''),
    family: String(s['family'] ?? ''),
    iters: num(settings['iters']),
    steps: num(obj(settings['sampler'])['steps']),
    pruned: num(obj(obj(s['sparsity'])['total'])['fraction']),
    detection: before !== null && after !== null ? { before, after } : null,
  };
}

function benchRecords(path: string): Record<string, unknown>[] | undefined {
  const v = readJson(path);
  if (!Array.isArray(v) || v.length === 0) return undefined;
  return v.every((r) => typeof obj(r)['name'] === 'string' && 'ours_ms' in obj(r)) ? (v as Record<string, unknown>[]) : undefined;
}

/** An erasure benchmark folder, summarised as `mce bench` tables it; undefined when `dir` is not one (or its bench.json is unreadable). */
function erasureBench(dir: string, name: string): ErasureBenchListing | undefined {
  if (!existsSync(join(dir, 'bench.json'))) return undefined;
  let settings;
  try {
    settings = readFolderSettings(dir).settings;
  } catch {
    return undefined;
  }
  const rows = readRows(dir);
  return {
    name,
    size: { n: settings.n, mceIters: settings.mceIters, attackSeeds: settings.attackSeeds },
    units: { planned: planUnits(settings).units.length, ok: rows.filter((r) => r.status === 'ok').length, failed: rows.filter((r) => r.status === 'error').length },
    summary: benchSummary(rows, { ...settings, methods: BENCH_METHODS.filter((m) => settings.methods.includes(m)) }),
    grids: benchGrids(join(dir, 'grids'), settings),
  };
}

/**
 * The side-by-side grid of each (model, case), MODEL--CASE.png, written when the run ends; until
 * then the per-cell strips (MODEL--METHOD--CASE.png), case by case in method order.
 */
function benchGrids(dir: string, s: BenchSettings): string[] {
  if (!existsSync(dir)) return [];
  const files = new Set(readdirSync(dir));
  // The names table.ts and units.ts give them.
  const cases = s.models.flatMap((m) => s.cases.map((c) => `${basename(m)}--${c}.png`)).filter((f) => files.has(f));
  if (cases.length) return cases;
  return s.models.flatMap((m) => s.cases.flatMap((c) => BENCH_METHODS.map((method) => `${m.replaceAll('/', '--')}--${method}--${c}.png`))).filter((f) => files.has(f));
}

/** The folder of erasure benchmark `name`, or 404. */
export function erasureBenchDir(runsDir: string, name: string): string {
  if (!RUN_NAME.test(name)) throw new HttpError(400, `benchmark name must match ${RUN_NAME.source}`);
  const dir = join(runsDir, name);
  if (!existsSync(join(dir, 'bench.json'))) throw new HttpError(404, `no benchmark folder '${name}'`);
  return dir;
}

/** Every erase run and benchmark result directly under `runsDir` (sorted by name). */
export function listRuns(runsDir: string): { runs: RunListing[]; bench: BenchListing[]; erasure: ErasureBenchListing[] } {
  const runs: RunListing[] = [];
  const bench: BenchListing[] = [];
  const erasure: ErasureBenchListing[] = [];
  if (!existsSync(runsDir)) return { runs, bench, erasure };
  for (const e of readdirSync(runsDir, { withFileTypes: true }).sort((a, b) => a.name.localeCompare(b.name))) {
    if (e.isDirectory() && RUN_NAME.test(e.name)) {
      const s = eraseSummary(join(runsDir, e.name));
      if (s) runs.push(listing(e.name, s));
      const eb = erasureBench(join(runsDir, e.name), e.name);
      if (eb) erasure.push(eb);
      const records = benchRecords(join(runsDir, e.name, 'results.json'));
      if (records) bench.push({ file: `${e.name}/results.json`, records });
    } else if (e.isFile() && e.name.endsWith('.json')) {
      const records = benchRecords(join(runsDir, e.name));
      if (records) bench.push({ file: e.name, records });
    }
  }
  return { runs, bench, erasure };
}

/** The folder of erase run `name`, or 404. `name` must already be a valid run name. */
export function runDir(runsDir: string, name: string): string {
  if (!RUN_NAME.test(name)) throw new HttpError(400, `run name must match ${RUN_NAME.source}`);
  const dir = join(runsDir, name);
  if (!existsSync(dir) || !statSync(dir).isDirectory() || !eraseSummary(dir)) throw new HttpError(404, `no erase run '${name}'`);
  return dir;
}

export function readRun(runsDir: string, name: string): RunDetail {
  const dir = runDir(runsDir, name);
  const summary = eraseSummary(dir)!;
  const sparsity = obj(readJson(join(dir, 'sparsity.json')));
  const layers = Array.isArray(sparsity['layers']) ? (sparsity['layers'] as Record<string, unknown>[]) : [];
  const images = readdirSync(dir).filter((f) => f.endsWith('.png')).sort();
  return { name, dir, summary, layers, images };
}
