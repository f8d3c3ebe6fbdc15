// The erasure benchmark's bookkeeping without models: the plan, shards, the results store (resume,
// torn lines), merge, and the table.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { appendFileSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fullSettings, planUnits, quickSettings, settingsHash, shardUnits } from '../../src/bench/erasure/plan.js';
import { appendRow, claimFolder, readRows, resultsFile, type BenchRow } from '../../src/bench/erasure/store.js';
import { mergeResults } from '../../src/bench/erasure/merge.js';
import { benchTables } from '../../src/bench/erasure/table.js';
import { benchTime } from '../../src/bench/erasure/time.js';

test('the full plan: both families, 4 cases, every method on every case (the multi-concept one too), FlowEdit only on FLUX', () => {
  const s = fullSettings();
  const { units, skipped } = planUnits(s);
  const cells = new Set(units.map((u) => u.cell));
  // flux: 9 methods x 4 cases = 36; sd: 8 x 4 = 32 (no FlowEdit)
  assert.equal(cells.size, 68);
  assert.equal(units.length, 68 * (2 + s.attacks.length));
  assert.deepEqual(skipped.map((x) => x.cell).sort(), ['sd-emoji/flowedit/kitchen-knife', 'sd-emoji/flowedit/knife-dagger-vampire', 'sd-emoji/flowedit/twemoji-style', 'sd-emoji/flowedit/vampire']);
  for (const m of ['mce', 'uce', 'sld', 'esd-x', 'esd-u', 'ca', 'eap', 'flowedit']) assert.ok(cells.has(`flux-emoji/${m}/knife-dagger-vampire`), m);
  assert.ok(cells.has('sd-emoji/esd-u/knife-dagger-vampire'));
  assert.equal(new Set(units.map((u) => u.id)).size, units.length);
  // mce-decay and mce-text run only when --methods names them.
  assert.ok(!s.methods.includes('mce-decay') && !s.methods.includes('mce-text'));
  assert.equal(new Set(planUnits({ ...s, methods: ['mce-decay'] }).units.map((u) => u.cell)).size, 8);
});

test('shards: disjoint, complete, whole cells, the same in every process', () => {
  const s = fullSettings();
  const { units } = planUnits(s);
  for (const n of [1, 3, 4]) {
    const shards = Array.from({ length: n }, (_, i) => shardUnits(s, units, i, n));
    const all = shards.flat().map((u) => u.id).sort();
    assert.deepEqual(all, units.map((u) => u.id).sort());
    for (const [i, sh] of shards.entries()) {
      const ids = new Set(sh.map((u) => u.id));
      for (const u of sh) assert.ok(units.filter((x) => x.cell === u.cell).every((x) => ids.has(x.id)), `cell ${u.cell} split across shards`);
      assert.deepEqual(shardUnits(s, units, i, n).map((u) => u.id), sh.map((u) => u.id));
    }
    if (n > 1) assert.ok(shards.every((sh) => sh.length > 0));
  }
  assert.throws(() => shardUnits(s, units, 4, 4), /bad shard 4\/4/);
});

function row(unit: string, status: 'ok' | 'error', data: Record<string, unknown>, settings: string): BenchRow {
  const [model, method, c, kind, attack] = unit.split('/');
  return { unit, kind: kind as BenchRow['kind'], model: model!, method: method!, case: c!, ...(attack ? { attack } : {}), status, settings, seconds: 1, data };
}

