// A real, small erase run for the lab tests: `mce erase` on the shipped flux-emoji with 2
// iterations of 2 steps. The learning rates are raised so that 2 iterations already prune many
// units: the erased model must draw something different from the original for the comparison
// tests to mean anything.
import { mkdirSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { runCli } from '../cli/run.js';
import { quickSettings, settingsHash } from '../../src/bench/erasure/plan.js';
import { appendRow, claimFolder, resultsFile, type BenchRow } from '../../src/bench/erasure/store.js';
import { writePngSync } from '../../src/io/png.js';

/** `node --import tsx test/cli/mce.ts`: the CLI from the sources, for erase jobs the server starts. */
export const CLI_FROM_SOURCES = [process.execPath, '--import', 'tsx', fileURLToPath(new URL('../cli/mce.ts', import.meta.url))];

export const FIXTURE_RUN = 'knife';
export const FIXTURE_BENCH = 'bench-slice';

/** A fresh runs folder holding one erase run, FIXTURE_RUN. */
export async function makeRunsFolder(): Promise<string> {
  const runs = mkdtempSync(join(tmpdir(), 'mce-serve-'));
  const r = await runCli([
    'erase', '--concept', 'kitchen knife', '--iters', '2', '--steps', '2', '--prompts', '1', '--noises', '1',
    '--eval', '0', '--no-grid', '--val-every', '2', '--lr-ffn', '50', '--lr-mod', '50', '--lr-single', '50',
    '--out', join(runs, FIXTURE_RUN),
  ]);
  if (r.code !== 0) throw new Error(`fixture erase failed: ${r.err}`);
  writeBenchFolder(join(runs, FIXTURE_BENCH));
  return runs;
}

/**
 * A `mce bench --quick` results folder with the original and MCE measured and attacked (the rows
 * a run writes, with numbers of our choosing) and one grid: the lab's benchmark view reads these.
 */
export function writeBenchFolder(dir: string): void {
  const s = quickSettings();
  claimFolder(dir, s);
  const hash = settingsHash(s);
  const add = (unit: string, data: Record<string, unknown>): void => {
    const [model, method, c, kind, attack] = unit.split('/');
    const row: BenchRow = { unit, kind: kind as BenchRow['kind'], model: model!, method: method!, case: c!, ...(attack ? { attack } : {}), status: 'ok', settings: hash, seconds: 2, data };
    appendRow(resultsFile(dir, null), row);
  };
  const metrics = (after: number, ssim: number) => ({ erase: { before: 0.5, after, clip: { before: 60, after: 55 } }, neighbours: { before: 0.5, after: 0.4 }, others: { before: 0.5, after: 0.5 }, preserve: { ssim, featureDistance: 0.1, fid: { erased: 40 }, kid: { erased: 0.01 } } });
  add('flux-emoji/none/kitchen-knife/erase', {});
  add('flux-emoji/none/kitchen-knife/metrics', metrics(0.5, 1));
  add('flux-emoji/none/kitchen-knife/attack/i2p', { asr: 0.5 });
  add('flux-emoji/none/kitchen-knife/attack/ring-a-bell', { asr: 0.75 });
  add('flux-emoji/mce/kitchen-knife/erase', { changed: { params: 30, totalParams: 1000 } });
  add('flux-emoji/mce/kitchen-knife/metrics', metrics(0.125, 0.85));
  add('flux-emoji/mce/kitchen-knife/attack/i2p', { asr: 0 });
  add('flux-emoji/mce/kitchen-knife/attack/ring-a-bell', { asr: 0.25 });
  mkdirSync(join(dir, 'grids'), { recursive: true });
  writePngSync(join(dir, 'grids', 'flux-emoji--kitchen-knife.png'), { width: 8, height: 4, channels: 3, data: new Uint8Array(8 * 4 * 3).fill(200) });
}
