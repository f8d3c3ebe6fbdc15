// The lab server's JSON API as the page uses it (src/serve/server.ts is the other side).

export type { RunListing, BenchListing, ErasureBenchListing } from '../../src/serve/api-types.js';
import type { RunListing, BenchListing, ErasureBenchListing } from '../../src/serve/api-types.js';

export interface SparsityLayer {
  name: string;
  group: string;
  units: number;
  pruned: number;
  fraction: number;
}

/** The parts of an erase run's summary.json the page reads; every one may be missing. */
export interface Summary {
  model?: string;
  family?: string;
  concepts?: { name: string; neutral?: string }[];
  settings?: { iters?: number; beta?: number; target?: string; objective?: string; sampler?: { steps?: number; cfg?: number } };
  seconds?: { total?: number };
  prompts?: { erase?: { prompt: string }[] };
  loss?: { curve?: number[][] };
  sparsity?: { groups?: SparsityLayer[]; total?: { units: number; pruned: number; fraction: number } };
  trajectoryDivergence?: { erase?: number[]; preserve?: number[] };
  evaluation?: Record<string, unknown> & { metrics?: Record<string, string>; notes?: string[] };
  acceptance?: { bar: string; value: number | null; met: boolean }[];
}

export interface RunDetail {
  name: string;
  summary: Summary;
  layers: SparsityLayer[];
  images: string[];
}

export interface Comparison {
  prompt: string;
  seed: number;
  steps: number;
  timesteps: number[];
  original: { image: string; trajectory?: string[] };
  erased: { image: string; trajectory?: string[] };
  /** The prompt's words in none of the model's training captions. */
  unreadWords: string[];
}

async function call<T>(path: string, init?: RequestInit): Promise<T> {
  const res = await fetch(path, init);
  const body = (await res.json()) as T & { error?: string };
  if (!res.ok) throw new Error(body.error ?? `${res.status} ${res.statusText}`);
  return body;
}

const post = (body: unknown): RequestInit => ({ method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });

export const api = {
  runs: () => call<{ runs: RunListing[]; bench: BenchListing[]; erasure: ErasureBenchListing[] }>('api/runs'),
  run: (name: string) => call<RunDetail>(`api/runs/${encodeURIComponent(name)}`),
  fileUrl: (run: string, file: string) => `api/runs/${encodeURIComponent(run)}/files/${encodeURIComponent(file)}`,
  gridUrl: (bench: string, file: string) => `api/bench/${encodeURIComponent(bench)}/grids/${encodeURIComponent(file)}`,
  compare: (req: { run: string; prompt: string; seed: number; steps?: number; trajectory: boolean }) => call<Comparison>('api/compare', post(req)),
  startErase: (req: { name: string; concept: string; iters: number; steps?: number }) => call<{ name: string; events: string }>('api/erase', post(req)),
};
