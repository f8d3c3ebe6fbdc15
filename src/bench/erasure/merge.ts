// `mce bench merge`: join the results folders of a sharded sweep. Every folder must hold the same
// settings (bench.json); rows are deduplicated by unit (a unit run twice keeps one row), copied
// into one results.jsonl of the output folder, together with the erased bundles' grid strips'
// paths as they were. Reports the units of the plan that no shard finished.
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { writeFileAtomicSync } from '../../io/atomic.js';
import { planUnits, settingsHash } from './plan.js';
import { claimFolder, readFolderSettings, readRows } from './store.js';

export async function mergeResults(dirs: readonly string[], out: string): Promise<{ rows: number; missing: string[] }> {
  for (const d of dirs) if (!existsSync(join(d, 'bench.json'))) throw new Error(`${d}: no bench.json (not a benchmark results folder)`);
  const first = readFolderSettings(dirs[0]!);
  for (const d of dirs.slice(1)) {
    const h = readFolderSettings(d).hash;
    if (h !== first.hash) throw new Error(`${d} holds results of other settings (${h}) than ${dirs[0]} (${first.hash})`);
  }
  const byUnit = new Map<string, ReturnType<typeof readRows>[number]>();
  for (const d of dirs) for (const r of readRows(d)) {
    const prev = byUnit.get(r.unit);
    if (!prev || (prev.status !== 'ok' && r.status === 'ok')) byUnit.set(r.unit, r);
  }
  claimFolder(out, first.settings);
  const outRows = [...byUnit.values()].filter((r) => r.settings === settingsHash(first.settings));
  const order = new Map(planUnits(first.settings).units.map((u, i) => [u.id, i]));
  outRows.sort((a, b) => (order.get(a.unit) ?? 1e9) - (order.get(b.unit) ?? 1e9));
  const file = join(out, 'results.jsonl');
  // An out folder that is one of the inputs keeps its own rows in the merged file.
  writeFileAtomicSync(file, outRows.map((r) => JSON.stringify(r) + '\n').join(''));
  const done = new Set(outRows.filter((r) => r.status === 'ok').map((r) => r.unit));
  const missing = planUnits(first.settings).units.map((u) => u.id).filter((id) => !done.has(id));
  return { rows: outRows.length, missing };
}
