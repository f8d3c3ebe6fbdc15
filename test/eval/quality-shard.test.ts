// mce eval quality split over 3 shard processes and merged gives exactly the report of the unsharded
// run (every number; only the timings differ) and the same sample grid, on a tiny FLUX bundle with
// a manifest.dataset, scored by the shipped classifier and emoji CLIP; a rerun shard resumes, and a
// merge with a shard missing fails with one line.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { useBackend } from '../../src/engine/backend.js';
import { qualityPlan, type QualityReport } from '../../src/eval/quality.js';
import { VENDORS } from '../../src/world/vendors.js';
import { writeTinyFluxBundle } from '../erase/baselines/fixture.js';
import { runCli } from '../cli/run.js';

const SHIPPED = ['emoji-classifier', 'emoji-clip'].map((m) => fileURLToPath(new URL(`../../models/${m}/model.safetensors`, import.meta.url)));
const CONCEPTS = ['kitchen knife', 'spoon'];

test('eval quality --shard: 3 shard processes merged give the unsharded report exactly', { skip: !SHIPPED.every(existsSync) && 'shipped evaluators missing' }, async () => {
  await useBackend();
  const dir = mkdtempSync(join(tmpdir(), 'mce-quality-shard-'));
  try {
    const model = join(dir, 'model');
    // The text vocabulary covers the held-out prompts the evaluation will ask for.
    await writeTinyFluxBundle(model, qualityPlan(CONCEPTS, VENDORS, 0).map((it) => it.prompt));
    const manifest = JSON.parse(readFileSync(join(model, 'manifest.json'), 'utf8')) as Record<string, unknown>;
    manifest['dataset'] = { size: 8, concepts: CONCEPTS, seed: 0, styles: [...VENDORS] };
    writeFileSync(join(model, 'manifest.json'), JSON.stringify(manifest, null, 2));

    const flags = ['eval', 'quality', '--model', model, '--seeds', '1', '--json'];
    const shardDir = (i: number): string => join(dir, `shard-${i}`);
    const [whole, ...shards] = await Promise.all([
      runCli([...flags, '--out', join(dir, 'whole')]),
      ...[1, 2, 3].map((i) => runCli([...flags, '--shard', `${i}/3`, '--out', shardDir(i)])),
    ]);
    for (const r of [whole, ...shards]) assert.equal(r.code, 0, r.err);
    shards.forEach((r, j) => assert.match(r.err, new RegExp(`shard ${j + 1}/3: 2 of its 2 items scored`)));

    const [merged, partial, again] = await Promise.all([
      runCli(['eval', 'quality', 'merge', shardDir(1), shardDir(2), shardDir(3), '--json', '--out', join(dir, 'merged')]),
      runCli(['eval', 'quality', 'merge', shardDir(1), shardDir(3), '--out', join(dir, 'partial')]),
      runCli([...flags, '--shard', '2/3', '--out', shardDir(2)]),
    ]);
    assert.equal(merged.code, 0, merged.err);
    const read = (d: string): QualityReport => JSON.parse(readFileSync(join(dir, d, 'quality.json'), 'utf8')) as QualityReport;
    const a = read('whole');
    const b = read('merged');
    // Real numbers: 6 items (2 concepts x 3 styles) of 1 image, scored next to 6 real renders.
    assert.deepEqual(a.images, { generated: 6, real: 6 });
    assert.ok(Number.isFinite(a.metrics.fid.value) && a.metrics.fid.value > 0, `FID ${a.metrics.fid.value}`);
    assert.equal(typeof a.metrics.clipScore.generated, 'number');
    assert.equal(a.targets.find((t) => t.name === 'kitchen knife')?.images, 3);
    // Exactly the same report, timings aside; the stdout JSON is the same report too.
    const untimed = (r: QualityReport): unknown => ({ ...r, seconds: null });
    assert.deepEqual(untimed(b), untimed(a));
    assert.deepEqual(untimed(JSON.parse(merged.out) as QualityReport), untimed(a));
    assert.deepEqual(readFileSync(join(dir, 'merged', 'samples.png')), readFileSync(join(dir, 'whole', 'samples.png')));

    assert.equal(partial.code, 1);
    assert.match(partial.err, /^mce: 2 of 6 items missing \(first: .*, item 1\)/);
    assert.equal(partial.err.trim().split('\n').length, 1);
    assert.equal(again.code, 0, again.err);
    assert.match(again.err, /0 of its 2 items scored \(2 already there\)/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('eval quality --shard: usage errors (exit 2, one line)', async () => {
  const cases: [string[], RegExp][] = [
    [['eval', 'quality', '--shard', '1/3'], /--shard needs --out DIR/],
    [['eval', 'quality', 'merge', 'a'], /--out DIR is required/],
  ];
  const runs = await Promise.all(cases.map(([argv]) => runCli(argv)));
  runs.forEach((r, j) => {
    assert.equal(r.code, 2, `${cases[j]![0].join(' ')}: ${r.err}`);
    assert.match(r.err, cases[j]![1]);
    assert.equal(r.err.trim().split('\n').length, 1);
  });
});
