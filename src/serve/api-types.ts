// The lab's listing records, shared by the server (runs.ts) and the page (web/src/api.ts): no Node
// imports here, so the page's type check can read it.
import type { BenchSummary } from '../bench/erasure/summary.js';

export interface RunListing {
  name: string;
  concepts: string[];
  model: string;
  family: string;
  iters: number | null;
  steps: number | null;
  /** Fraction of masked units pruned, over all layers. */
  pruned: number | null;
  /** Detection rate of the target before and after erasure, when the run evaluated it. */
  detection: { before: number; after: number } | null;
}

export interface BenchListing {
  /** The results file, relative to the runs folder. */
  file: string;
  records: Record<string, unknown>[];
}

/** A `mce bench` results folder (bench.json and results*.jsonl). */
export interface ErasureBenchListing {
  /** The folder, directly under the runs folder. */
  name: string;
  /** Prompts per group, MCE iterations and seeds per attack prompt: the settings that size the run. */
  size: { n: number; mceIters: number; attackSeeds: number };
  units: { planned: number; ok: number; failed: number };
  summary: BenchSummary;
  /** The per-(model, case) grids of all methods side by side, under the folder's grids/. */
  grids: string[];
}
