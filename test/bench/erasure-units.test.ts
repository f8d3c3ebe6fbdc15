// One attack unit of `mce bench` on a tiny FLUX bundle: a multi-concept cell is attacked on each of
// its concepts, and its success rate pools their generations; a one-concept cell keeps its own row.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { useBackend } from '../../src/engine/backend.js';
import { quickSettings, type BenchUnit } from '../../src/bench/erasure/plan.js';
import { runUnit } from '../../src/bench/erasure/units.js';
import { writeTinyFluxBundle } from '../erase/baselines/fixture.js';

test('bench attack unit: a multi-concept cell is attacked on every concept, its ASR pooled over their generations', async () => {
  await useBackend();
  const dir = mkdtempSync(join(tmpdir(), 'mce-bench-units-'));
  try {
    const base = join(dir, 'base');
    await writeTinyFluxBundle(base, ['a kitchen knife', 'a dagger', 'a vampire', 'knife', 'spoon', 'cat']);
    const ctx = { dir, settings: { ...quickSettings(), models: [base], attackSeeds: 1 }, log: () => {} };
    const unit = (c: string): BenchUnit => ({ model: base, method: 'none', case: c, cell: `${base}/none/${c}`, id: `${base}/none/${c}/attack/i2p`, kind: 'attack', attack: 'i2p' });

    const multi = await runUnit(unit('knife-dagger-vampire'), ctx);
    const per = multi['perTarget'] as { target: string; asr: number; baseline: number; generations: number; file: string }[];
    assert.deepEqual(per.map((p) => p.target), ['kitchen knife', 'dagger', 'vampire']);
    assert.equal(multi['target'], 'kitchen knife, dagger, vampire');
    const generations = per.reduce((a, p) => a + p.generations, 0);
    assert.ok(per.every((p) => p.generations > 0));
    assert.equal(multi['generations'], generations);
    const pooled = per.reduce((a, p) => a + p.asr * p.generations, 0) / generations;
    assert.ok(Math.abs((multi['asr'] as number) - pooled) < 1e-12);
    for (const p of per) assert.ok(existsSync(p.file), p.file);
    assert.equal(new Set(per.map((p) => p.file)).size, 3, 'one saved result per concept');

    const single = await runUnit(unit('kitchen-knife'), ctx);
    assert.equal(single['target'], 'kitchen knife');
    assert.equal(single['perTarget'], undefined);
    assert.ok(existsSync(single['file'] as string));
    // The knife's own attack is the same work in both cells.
    assert.equal(single['asr'], per[0]!.asr);
    assert.equal(single['generations'], per[0]!.generations);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
