// The engine benchmark: each workload runs in our engine (best available backend) and in PyTorch on
// the same inputs, in the same run. Output: a table (report.ts) and a JSON array of BenchRecord,
// written atomically. Progress goes to stderr.
import { mkdtempSync, rmSync, writeFileSync, mkdirSync } from 'node:fs';
import { writeFileAtomicSync } from '../io/atomic.js';
import { endianness, loadavg, tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { tf } from '../engine/tf.js';
import { useBackend, type BackendName } from '../engine/backend.js';
import { measurePeak } from '../engine/memory.js';
import { workloads as allWorkloads } from './workloads/index.js';
import { probeTorch, torchMemory, torchTime, type TorchConfig, type TorchProbe } from './torch.js';
import { median, MiB } from './util.js';
import type { BenchRecord, CheckValues, Workload, WorkloadSize } from './types.js';

/** Nominal fp32 peak: 2 cores x 2.596 GHz x 2 FMA pipes x 8 lanes x 2 flop (engine-measurements §1). */
export const NOMINAL_PEAK_GFLOPS = 166.1;
/** Practical peak measured with an FMA microbenchmark on 2 threads (boost clock ~3.6 GHz). */
export const PRACTICAL_PEAK_GFLOPS = 230;
/** Relative tolerance for the check values (loss, gradient norms) between the two engines. */
export const CHECK_RTOL = 1e-3;

export interface BenchOptions {
  /** Fewer repetitions and a short time budget; same workloads and sizes. */
  smoke?: boolean;
  /** Timed repetitions per workload and engine (split over the rounds), overriding the defaults and the time budget. */
  reps?: number;
  /** Run only these workloads (by name). */
  only?: string[];
  /** Skip PyTorch (torch_ms and ratio are null). */
  torch?: boolean;
  /** Backend for our engine (default: MCE_BACKEND, else the best available). */
  backend?: BackendName;
  /** Workload sizes: 'tiny' only for the harness's own test. */
  size?: WorkloadSize;
  /** The workload list (default: all). */
  workloads?: Workload[];
  /** Progress lines (default: stderr). */
  log?: (line: string) => void;
}

export interface BenchRun {
  records: BenchRecord[];
  backend: BackendName;
  torch: TorchProbe | { ok: false; reason: string };
  smoke: boolean;
}

interface Plan {
  /** Alternations ours -> PyTorch; the repetitions are split over them. */
  rounds: number;
  warmup: number;
  reps: number;
  minReps: number;
  budgetS: number;
}

function plan(w: Workload, o: BenchOptions): Plan {
  const rounds = o.smoke ? 1 : 3;
  if (o.reps !== undefined) return { rounds: Math.min(rounds, o.reps), warmup: o.smoke ? 1 : 2, reps: o.reps, minReps: o.reps, budgetS: Infinity };
  if (o.smoke) return { rounds, warmup: 1, reps: 3, minReps: 1, budgetS: 3 };
  return { rounds, warmup: 2, reps: w.reps, minReps: 3, budgetS: 30 };
}

function relDiff(a: number, b: number): number {
  return Math.abs(a - b) / Math.max(Math.abs(a), Math.abs(b), 1e-12);
}

function compareChecks(ours: CheckValues, torch: CheckValues | null): { max_rel_diff: number | null; ok: boolean | null } {
  if (!torch) return { max_rel_diff: null, ok: null };
  let worst = 0;
  for (const [k, v] of Object.entries(ours)) {
    const t = torch[k];
    if (t === undefined) continue;
    worst = Math.max(worst, Number.isFinite(v) && Number.isFinite(t) ? relDiff(v, t) : Infinity);
  }
  return { max_rel_diff: worst, ok: worst <= CHECK_RTOL };
}

function writeInputs(dir: string, w: Workload, inputs: { data: Float32Array }[]): string {
  const path = join(dir, `${w.name}.f32`);
  const total = inputs.reduce((s, a) => s + a.data.length, 0);
  const buf = Buffer.alloc(total * 4);
  let off = 0;
  for (const a of inputs) {
    // Little-endian float32, as torch_bench.py reads it (numpy '<f4').
    if (endianness() === 'LE') Buffer.from(a.data.buffer, a.data.byteOffset, a.data.byteLength).copy(buf, off * 4);
    else for (let i = 0; i < a.data.length; i++) buf.writeFloatLE(a.data[i]!, (off + i) * 4);
    off += a.data.length;
  }
  writeFileSync(path, buf);
  return path;
}

/** Run the benchmark. Does not write files other than temporary inputs for PyTorch. */
export async function runBench(o: BenchOptions = {}): Promise<BenchRun> {
  const log = o.log ?? ((line: string) => process.stderr.write(`[bench] ${line}\n`));
  const smoke = !!o.smoke;
  let list = o.workloads ?? allWorkloads;
  if (o.only && o.only.length) {
    const unknown = o.only.filter((n) => !list.some((w) => w.name === n));
    if (unknown.length) throw new Error(`unknown workload ${unknown.join(', ')}; known: ${list.map((w) => w.name).join(', ')}`);
    list = list.filter((w) => o.only!.includes(w.name));
  }
  const backend = await useBackend(o.backend);
  log(`our engine: backend ${backend}`);
  const torch: BenchRun['torch'] = o.torch === false ? { ok: false, reason: 'disabled (--no-torch)' } : await probeTorch();
  log(torch.ok ? `PyTorch ${torch.version} (${torch.python})` : `PyTorch absent: ${torch.reason}`);
  const dir = torch.ok ? mkdtempSync(join(tmpdir(), 'mce-bench-')) : null;
  const records: BenchRecord[] = [];
  try {
    for (const w of list) {
      const p = plan(w, o);
      const prep = w.prepare(o.size ?? 'full');
      const inputsMb = prep.inputs.reduce((s, a) => s + a.data.length * 4, 0) / MiB;
      log(`${w.name}: ${w.description}`);

      // ---- ours: one measured-memory run (also the first warm-up and the check), then warm-ups.
      const ours = prep.setup();
      const tensorsBefore = tf.memory().numTensors;
      const tFirst = performance.now();
      const mem = await measurePeak(() => ours.checked());
      const firstMs = performance.now() - tFirst;
      // tf.profile reports -Infinity when no kernel ran (a workload that spawns a process).
      const peakMb = Number.isFinite(mem.peakBytes) ? (mem.peakBytes - mem.baseBytes) / MiB : 0;
      const notes: string[] = [];
      // A slow backend (the wasm fallback) in a smoke run: the first (cold, profiled) run is the only
      // sample, so --smoke stays short.
      const single = smoke && o.reps === undefined && firstMs / 1000 > p.budgetS;
      if (single) notes.push(`--smoke on a slow backend: time of the single cold, profiled run`);
      else for (let i = 1; i < p.warmup; i++) ours.step();

      // ---- timing in rounds, ours then a fresh PyTorch process, so both see the same load on this
      // shared machine; the medians pool all rounds.
      const cfg: TorchConfig | null =
        torch.ok && dir && w.torch !== false
          ? {
              workload: w.name,
              inputs: writeInputs(dir, w, prep.inputs),
              tensors: prep.inputs.map((a) => ({ name: a.name, shape: a.shape })),
              params: prep.params,
              warmup: p.warmup,
              reps: 0,
              min_reps: 0,
              budget_s: 0,
            }
          : null;
      const times: number[] = single ? [firstMs] : [];
      const torchTimes: number[] = [];
      let torchCheck: CheckValues | null = null;
      let torchError: string | null = null;
      for (let round = 0; round < p.rounds; round++) {
        const reps = Math.floor(p.reps / p.rounds) + (round < p.reps % p.rounds ? 1 : 0);
        const minReps = Math.max(1, Math.floor(p.minReps / p.rounds));
        const budget = p.budgetS / p.rounds;
        if (!single) {
          const start = performance.now();
          for (let i = 0; i < reps; i++) {
            const t0 = performance.now();
            ours.step();
            times.push(performance.now() - t0);
            if (i + 1 >= minReps && (performance.now() - start) / 1000 > budget) break;
          }
        }
        if (cfg && !torchError) {
          try {
            const t = await torchTime(torch.ok ? torch.python : '', { ...cfg, reps, min_reps: minReps, budget_s: Number.isFinite(budget) ? budget : 1e9 });
            torchTimes.push(...t.times_ms);
            torchCheck ??= t.check;
          } catch (e) {
            torchError = (e as Error).message;
          }
        }
        const rs = p.rounds > 1 ? ` (round ${round + 1}/${p.rounds})` : '';
        log(`${w.name}: ours ${times.length} reps, median ${median(times).toFixed(2)} ms` + (torchTimes.length ? `; torch ${torchTimes.length} reps, median ${median(torchTimes).toFixed(2)} ms` : '') + rs);
        if (single) break;
      }
      const oursMs = median(times);
      const leaked = tf.memory().numTensors - tensorsBefore;
      log(`${w.name}: our peak tensor memory ${peakMb.toFixed(1)} MiB`);
      const extra = ours.extra ? await ours.extra({ smoke, oursMs, budgetS: smoke ? 5 : 60, log: (l) => log(`${w.name}: ${l}`) }) : { fields: {}, notes: [] };
      ours.dispose();
      notes.push(...extra.notes);
      if (leaked > 0) notes.push(`ours leaked ${leaked} tensors per run`);

      // ---- PyTorch memory: a fresh process.
      let torchPeak: number | null = null;
      if (cfg && !torchError) {
        try {
          const m = await torchMemory(torch.ok ? torch.python : '', { ...cfg, reps: 1, min_reps: 1, budget_s: 1e9 });
          torchPeak = m.peak_growth_mb;
          log(`${w.name}: torch peak RSS growth ${torchPeak?.toFixed(1) ?? '?'} MiB (${m.peak_method})`);
        } catch (e) {
          torchError = (e as Error).message;
        }
      }
      if (torchError) {
        notes.push(`PyTorch failed: ${torchError}`);
        log(`${w.name}: ${torchError}`);
      }
      const torchMs = torchTimes.length && !torchError ? median(torchTimes) : null;
      const torchReps = torchMs === null ? null : torchTimes.length;
      const gflops = prep.flops / oursMs / 1e6;
      const cmp = compareChecks(mem.result, torchCheck);
      if (cmp.ok === false) notes.push(`check MISMATCH vs PyTorch: max relative difference ${cmp.max_rel_diff!.toExponential(2)}`);
      const record: BenchRecord = {
        name: w.name,
        ours_ms: oursMs,
        torch_ms: torchMs,
        ratio: torchMs === null ? null : oursMs / torchMs,
        gflops,
        peak_mb: peakMb,
        backend,
        pct_peak: (100 * gflops) / NOMINAL_PEAK_GFLOPS,
        pct_practical_peak: (100 * gflops) / PRACTICAL_PEAK_GFLOPS,
        torch_gflops: torchMs === null ? null : prep.flops / torchMs / 1e6,
        torch_peak_mb: torchPeak,
        inputs_mb: inputsMb,
        flops: prep.flops,
        reps: times.length,
        torch_reps: torchReps,
        ours_min_ms: Math.min(...times),
        torch_min_ms: torchMs === null ? null : Math.min(...torchTimes),
        loadavg_1m: loadavg()[0]!,
        check: { ours: mem.result, torch: torchCheck, ...cmp },
        target: null,
        notes,
        ...extra.fields,
      };
      record.target = w.judge ? w.judge(record) : null;
      records.push(record);
    }
  } finally {
    if (dir) rmSync(dir, { recursive: true, force: true });
  }
  return { records, backend, torch, smoke };
}

/** Write the records as JSON, atomically (temporary file in the same folder, then rename). */
export function writeResults(path: string, records: BenchRecord[]): void {
  mkdirSync(dirname(path), { recursive: true });
  writeFileAtomicSync(path, JSON.stringify(records, null, 2) + '\n');
}
