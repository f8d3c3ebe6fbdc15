// `mce bench --jobs N`: the plan (or one --shard of it) spread over N local worker processes. Each
// worker runs a fixed slice of whole cells (shardUnits again, inside the shard) on one thread and
// appends to its own results file in the shared folder, so the folder reads, resumes and merges as
// if one process had run it. One thread per process because these models' matrices are small: two
// one-thread processes on two cores do 1.6 times the work of one two-thread process (measured: an
// sd-emoji cell's 9 units took 95 s alone on two threads, 111 s alone on one, 114-118 s each with
// two one-thread processes side by side).
import { fork, type ChildProcess } from 'node:child_process';
import { extname } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { BenchSettings } from './plan.js';
import type { BenchRunResult } from './run.js';
import { claimFolder } from './store.js';

export interface WorkerSpec {
  settings: BenchSettings;
  dir: string;
  shard: { i: number; n: number } | null;
  job: { i: number; n: number };
}

// The worker module beside this one, .js when built, .ts under tsx.
const WORKER = fileURLToPath(new URL(`./worker${extname(fileURLToPath(import.meta.url))}`, import.meta.url));

/** Run `jobs` worker processes to the end; their output lines are prefixed with [job i/n]. */
export async function runBenchJobs(s: BenchSettings, o: { dir: string; shard: { i: number; n: number } | null; jobs: number; log?: (line: string) => void }): Promise<BenchRunResult> {
  const t0 = performance.now();
  const log = o.log ?? ((l: string) => void process.stderr.write(l + '\n'));
  claimFolder(o.dir, s); // before the workers start, so that they never race to write bench.json
  const children: ChildProcess[] = [];
  const stop = (): void => children.forEach((c) => c.kill('SIGTERM'));
  process.once('SIGTERM', stop);
  process.once('SIGINT', stop);
  try {
    const results = await Promise.all(Array.from({ length: o.jobs }, (_, i) => {
      const spec: WorkerSpec = { settings: s, dir: o.dir, shard: o.shard, job: { i, n: o.jobs } };
      const child = fork(WORKER, [JSON.stringify(spec)], { stdio: ['ignore', 'pipe', 'pipe', 'ipc'] });
      children.push(child);
      return new Promise<BenchRunResult>((done, fail) => {
        let result: BenchRunResult | null = null;
        let buffered = '';
        const relay = (chunk: Buffer): void => {
          const lines = (buffered + chunk.toString('utf8')).split(/\r?\n|\r/);
          buffered = lines.pop()!;
          for (const l of lines) if (l.trim()) log(`[job ${i + 1}/${o.jobs}] ${l}`);
        };
        child.stdout!.on('data', relay);
        child.stderr!.on('data', relay);
        child.on('message', (m) => (result = m as BenchRunResult));
        child.on('exit', (code, signal) => {
          if (buffered.trim()) log(`[job ${i + 1}/${o.jobs}] ${buffered}`);
          if (result) done(result);
          else fail(new Error(`bench job ${i + 1}/${o.jobs} ended without a result (${signal ?? `exit ${code}`})`));
        });
      });
    }));
    return {
      ran: results.reduce((a, r) => a + r.ran, 0),
      resumed: results.reduce((a, r) => a + r.resumed, 0),
      failed: results.reduce((a, r) => a + r.failed, 0),
      skipped: results[0]!.skipped,
      seconds: (performance.now() - t0) / 1000,
    };
  } finally {
    stop();
    process.off('SIGTERM', stop);
    process.off('SIGINT', stop);
  }
}
