// The benchmark's results store: JSON Lines, one row per finished unit, appended as each unit ends,
// so a killed run loses at most the unit it was in. A shard writes its own file
// (results.shard-I-of-N.jsonl; a local job of --jobs, .job-J-of-K) so that shards sharing a folder (GNU parallel, one NFS folder for a
// Slurm array) never write the same file; reading takes every results*.jsonl of a folder. A torn
// last line (a kill mid-append) is ignored, and a later row for the same unit wins.
import { appendFileSync, existsSync, mkdirSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { writeFileAtomicSync } from '../../io/atomic.js';
import type { BenchSettings, UnitKind } from './plan.js';
import { settingsHash } from './plan.js';

export interface BenchRow {
  unit: string;
  kind: UnitKind;
  model: string;
  method: string;
  case: string;
  attack?: string;
  status: 'ok' | 'error';
  /** The settings hash of the run that produced the row. */
  settings: string;
  seconds: number;
  data: Record<string, unknown>;
  error?: string;
}

type Slice = { i: number; n: number } | null | undefined;

/** results.jsonl, or results.shard-I-of-N[.job-J-of-K].jsonl for a shard's (and a local job's) slice. */
export function resultsFile(dir: string, shard: Slice, job?: Slice): string {
  const part = (name: string, x: Slice): string => (x && x.n > 1 ? `.${name}-${x.i + 1}-of-${x.n}` : '');
  return join(dir, `results${part('shard', shard)}${part('job', job)}.jsonl`);
}

export function appendRow(file: string, row: BenchRow): void {
  appendFileSync(file, JSON.stringify(row) + '\n');
}

/** Every row of every results*.jsonl in `dir`, the last row of each unit kept. */
export function readRows(dir: string): BenchRow[] {
  if (!existsSync(dir)) return [];
  const byUnit = new Map<string, BenchRow>();
  for (const f of readdirSync(dir).filter((f) => /^results.*\.jsonl$/.test(f)).sort()) {
    for (const line of readFileSync(join(dir, f), 'utf8').split('\n')) {
      if (!line.trim()) continue;
      let row: BenchRow;
      try {
        row = JSON.parse(line) as BenchRow;
      } catch {
        continue; // a torn last line
      }
      if (typeof row.unit === 'string') byUnit.set(row.unit, row);
    }
  }
  return [...byUnit.values()];
}

/**
 * Record the settings in dir/bench.json, or check that the folder's are the same: resuming with
 * other settings would mix incomparable rows.
 */
export function claimFolder(dir: string, s: BenchSettings): void {
  mkdirSync(dir, { recursive: true });
  const file = join(dir, 'bench.json');
  const hash = settingsHash(s);
  if (existsSync(file)) {
    const prev = JSON.parse(readFileSync(file, 'utf8')) as { hash: string };
    if (prev.hash !== hash) throw new Error(`${dir} holds results of other benchmark settings (${prev.hash}, now ${hash}): use another --out, or the same flags`);
    return;
  }
  writeFileAtomicSync(file, JSON.stringify({ hash, settings: s }, null, 2) + '\n');
}

export function readFolderSettings(dir: string): { hash: string; settings: BenchSettings } {
  const file = join(dir, 'bench.json');
  if (!existsSync(file)) throw new Error(`${dir}: no bench.json (not a benchmark results folder)`);
  return JSON.parse(readFileSync(file, 'utf8')) as { hash: string; settings: BenchSettings };
}
