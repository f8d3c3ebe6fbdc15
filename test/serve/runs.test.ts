// The runs folder as the lab lists it, without a server: a benchmark folder's grids are its case
// grids once the run has written them, and until then the per-cell strips in method order.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, unlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { listRuns } from '../../src/serve/runs.js';
import { writePngSync } from '../../src/io/png.js';
import { writeBenchFolder } from './fixture.js';

const png = (file: string): void => writePngSync(file, { width: 2, height: 2, channels: 3, data: new Uint8Array(12) });

test('benchmark grids: per-cell strips (original first) until the case grid exists, then only the case grid', () => {
  const runs = mkdtempSync(join(tmpdir(), 'mce-runs-'));
  try {
    const dir = join(runs, 'b');
    writeBenchFolder(dir);
    const grids = join(dir, 'grids');
    unlinkSync(join(grids, 'flux-emoji--kitchen-knife.png'));
    for (const m of ['uce', 'mce', 'none']) png(join(grids, `flux-emoji--${m}--kitchen-knife.png`));
    png(join(grids, 'notes.png')); // not a name the bench writes
    const [b] = listRuns(runs).erasure;
    assert.deepEqual(b!.grids, ['flux-emoji--none--kitchen-knife.png', 'flux-emoji--mce--kitchen-knife.png', 'flux-emoji--uce--kitchen-knife.png']);
    png(join(grids, 'flux-emoji--kitchen-knife.png'));
    assert.deepEqual(listRuns(runs).erasure[0]!.grids, ['flux-emoji--kitchen-knife.png']);
    // A folder whose bench.json is not JSON is not listed (and does not break the listing).
    writeBenchFolder(join(runs, 'c'));
    png(join(runs, 'c', 'bench.json'));
    assert.deepEqual(listRuns(runs).erasure.map((e) => e.name), ['b']);
  } finally {
    rmSync(runs, { recursive: true, force: true });
  }
});
