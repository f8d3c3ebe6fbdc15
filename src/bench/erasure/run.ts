// Running the erasure benchmark (or one shard of it): the plan's units in order, each skipped when
// the folder's results already hold it (resume after a kill), each row appended as the unit ends.
// A failing unit is recorded with its one-line error and the run goes on; the cell's later units
// then fail fast with "erase unit did not finish". Progress: one line per unit with ETA.
import { Progress } from '../../train/progress.js';
import { planUnits, settingsHash, shardUnits, type BenchSettings, type SkippedCell } from './plan.js';
import { appendRow, claimFolder, readRows, resultsFile, type BenchRow } from './store.js';
import { runUnit } from './units.js';

export interface BenchRunOptions {
  dir: string;
  /** 0-based shard index and count (null: everything). */
  shard?: { i: number; n: number } | null;
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
  const mine = shardUnits(s, plan.units, shard?.i ?? 0, shard?.n ?? 1);
  const done = new Set(readRows(o.dir).filter((r) => r.status === 'ok' && r.settings === hash).map((r) => r.unit));
  const todo = mine.filter((u) => !done.has(u.id));
  const file = resultsFile(o.dir, shard);
  log(`mce bench: ${mine.length} units${shard && shard.n > 1 ? ` (shard ${shard.i + 1}/${shard.n} of ${plan.units.length})` : ''}, ${mine.length - todo.length} already done, ${plan.skipped.length} cells not applicable; cases ${s.cases.join(', ')} -> ${o.dir}`);
  const progress = new Progress({ total: todo.length, label: 'bench', quiet: o.progress === false });
  let failed = 0;
  for (const [k, u] of todo.entries()) {
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
    appendRow(file, row);
    progress.update(k + 1, {}, { unit: u.id });
  }
  progress.finish();
  return { ran: todo.length, resumed: mine.length - todo.length, failed, skipped: plan.skipped, seconds: (performance.now() - t0) / 1000 };
}
