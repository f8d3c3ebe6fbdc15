// Running the erasure benchmark (or one shard of it): the plan's units in order, each skipped when
// the folder's results already hold it (resume after a kill), each row appended as the unit ends.
// A failing unit is recorded with its one-line error and the run goes on; the cell's later units
// then fail fast with "erase unit did not finish". Progress: one line per unit with ETA. Every
// unit runs on one thread, so that results do not depend on how the sweep was split (--jobs,
// --shard): float sums run in the same order in every process.
import { nativeAddon } from '../../engine/native.js';
import { Progress } from '../../train/progress.js';
import { planUnits, settingsHash, shardUnits, unitCost, type BenchSettings, type BenchUnit, type SkippedCell } from './plan.js';
import { appendRow, claimFolder, readRows, resultsFile, type BenchRow } from './store.js';
import { runUnit } from './units.js';

export interface BenchRunOptions {
  dir: string;
  /** 0-based shard index and count (null: everything). */
  shard?: { i: number; n: number } | null;
  /** 0-based local job index and count inside the shard (jobs.ts), null: the whole shard. */
  job?: { i: number; n: number } | null;
  log?: (line: string) => void;
  progress?: boolean;
}

export interface BenchRunResult {
  ran: number;
  resumed: number;
  failed: number;
  skipped: SkippedCell[];
  seconds: number;
}

export async function runErasureBench(s: BenchSettings, o: BenchRunOptions): Promise<BenchRunResult> {
  const t0 = performance.now();
  const log = o.log ?? ((l: string) => void process.stderr.write(l + '\n'));
  claimFolder(o.dir, s);
  const hash = settingsHash(s);
  const plan = planUnits(s);
  const shard = o.shard ?? null;
  const job = o.job ?? null;
  const mine = shardUnits(s, shardUnits(s, plan.units, shard?.i ?? 0, shard?.n ?? 1), job?.i ?? 0, job?.n ?? 1);
  const done = new Set(readRows(o.dir).filter((r) => r.status === 'ok' && r.settings === hash).map((r) => r.unit));
  const todo = mine.filter((u) => !done.has(u.id));
  const file = resultsFile(o.dir, shard, job);
  const slice = [shard && shard.n > 1 ? `shard ${shard.i + 1}/${shard.n}` : '', job && job.n > 1 ? `job ${job.i + 1}/${job.n}` : ''].filter(Boolean).join(', ');
  log(`mce bench: ${mine.length} units${slice ? ` (${slice} of ${plan.units.length})` : ''}, ${mine.length - todo.length} already done, ${plan.skipped.length} cells not applicable; cases ${s.cases.join(', ')} -> ${o.dir}`);
  // Units differ a hundredfold (an MCE erase against an attack): the ETA weighs them by the plan's estimate.
  const progress = new Progress({ total: todo.length, label: 'bench', quiet: o.progress === false, work: todo.map((u) => unitCost(s, u)) });
  let failed = 0;
  const runOne = async (u: BenchUnit): Promise<BenchRow> => {
    let peak = process.memoryUsage().rss;
    const timer = setInterval(() => (peak = Math.max(peak, process.memoryUsage().rss)), 250);
    const t = performance.now();
    const row: BenchRow = { unit: u.id, kind: u.kind, model: u.model, method: u.method, case: u.case, ...(u.attack ? { attack: u.attack } : {}), status: 'ok', settings: hash, seconds: 0, data: {} };
    try {
      row.data = await runUnit(u, { dir: o.dir, settings: s, log: (l) => progress.log(l) });
    } catch (e) {
      row.status = 'error';
      row.error = (e as Error).message.split('\n')[0];
      failed++;
      progress.log(`mce bench: ${u.id} failed: ${row.error}`);
    } finally {
      clearInterval(timer);
    }
    // A unit that resumed a killed one's checkpoints (MCE training) reports the time those spent: the row is the whole unit's time.
    const earlier = typeof row.data['earlierSeconds'] === 'number' ? row.data['earlierSeconds'] : 0;
    row.seconds = Number(((performance.now() - t) / 1000 + earlier).toFixed(2));
    row.data['peakRssMiB'] = Math.round(peak / 2 ** 20);
    return row;
  };
  const addon = nativeAddon();
  const threads = addon?.getThreads() ?? 1;
  addon?.setThreads(1);
  try {
    for (const [k, u] of todo.entries()) {
      appendRow(file, await runOne(u));
      progress.update(k + 1, {}, { unit: u.id });
    }
  } finally {
    addon?.setThreads(threads);
  }
  progress.finish();
  return { ran: todo.length, resumed: mine.length - todo.length, failed, skipped: plan.skipped, seconds: (performance.now() - t0) / 1000 };
}
