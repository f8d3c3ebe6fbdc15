// A real, small erase run for the lab tests: `mce erase` on the shipped flux-emoji with 2
// iterations of 2 steps. The learning rates are raised so that 2 iterations already prune many
// units: the erased model must draw something different from the original for the comparison
// tests to mean anything.
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { runCli } from '../cli/run.js';

/** `node --import tsx test/cli/mce.ts`: the CLI from the sources, for erase jobs the server starts. */
export const CLI_FROM_SOURCES = [process.execPath, '--import', 'tsx', fileURLToPath(new URL('../cli/mce.ts', import.meta.url))];

export const FIXTURE_RUN = 'knife';

/** A fresh runs folder holding one erase run, FIXTURE_RUN. */
export async function makeRunsFolder(): Promise<string> {
  const runs = mkdtempSync(join(tmpdir(), 'mce-serve-'));
  const r = await runCli([
    'erase', '--concept', 'kitchen knife', '--iters', '2', '--steps', '2', '--prompts', '1', '--noises', '1',
    '--eval', '0', '--no-grid', '--val-every', '2', '--lr-ffn', '50', '--lr-mod', '50', '--lr-single', '50',
    '--out', join(runs, FIXTURE_RUN),
  ]);
  if (r.code !== 0) throw new Error(`fixture erase failed: ${r.err}`);
  return runs;
}
