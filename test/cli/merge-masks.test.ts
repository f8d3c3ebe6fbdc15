// mce merge-masks as a user runs it: the merged file keeps a unit only where every run kept it,
// records its sources and their concepts, and is read back like any run's masks; bad calls are one
// line with the right exit code.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { keepMasks } from '../../src/erase/mce/masked-model.js';
import { loadMasks, saveMasks } from '../../src/erase/mce/maskfile.js';
import { fluxMaskSpecs } from '../../src/models/flux/masks.js';
import type { FluxParams } from '../../src/models/flux/params.js';
import { unetMaskSpecs } from '../../src/models/unet/masks.js';
import { TINY_SD_UNET } from '../erase/tiny-sd.js';
import { runCli } from './run.js';

const TINY_FLUX = { hidden_size: 32, mlp_ratio: 2, num_heads: 2, depth: 1, depth_single_blocks: 1 } as FluxParams;

/** Keep-masks over every hook point of `specs`, unit i dropped where drop(i) holds. */
function keepWhere(specs: { name: string; size: number }[], drop: (i: number) => boolean): Record<string, Float32Array> {
  return Object.fromEntries(specs.map((s) => [s.name, Float32Array.from({ length: s.size }, (_, i) => (drop(i) ? 0 : 1))]));
}

test('merge-masks: AND of the runs\' keep-masks, with sources and concepts recorded; bad calls are one line', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'mce-merge-'));
  try {
    const specs = fluxMaskSpecs(TINY_FLUX);
    const a = join(dir, 'a.safetensors');
    const b = join(dir, 'b.safetensors');
    const merged = join(dir, 'new-folder', 'merged.safetensors'); // the folder is made
    // Run a drops every unit divisible by 2, run b every unit divisible by 3; run b stores logits
    // too, whose own binarisation must not matter: the stored keep-masks are what a run ships.
    await saveMasks(a, { keep: keepWhere(specs, (i) => i % 2 === 0), cfg: TINY_FLUX, metadata: { concepts: JSON.stringify(['kitchen knife']) } });
    const logits = Object.fromEntries(specs.map((s) => [s.name, new Float32Array(s.size).fill(-5)]));
    await saveMasks(b, { logits, keep: keepWhere(specs, (i) => i % 3 === 0), cfg: TINY_FLUX, metadata: { concepts: JSON.stringify(['vampire', 'dagger']) } });

    // An erase run folder stands for its masks.safetensors.
    const runB = join(dir, 'run-b');
    mkdirSync(runB);
    copyFileSync(b, join(runB, 'masks.safetensors'));
    const r = await runCli(['merge-masks', a, runB, '--out', merged]);
    assert.equal(r.code, 0, r.err);
    const mf = await loadMasks(merged, TINY_FLUX);
    for (const s of specs) assert.deepEqual([...mf.keep[s.name]!], Array.from({ length: s.size }, (_, i) => (i % 2 === 0 || i % 3 === 0 ? 0 : 1)), s.name);
    assert.deepEqual(mf.logits, {});
    assert.deepEqual(mf.cfg, TINY_FLUX);
    assert.deepEqual(JSON.parse(mf.metadata['concepts']!), ['kitchen knife', 'vampire', 'dagger']);
    const sources = JSON.parse(mf.metadata['merged_from']!) as { file: string; sha256: string; concepts: string[] }[];
    assert.deepEqual(sources.map((s) => [s.file, s.concepts, s.sha256.length]), [[a, ['kitchen knife'], 64], [join(runB, 'masks.safetensors'), ['vampire', 'dagger'], 64]]);
    // 1/2, 1/3 and their union 2/3 of the units, as printed (every hook point here has 16 to 128 units).
    const total = specs.reduce((n, s) => n + s.size, 0);
    const dropped = (f: (i: number) => boolean) => specs.reduce((n, s) => n + Array.from({ length: s.size }, (_, i) => i).filter(f).length, 0);
    const pct = (k: number) => `${((100 * k) / total).toFixed(1)}% of units masked`;
    assert.match(r.err, new RegExp(`a\\.safetensors \\(kitchen knife\\): ${pct(dropped((i) => i % 2 === 0))}`));
    assert.match(r.err, new RegExp(`merged \\(kitchen knife, vampire, dagger\\): ${pct(dropped((i) => i % 2 === 0 || i % 3 === 0))} -> `));
    // The merged file reads back as a run's does, and has no logits to binarise again.
    assert.deepEqual(await keepMasks(merged, TINY_FLUX), mf.keep);
    await assert.rejects(keepMasks(merged, TINY_FLUX, { kind: 'threshold', threshold: 0 }), /stores keep-masks only .* leave out --binarize/);

    // Bad calls: one line each, exit 2 for usage, 1 for a bad file.
    const unet = join(dir, 'unet.safetensors');
    await saveMasks(unet, { keep: keepWhere(unetMaskSpecs(TINY_SD_UNET), () => false), unet: TINY_SD_UNET });
    const notMasks = join(dir, 'not-masks.safetensors');
    writeFileSync(notMasks, 'not a safetensors file');
    const cases: [string[], number, RegExp][] = [
      [['merge-masks', a, '--out', merged], 2, /give two or more mask files/],
      [['merge-masks', a, b], 2, /--out is required/],
      [['merge-masks', a, b, '--out', join(dir, 'm.bin')], 2, /--out must name a \.safetensors file/],
      [['merge-masks', a, unet, '--out', merged], 1, /unet\.safetensors: trained on another model than .*a\.safetensors/],
      [['merge-masks', a, notMasks, '--out', merged], 1, /not-masks\.safetensors/],
      [['merge-masks', a, join(dir, 'missing.safetensors'), '--out', merged], 1, /missing\.safetensors/],
      [['merge-masks', a, dir, '--out', merged], 1, /a folder without masks\.safetensors/],
      [['merge-masks', a, b, '--out', join(a, 'm.safetensors')], 1, /^mce: cannot write .*a\.safetensors\/m\.safetensors: (ENOTDIR|EEXIST)/],
    ];
    const results = await Promise.all(cases.map(([argv]) => runCli(argv)));
    results.forEach((res, i) => {
      const [argv, code, re] = cases[i]!;
      assert.equal(res.code, code, `${argv.join(' ')}: ${res.err}`);
      assert.match(res.err, re);
      assert.equal(res.err.trim().split('\n').length, 1, res.err);
    });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
