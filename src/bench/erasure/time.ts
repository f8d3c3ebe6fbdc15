// Where a sweep's time went, from the unit times the store records: the total, by model family and
// by unit kind, and for a split into n shards (the plan's own shardUnits) the unit time of the
// slowest shard, which is how long n one-thread processes on n free cores or machines would take.
import { planUnits, shardUnits, type BenchSettings } from './plan.js';
import type { BenchRow } from './store.js';

export interface BenchTime {
  units: number;
  seconds: number;
  byModel: Record<string, number>;
  byKind: Record<string, number>;
  /** Per split into n shards: the slowest shard's unit seconds. */
  shards: { n: number; slowest: number }[];
  /** Whether every unit of the plan has a time. */
  complete: boolean;
}

export function benchTime(rows: readonly BenchRow[], s: BenchSettings, splits: readonly number[] = [2, 4, 8]): BenchTime {
  const seconds = new Map(rows.filter((r) => r.status === 'ok').map((r) => [r.unit, r.seconds]));
  const sum = (pick: (r: BenchRow) => boolean): number => rows.filter((r) => r.status === 'ok' && pick(r)).reduce((a, r) => a + r.seconds, 0);
  const { units } = planUnits(s);
  const shards = splits.map((n) => ({
    n,
    slowest: Math.max(...Array.from({ length: n }, (_, i) => shardUnits(s, units, i, n).reduce((a, u) => a + (seconds.get(u.id) ?? 0), 0))),
  }));
  return {
    units: seconds.size,
    seconds: sum(() => true),
    byModel: Object.fromEntries(s.models.map((m) => [m, sum((r) => r.model === m)])),
    byKind: Object.fromEntries(['erase', 'metrics', 'attack'].map((k) => [k, sum((r) => r.kind === k)])),
    shards,
    complete: units.every((u) => seconds.has(u.id)),
  };
}
