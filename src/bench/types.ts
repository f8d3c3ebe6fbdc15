// What a benchmark workload is. One workload per file in src/bench/workloads/, listed once in
// src/bench/workloads/index.ts; the harness (harness.ts) times it in our engine and, through
// bench/torch_bench.py, in PyTorch on the same inputs.

/** A float32 input shared by both engines, in the order the PyTorch script reads them. */
export interface InputArray {
  name: string;
  shape: number[];
  data: Float32Array;
}

/** 'full' is the benchmark size (fixed per workload name); 'tiny' is for the harness's smoke test. */
export type WorkloadSize = 'full' | 'tiny';

/** Values both engines compute on the same inputs (a loss, gradient norms), compared after the run. */
export type CheckValues = Record<string, number>;

export interface ExtraResult {
  /** Extra fields for the result record. */
  fields: Record<string, unknown>;
  /** One-line notes for the table footer and the record. */
  notes: string[];
}

/** Whether a workload's target is met: null when this run cannot decide (PyTorch or the addon absent). */
export interface TargetStatus {
  text: string;
  met: boolean | null;
}

export interface ExtraOptions {
  smoke: boolean;
  /** Our median time per repetition, just measured. */
  oursMs: number;
  /** Seconds the extra measurements should stay within (skip, with a note, what would take longer). */
  budgetS: number;
  log: (line: string) => void;
}

/** Our engine's side of a prepared workload. Tensors are created by `setup` and freed by `dispose`. */
export interface OursRun {
  /** One repetition. Everything it allocates is freed before it returns. */
  step(): void;
  /** One repetition that also reads back the check values. */
  checked(): CheckValues;
  /** Measurements beyond time and peak memory (OpenBLAS-direct time, memory versus step count). */
  extra?(opts: ExtraOptions): Promise<ExtraResult>;
  dispose(): void;
}

export interface Prepared {
  /** Floating-point operations of one repetition (matmul FLOPs: 2 per multiply-add). */
  flops: number;
  /** Sizes and constants, passed to the PyTorch script as `params`. */
  params: Record<string, unknown>;
  inputs: InputArray[];
  /** Create our tensors from `inputs`. Call after the backend is selected. */
  setup(): OursRun;
}

export interface Workload {
  /** Stable name: results are compared across runs and issues by it. */
  name: string;
  /** One line: what is computed. */
  description: string;
  /** Timed repetitions in a full run (a time budget may stop earlier, never below 3). */
  reps: number;
  /** false: no PyTorch twin (whole-process CLI timings); torch is not run and its columns stay null. */
  torch?: boolean;
  /** Build the inputs. Deterministic: the same size gives the same bytes. */
  prepare(size: WorkloadSize): Prepared;
  /** The target this workload is checked against (issue 2, "Targets"), judged on the finished record. */
  judge?(record: BenchRecord): TargetStatus;
}

/** One line of bench/results.json. Times are medians in ms; memory in MiB (2^20 bytes). */
export interface BenchRecord {
  name: string;
  /** Our median time per repetition. */
  ours_ms: number;
  /** PyTorch's median time; null when PyTorch is absent or failed. */
  torch_ms: number | null;
  /** ours_ms / torch_ms; null when PyTorch is absent. */
  ratio: number | null;
  /** Our GFLOP/s (matmul FLOPs of the workload / ours_ms). */
  gflops: number;
  /** Our peak tensor memory during one repetition, above the tensors alive before it (inputs, weights). */
  peak_mb: number;
  /** Our backend: native | wasm | cpu. */
  backend: string;
  /** gflops as a percentage of the nominal fp32 peak (166.1 GFLOP/s: 2 cores x 2.596 GHz x 32 flop/cycle). */
  pct_peak: number;
  /** gflops as a percentage of the measured practical peak (~230 GFLOP/s, FMA microbenchmark at ~3.6 GHz). */
  pct_practical_peak: number;
  torch_gflops: number | null;
  /** PyTorch's peak RSS growth during one repetition above its RSS just before it (MALLOC_MMAP_THRESHOLD_=65536). */
  torch_peak_mb: number | null;
  /** Bytes of the inputs and weights both engines hold before a repetition, in MiB. */
  inputs_mb: number;
  flops: number;
  reps: number;
  torch_reps: number | null;
  /** Fastest repetitions: on a loaded machine, a better guide to the unloaded speed than the medians. */
  ours_min_ms: number;
  torch_min_ms: number | null;
  /** 1-minute load average when the workload finished (other processes on this machine skew timings). */
  loadavg_1m: number;
  /** Check values (loss, gradient norms) from both engines on the same inputs, and whether they agree. */
  check: { ours: CheckValues; torch: CheckValues | null; max_rel_diff: number | null; ok: boolean | null };
  target: TargetStatus | null;
  notes: string[];
  [extra: string]: unknown;
}
