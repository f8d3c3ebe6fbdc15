// mce generate --n K split over 3 shard processes and merged gives the bytes of the unsharded run,
// on tiny FLUX and SD bundles; a resumed shard keeps its images; merge refuses missing images and
// mixed settings with one line.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { useBackend } from '../../src/engine/backend.js';
import { decodePng } from '../../src/io/png.js';
import { writeTinyFluxBundle, writeTinySdBundle } from '../erase/baselines/fixture.js';
import { runCli } from './run.js';

const PROMPT = 'a kitchen knife';

for (const family of ['flux', 'sd'] as const) {
  test(`generate --shard (${family}): 3 shard processes merged equal the unsharded --n 10 grid byte for byte`, async () => {
    await useBackend();
    const dir = mkdtempSync(join(tmpdir(), `mce-gen-shard-${family}-`));
    try {
      const model = join(dir, 'model');
      await (family === 'flux' ? writeTinyFluxBundle : writeTinySdBundle)(model, [PROMPT, 'a spoon']);
      // 10 images: batches of 4, 4 and 2, one per shard.
      const flags = ['generate', '--model', model, '--prompt', PROMPT, '--seed', '5', '--n', '10'];
      const out = join(dir, 'grid.png');
      const [whole, ...shards] = await Promise.all([
        runCli([...flags, '--out', join(dir, 'whole.png')]),
        ...[1, 2, 3].map((i) => runCli([...flags, '--shard', `${i}/3`, '--out', out])),
      ]);
      for (const r of [whole, ...shards]) assert.equal(r.code, 0, r.err);
      const folders = [1, 2, 3].map((i) => join(dir, `grid.shard-${i}-of-3`));
      assert.deepEqual(folders.map((f) => readdirSync(f).filter((x) => x.endsWith('.png')).sort()), [
        ['img-00000.png', 'img-00001.png', 'img-00002.png', 'img-00003.png'],
        ['img-00004.png', 'img-00005.png', 'img-00006.png', 'img-00007.png'],
        ['img-00008.png', 'img-00009.png'],
      ]);

      const merged = await runCli(['generate', 'merge', ...folders, '--out', out]);
      assert.equal(merged.code, 0, merged.err);
      assert.match(merged.err, /10 image\(s\) from 3 folders/);
      const a = readFileSync(join(dir, 'whole.png'));
      assert.deepEqual(readFileSync(out), a);
      // A real grid of distinct images: 4 columns of 8-pixel images with 2-pixel gutters.
      const img = decodePng(a);
      assert.equal(img.width, 4 * 8 + 5 * 2);
      assert.equal(img.height, 3 * 8 + 4 * 2);
      assert.notDeepEqual(readFileSync(join(folders[0]!, 'img-00000.png')), readFileSync(join(folders[0]!, 'img-00001.png')));

      if (family === 'sd') return;

      // Rerunning a finished shard makes nothing and leaves its files as they were; merging without
      // a shard names the first missing image (exit 1, one line); a shard of another seed neither
      // resumes in the same folder nor merges with the others.
      const before = statSync(join(folders[1]!, 'img-00005.png')).mtimeMs;
      const [again, partial, clash, other] = await Promise.all([
        runCli([...flags, '--shard', '2/3', '--out', out]),
        runCli(['generate', 'merge', folders[0]!, folders[2]!, '--out', join(dir, 'partial.png')]),
        runCli(['generate', '--model', model, '--prompt', PROMPT, '--seed', '6', '--n', '10', '--shard', '1/3', '--out', out]),
        runCli(['generate', '--model', model, '--prompt', PROMPT, '--seed', '6', '--n', '10', '--shard', '2/3', '--out', join(dir, 'other.png')]),
      ]);
      assert.equal(again.code, 0, again.err);
      assert.match(again.err, /0 of its 4 image\(s\) made \(4 already there\)/);
      assert.equal(statSync(join(folders[1]!, 'img-00005.png')).mtimeMs, before);
      assert.equal(partial.code, 1);
      assert.match(partial.err, /^mce: 4 of 10 images missing \(first: image 4\)/);
      assert.equal(partial.err.trim().split('\n').length, 1);
      assert.ok(!existsSync(join(dir, 'partial.png')));
      assert.equal(clash.code, 1);
      assert.match(clash.err, /grid\.shard-1-of-3 holds images of other settings/);
      assert.equal(other.code, 0, other.err);
      const mixed = await runCli(['generate', 'merge', folders[0]!, join(dir, 'other.shard-2-of-3'), folders[2]!, '--out', join(dir, 'mixed.png')]);
      assert.equal(mixed.code, 1);
      assert.match(mixed.err, /other\.shard-2-of-3 holds images of other settings/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
}

test('generate --shard: bad values are usage errors (exit 2, one line)', async () => {
  const cases: [string[], RegExp][] = [
    [['generate', '--prompt', 'a cat', '--n', '4', '--shard', '0/3'], /--shard must be I\/N with 1 <= I <= N, got '0\/3'/],
    [['generate', '--prompt', 'a cat', '--n', '4', '--shard', '4/3'], /--shard must be I\/N/],
    [['generate', '--prompt', 'a cat', '--n', '4', '--shard', '1/3', '--trajectory'], /--trajectory does not combine with --shard/],
    [['generate', 'merge', '--out', 'x.png'], /give the shard folders/],
  ];
  const runs = await Promise.all(cases.map(([argv]) => runCli(argv)));
  runs.forEach((r, j) => {
    assert.equal(r.code, 2, `${cases[j]![0].join(' ')}: ${r.err}`);
    assert.match(r.err, cases[j]![1]);
    assert.equal(r.err.trim().split('\n').length, 1);
  });
});
