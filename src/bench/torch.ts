// The PyTorch side of the benchmark: bench/torch_bench.py run as a subprocess per workload and mode,
// printing one JSON object. Threads follow engine-measurements §4 (torch's best 2-thread setting on
// this 2-vCPU machine): OpenBLAS 2 threads (OPENBLAS_NUM_THREADS=2) for the matmuls, torch's intra-op
// pool 1 thread (torch.set_num_threads(1), OMP_NUM_THREADS=1). Both pools at 2 oversubscribe the cores.
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { join } from 'node:path';
import type { CheckValues } from './types.js';

/** The package root: src/bench/ and dist/bench/ are both two levels below it. */
export const PACKAGE_ROOT = fileURLToPath(new URL('../../', import.meta.url));
export const TORCH_SCRIPT = join(PACKAGE_ROOT, 'bench', 'torch_bench.py');
export const DEFAULT_PYTHON = '/usr/bin/python3';

export const TORCH_THREADS = { OPENBLAS_NUM_THREADS: '2', OMP_NUM_THREADS: '1', MKL_NUM_THREADS: '1' } as const;
export const TORCH_INTRA_OP_THREADS = 1;

export type TorchProbe = { ok: true; python: string; version: string } | { ok: false; reason: string };

function exec(file: string, args: string[], env: NodeJS.ProcessEnv, timeoutMs: number): Promise<{ stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    execFile(file, args, { env, timeout: timeoutMs, maxBuffer: 64 * 1024 * 1024 }, (err, stdout, stderr) => {
      if (err) reject(Object.assign(err, { stderr: String(stderr) }));
      else resolve({ stdout: String(stdout), stderr: String(stderr) });
    });
  });
}

function lastLine(s: string): string {
  const lines = s.trim().split('\n');
  return lines[lines.length - 1] ?? '';
}

/** Is PyTorch usable? (python present, torch and numpy import, the script is there.) */
export async function probeTorch(python = process.env['MCE_BENCH_PYTHON'] ?? DEFAULT_PYTHON): Promise<TorchProbe> {
  if (!existsSync(python)) return { ok: false, reason: `${python} not found` };
  if (!existsSync(TORCH_SCRIPT)) return { ok: false, reason: `${TORCH_SCRIPT} not found` };
  try {
    const { stdout } = await exec(python, ['-c', 'import torch, numpy; print(torch.__version__)'], { ...process.env, ...TORCH_THREADS }, 120_000);
    return { ok: true, python, version: stdout.trim() };
  } catch (e) {
    const err = e as Error & { stderr?: string };
    return { ok: false, reason: `torch does not import under ${python}: ${lastLine(err.stderr ?? err.message)}` };
  }
}

export interface TorchConfig {
  workload: string;
  inputs: string;
  tensors: { name: string; shape: number[] }[];
  params: Record<string, unknown>;
  warmup: number;
  reps: number;
  min_reps: number;
  budget_s: number;
}

export interface TorchTimeResult {
  median_ms: number;
  times_ms: number[];
  check: CheckValues;
  torch_version: string;
  intra_threads: number;
}

export interface TorchMemResult {
  peak_growth_mb: number | null;
  peak_rss_mb: number | null;
  rss_before_mb: number | null;
  peak_method: string;
}

async function runScript<T>(python: string, cfg: object, extraEnv: Record<string, string>): Promise<T> {
  const env = { ...process.env, ...TORCH_THREADS, ...extraEnv };
  try {
    const { stdout } = await exec(python, [TORCH_SCRIPT, JSON.stringify(cfg)], env, 600_000);
    return JSON.parse(lastLine(stdout)) as T;
  } catch (e) {
    const err = e as Error & { stderr?: string };
    throw new Error(`torch_bench.py failed: ${lastLine(err.stderr ?? '') || err.message}`);
  }
}

/** Timed repetitions (median) and the check values, in a fresh process. */
export function torchTime(python: string, cfg: TorchConfig): Promise<TorchTimeResult> {
  return runScript(python, { ...cfg, mode: 'time', intra_threads: TORCH_INTRA_OP_THREADS }, {});
}

/**
 * Peak RSS growth during one repetition, in a fresh process with MALLOC_MMAP_THRESHOLD_=65536 so that
 * freed tensors leave RSS (engine-measurements §5). Timing runs without it, at glibc's defaults.
 */
export function torchMemory(python: string, cfg: TorchConfig): Promise<TorchMemResult> {
  return runScript(python, { ...cfg, mode: 'mem', intra_threads: TORCH_INTRA_OP_THREADS }, { MALLOC_MMAP_THRESHOLD_: '65536' });
}
