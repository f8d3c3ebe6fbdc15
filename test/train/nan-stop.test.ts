// NaN or Inf in training stops `mce train` with one clear line and exit 1, and the checkpoint left
// on disk is the last good one: loadable, finite, from the step before the failure. Two ways to
// blow up a tiny sd-emoji config: a weight decay that makes the weights grow 1000x per step (the
// loss turns NaN after a few good steps), and a learning rate so large that the very first update
// overflows the weights while the loss and gradients are still finite (caught before any save).
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runCli } from '../cli/run.js';
import { tinyDiffusionConfig } from './tiny-diffusion.js';
import { loadCheckpoint } from '../../src/train/state.js';
import { useBackend } from '../../src/engine/backend.js';

const dir = mkdtempSync(join(tmpdir(), 'mce-nan-stop-'));
after(() => rmSync(dir, { recursive: true, force: true }));

function tinyConfig(name: string, train: { lr: number; weightDecay: number }): string {
  const cfg = tinyDiffusionConfig(dir, name, { train: { steps: 12, batch: 4, warmup: 0, checkpointEvery: 1, ...train }, sampling: { steps: 3, cfg: 3 } });
  const path = join(dir, `${name}.json`);
  writeFileSync(path, JSON.stringify(cfg, null, 1));
  return path;
}

const STOP = /^mce: training stopped at step (\d+)\/12: (.*); (?:last good checkpoint: (\S+) \(step (\d+)\)|no checkpoint was saved)\n$/;

test('a loss that turns NaN stops the run in one line (exit 1), keeping the last good checkpoint, which loads and resumes', async () => {
  const config = tinyConfig('decay', { lr: 1, weightDecay: 1000 });
  const r = await runCli(['train', 'diffusion', '--config', config]);
  assert.equal(r.code, 1, r.err);
  const lines = r.err.split('\n').filter((l) => l.startsWith('mce:'));
  assert.equal(lines.length, 1, r.err);
  const m = STOP.exec(lines[0]! + '\n');
  assert.ok(m, lines[0]);
  const [, stopStep, why, ckPath, ckStep] = m;
  assert.match(why!, /the loss is (NaN|Inf)|the update made parameter '.*' NaN or Inf/);
  assert.ok(Number(stopStep) >= 2, `stopped at step ${stopStep}: the test needs a good checkpoint first`);
  assert.equal(Number(ckStep), Number(stopStep) - 1, 'the checkpoint is the step before the failure');
  const run = join(dir, 'run-decay');
  assert.deepEqual(readdirSync(run), [`ckpt-${String(ckStep).padStart(8, '0')}`], 'only the good checkpoint is on disk');
  assert.equal(ckPath, join(run, readdirSync(run)[0]!));
  assert.ok(!existsSync(join(dir, 'model-decay')), 'no model was exported');
  // Loadable, and every saved value is finite (the reader refuses NaN/Inf).
  await useBackend();
  const ck = await loadCheckpoint(run);
  assert.ok(ck);
  assert.equal(ck.step, Number(ckStep));
  assert.ok(Object.keys(ck.params).length > 0);
  for (const [n, t] of Object.entries(ck.params)) for (const x of t.data) assert.ok(Number.isFinite(x), n);
  // Rerunning resumes from it and stops at the same step with the same reason.
  const again = await runCli(['train', 'diffusion', '--config', config]);
  assert.equal(again.code, 1, again.err);
  assert.match(again.err, new RegExp(`resumed from step ${ckStep}/12`));
  assert.ok(again.err.includes(`training stopped at step ${stopStep}/12: ${why}`), again.err);
});

test('an update that overflows the weights (finite loss and gradients) stops before anything is saved', async () => {
  const r = await runCli(['train', 'diffusion', '--config', tinyConfig('lr', { lr: 3e38, weightDecay: 0 })]);
  assert.equal(r.code, 1, r.err);
  const line = r.err.split('\n').filter((l) => l.startsWith('mce:'));
  assert.equal(line.length, 1, r.err);
  assert.match(line[0]!, /^mce: training stopped at step 1\/12: the update made parameter '[\w.]+' NaN or Inf \(loss \S+, gradient norm \S+; learning rate too high\?\); nothing from this step was saved; no checkpoint was saved$/);
  assert.deepEqual(existsSync(join(dir, 'run-lr')) ? readdirSync(join(dir, 'run-lr')) : [], [], 'no checkpoint holds the broken weights');
  assert.ok(!existsSync(join(dir, 'model-lr')));
});