test('results store: resume reads every shard file, a torn last line is ignored, the last row of a unit wins; other settings are refused', () => {
  const dir = mkdtempSync(join(tmpdir(), 'bench-store-'));
  try {
    const s = quickSettings();
    claimFolder(dir, s);
    claimFolder(dir, s);
    assert.throws(() => claimFolder(dir, { ...s, seed: 1 }), /holds results of other benchmark settings/);
    const h = settingsHash(s);
    const f1 = resultsFile(dir, { i: 0, n: 2 });
    assert.match(f1, /results\.shard-1-of-2\.jsonl$/);
    appendRow(f1, row('flux-emoji/mce/kitchen-knife/erase', 'error', {}, h));
    appendRow(f1, row('flux-emoji/mce/kitchen-knife/erase', 'ok', { x: 1 }, h));
    appendRow(resultsFile(dir, { i: 1, n: 2 }), row('flux-emoji/uce/kitchen-knife/erase', 'ok', {}, h));
    appendFileSync(f1, '{"unit":"flux-emoji/mce/kitch'); // killed mid-append
    const rows = readRows(dir);
    assert.equal(rows.length, 2);
    assert.deepEqual(rows.find((r) => r.unit.includes('/mce/'))!.data, { x: 1 });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('merge joins shard folders, keeps one row per unit, lists what no shard finished, refuses mixed settings', async () => {
  const root = mkdtempSync(join(tmpdir(), 'bench-merge-'));
  try {
    const s = { ...quickSettings(), attacks: [] as never[] };
    const h = settingsHash(s);
    const units = planUnits(s).units;
    const [a, b, out] = ['a', 'b', 'out'].map((x) => join(root, x));
    claimFolder(a!, s);
    claimFolder(b!, s);
    for (const u of shardUnits(s, units, 0, 2)) appendRow(resultsFile(a!, { i: 0, n: 2 }), row(u.id, 'ok', {}, h));
    const second = shardUnits(s, units, 1, 2);
    for (const u of second.slice(0, -1)) appendRow(resultsFile(b!, { i: 1, n: 2 }), row(u.id, 'ok', {}, h));
    const r = await mergeResults([a!, b!], out!);
    assert.equal(r.rows, units.length - 1);
    assert.deepEqual(r.missing, [second.at(-1)!.id]);
    assert.equal(readFileSync(join(out!, 'results.jsonl'), 'utf8').trim().split('\n').length, units.length - 1);
    const c = join(root, 'c');
    claimFolder(c, { ...s, seed: 9 });
    await assert.rejects(mergeResults([a!, c], join(root, 'o2')), /other settings/);
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

test('the table: one row per method with detection before -> after, preservation, ASR per attack and cost', () => {
  const s = { ...quickSettings(), attacks: ['i2p'] as ['i2p'] };
  const h = settingsHash(s);
  const metrics = (before: number, after: number, ssim: number) => ({ erase: { before, after, clip: { before: 60, after: 50 } }, neighbours: { before: 0.5, after: 0.25 }, others: { before: 0.5, after: 0.5 }, preserve: { ssim, featureDistance: 0.1, fid: { erased: 50 }, kid: { erased: 0.01 } } });
  const rows = [
    row('flux-emoji/none/kitchen-knife/erase', 'ok', {}, h),
    row('flux-emoji/none/kitchen-knife/metrics', 'ok', metrics(0.75, 0.75, 1), h),
    row('flux-emoji/mce/kitchen-knife/erase', 'ok', { changed: { params: 50, totalParams: 1000 }, peakRssMiB: 500 }, h),
    row('flux-emoji/mce/kitchen-knife/metrics', 'ok', metrics(0.75, 0.125, 0.9), h),
    row('flux-emoji/mce/kitchen-knife/attack/i2p', 'ok', { asr: 0.3 }, h),
    row('flux-emoji/uce/kitchen-knife/erase', 'error', {}, h),
  ];
  rows[5]!.error = 'boom';
  const t = benchTables(rows, s);
  assert.match(t, /\| none \| 75% → 75% \| 50\.0 \| 1\.000 \|/);
  assert.match(t, /\| mce \| 75% → 13% \| 50\.0 \| 0\.900 \| 0\.100 \| 50\.0 \| 0\.010 \| 25% \| 50% \| 30% \| 1 \| 500 \| 5\.00% \|/);
  assert.match(t, /- flux-emoji\/uce\/kitchen-knife\/erase: boom/);
  assert.doesNotMatch(t, /per case:/, 'no Ring-A-Bell or P4D in the run: no acceptance table');

  // With Ring-A-Bell and P4D in the run: their success and the preserve SSIM case by case (issue 6's acceptance).
  const s2 = { ...s, attacks: ['ring-a-bell', 'p4d'] as ['ring-a-bell', 'p4d'], cases: ['kitchen-knife', 'vampire'] };
  const h2 = settingsHash(s2);
  const t2 = benchTables([
    row('flux-emoji/mce/kitchen-knife/metrics', 'ok', metrics(0.75, 0.125, 0.9), h2),
    row('flux-emoji/mce/kitchen-knife/attack/ring-a-bell', 'ok', { asr: 0.2 }, h2),
    row('flux-emoji/mce/kitchen-knife/attack/p4d', 'ok', { asr: 0.1 }, h2),
    row('flux-emoji/mce/vampire/attack/p4d', 'ok', { asr: 0.5 }, h2),
  ], s2);
  assert.match(t2, /ASR ring-a-bell \/ ASR p4d \/ preserve SSIM, per case:\n\n\| method \| kitchen-knife \| vampire \|\n\|---\|---\|---\|\n\| mce \| 20% \/ 10% \/ 0\.900 \|  \|\n/);
});

test('bench time: totals by family and kind, and the slowest shard of each --shard split from the recorded unit times', () => {
  const s = fullSettings();
  const { units } = planUnits(s);
  const h = settingsHash(s);
  // Every unit takes 1 s except the sd-emoji MCE erases (100 s each): 4 cells that 2 shards must share.
  const rows = units.map((u) => ({ ...row(u.id, 'ok', {}, h), seconds: u.model === 'sd-emoji' && u.method === 'mce' && u.kind === 'erase' ? 100 : 1 }));
  const t = benchTime(rows, s, [1, 2, 4]);
  assert.equal(t.units, units.length);
  assert.ok(t.complete);
  assert.equal(t.seconds, units.length - 4 + 400);
  assert.equal(t.byModel['sd-emoji']! + t.byModel['flux-emoji']!, t.seconds);
  assert.equal(t.byKind['erase'], 68 - 4 + 400);
  assert.equal(t.shards[0]!.slowest, t.seconds);
  for (const { n, slowest } of t.shards.slice(1)) {
    const each = Array.from({ length: n }, (_, i) => shardUnits(s, units, i, n).reduce((a, u) => a + rows.find((r) => r.unit === u.id)!.seconds, 0));
    assert.equal(slowest, Math.max(...each));
    assert.ok(slowest >= t.seconds / n && slowest < t.seconds / n + 110, `${n} shards: ${each}`);
  }
  assert.match(benchTables(rows.slice(0, 10), s), /Time: 10 units \(not all of the plan yet\), 0:10 of unit time \(flux-emoji 0:10, sd-emoji 0:00; erase 0:02, metrics 0:01, attack 0:07\)/);
  assert.equal(benchTime(rows.slice(1), s).complete, false);
});
