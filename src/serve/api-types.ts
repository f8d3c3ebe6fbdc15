// The lab's listing records, shared by the server (runs.ts) and the page (web/src/api.ts): no Node
// imports here, so the page's type check can read it.

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
