// kill -9, then rerun: `mce erase` (a tiny FLUX bundle) and `mce train` (a tiny sd-emoji config) are
// SIGKILLed as real processes once their first checkpoint is on disk, rerun with the same command,
// and must end with the same bytes as an uninterrupted run side by side: masks, sparsity, grids,
// validation grids, summary and report (less the wall-clock fields) for erase; the exported
// weights for train.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { runCli } from '../cli/run.js';
import { writeTinyFluxBundle } from './baselines/fixture.js';
import { useBackend } from '../../src/engine/backend.js';
import { conceptsNeededBy } from '../../src/world/targets.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const ENTRY = fileURLToPath(new URL('../cli/mce.ts', import.meta.url));
const dir = mkdtempSync(join(tmpdir(), 'mce-kill-'));
after(() => rmSync(dir, { recursive: true, force: true }));

/** Run `mce ...argv` and SIGKILL it as soon as `marker` exists; resolves with how it ended. */
function runAndKill(argv: string[], marker: string): Promise<{ signal: NodeJS.Signals | null; code: number | null; err: string }> {
  return new Promise((done, fail) => {
    const child = spawn(process.execPath, ['--import', 'tsx', ENTRY, ...argv], { cwd: ROOT, stdio: ['ignore', 'ignore', 'pipe'] });
    let err = '';
    child.stderr.on('data', (d: Buffer) => { err += d.toString(); });
    const poll = setInterval(() => {
      if (existsSync(marker)) {
        clearInterval(poll);
        child.kill('SIGKILL');
      }
    }, 20);
    child.on('error', fail);
    child.on('exit', (code, signal) => {
      clearInterval(poll);
      done({ code, signal, err });
    });
  });
}

const bytes = (d: string, f: string): Buffer => readFileSync(join(d, f));

/** summary.json less what measures the machine rather than the result. */
function stableSummary(d: string): unknown {
  const s = JSON.parse(readFileSync(join(d, 'summary.json'), 'utf8')) as Record<string, unknown>;
  for (const k of ['seconds', 'peakRssMiB', 'resumedFrom']) delete s[k];
  return s;
}

const stableReport = (d: string): string => readFileSync(join(d, 'report.html'), 'utf8').replace(/ Training time [\d.e+-]+ s\./, '');

test('mce erase killed with SIGKILL after its first checkpoint, then rerun, ends with the bytes of an uninterrupted run', async () => {
  await useBackend();
  const base = join(dir, 'base');
  await writeTinyFluxBundle(base, ['an emoji of a kitchen knife', 'kitchen knife', 'spoon', 'dagger', 'in noto style']);
  const argv = (out: string): string[] => ['erase', '--model', base, '--concept', 'kitchen knife', '--iters', '14', '--steps', '2', '--prompts', '2',
    '--noises', '1', '--eval', '0', '--val-every', '5', '--seed', '3', '--out', out];
  const a = join(dir, 'erase-a');
  const b = join(dir, 'erase-b');
  const [ra, killed] = await Promise.all([runCli(argv(a)), runAndKill(argv(b), join(b, 'checkpoints', 'ckpt-00000010'))]);
  assert.equal(ra.code, 0, ra.err);
  assert.equal(killed.signal, 'SIGKILL', `the run ended before it could be killed: ${killed.err}`);
  assert.ok(!existsSync(join(b, 'masks.safetensors')) && !existsSync(join(b, '.done')), 'killed before the end');
  assert.deepEqual(readdirSync(join(b, 'checkpoints')).filter((f) => f.startsWith('ckpt-')), ['ckpt-00000010']);
  const rb = await runCli(argv(b));
  assert.equal(rb.code, 0, rb.err);
  assert.match(rb.err, /resumed from step 10\/14/);
  const files = readdirSync(a).filter((f) => !['checkpoints', 'summary.json', 'report.html'].includes(f)).sort();
  assert.deepEqual(files, ['.done', 'grid.png', 'masks.safetensors', 'sparsity.json', 'sparsity.txt', 'val-00005.png', 'val-00010.png', 'val-00014.png']);
  assert.deepEqual(readdirSync(b).filter((f) => !['checkpoints', 'summary.json', 'report.html'].includes(f)).sort(), files);
  for (const f of files) assert.ok(bytes(a, f).equals(bytes(b, f)), `${f} differs after kill and resume`);
  assert.deepEqual(stableSummary(b), stableSummary(a));
  assert.equal(stableReport(b), stableReport(a));
  const summaryB = JSON.parse(readFileSync(join(b, 'summary.json'), 'utf8')) as { resumedFrom: number | null; seconds: { earlierProcesses: number } };
  assert.equal(summaryB.resumedFrom, 10);
  // The killed process's 10 steps are counted, not lost: a resumed run reports the time they took.
  assert.ok(summaryB.seconds.earlierProcesses > 0, `earlier processes' training time ${summaryB.seconds.earlierProcesses}`);
  const summaryA = JSON.parse(readFileSync(join(a, 'summary.json'), 'utf8')) as { seconds: { earlierProcesses: number } };
  assert.equal(summaryA.seconds.earlierProcesses, 0);
});

test('mce train killed with SIGKILL after its first checkpoint, then rerun, exports the same weights as an uninterrupted run', async () => {
  const config = (name: string): string => {
    const cfg = {
      kind: 'diffusion', name: 'tiny-sd', run: join(dir, `run-${name}`), out: join(dir, `model-${name}`),
      dataset: { size: 8, concepts: conceptsNeededBy().slice(0, 4), seed: 0 },
      latent: { kind: 'pixels' },
      unet: {
        sample_size: 8, in_channels: 3, out_channels: 3, block_out_channels: [8, 16], layers_per_block: 1,
        down_block_types: ['CrossAttnDownBlock2D', 'DownBlock2D'], up_block_types: ['UpBlock2D', 'CrossAttnUpBlock2D'],
        mid_block_type: 'UNetMidBlock2DCrossAttn', cross_attention_dim: 16, num_attention_heads: [1, 2], transformer_layers_per_block: 1,
        norm_num_groups: 4, norm_eps: 1e-5, use_linear_projection: true, flip_sin_to_cos: true, freq_shift: 0,
      },
      text: { context_length: 8, width: 16, heads: 2, layers: 1 },
      train: { steps: 6, batch: 2, lr: 0.003, warmup: 2, weightDecay: 0, seed: 1, captionDropout: 0.1, styledFraction: 0.5, checkpointEvery: 3, exportEvery: 0 },
      sampling: { steps: 3, cfg: 3 },
    };
    const path = join(dir, `${name}.json`);
    writeFileSync(path, JSON.stringify(cfg));
    return path;
  };
  const [ra, killed] = await Promise.all([
    runCli(['train', 'diffusion', '--config', config('a')]),
    runAndKill(['train', 'diffusion', '--config', config('b')], join(dir, 'run-b', 'ckpt-00000003')),
  ]);
  assert.equal(ra.code, 0, ra.err);
  assert.equal(killed.signal, 'SIGKILL', `the run ended before it could be killed: ${killed.err}`);
  assert.ok(!existsSync(join(dir, 'model-b', 'unet.safetensors')), 'killed before the export');
  const rb = await runCli(['train', 'diffusion', '--config', join(dir, 'b.json')]);
  assert.equal(rb.code, 0, rb.err);
  assert.match(rb.err, /resumed from step 3\/6/);
  for (const f of ['unet.safetensors', 'text_encoder.safetensors']) {
    assert.ok(bytes(join(dir, 'model-a'), f).equals(bytes(join(dir, 'model-b'), f)), `${f} differs after kill and resume`);
  }
});
