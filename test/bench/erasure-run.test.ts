// mce bench end to end on a tiny FLUX bundle, in child processes: a run killed (SIGKILL) after its
// first unit and rerun finishes with the same results as three shards run as separate processes
// and merged, and as one run spread over three local jobs (numbers compared; times, memory and
// file paths aside).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { useBackend } from '../../src/engine/backend.js';
import { readRows, type BenchRow } from '../../src/bench/erasure/store.js';
import { writeTinyFluxBundle } from '../erase/baselines/fixture.js';
import { runCli } from '../cli/run.js';

const ENTRY = fileURLToPath(new URL('../cli/mce.ts', import.meta.url));
const ROOT = fileURLToPath(new URL('../..', import.meta.url));

/** Start `mce ...argv`, SIGKILL it once `file` has `lines` lines; resolves when it has exited. */
function killAfterRows(argv: string[], file: string, lines: number): Promise<void> {
  return new Promise((done) => {
    const p = spawn(process.execPath, ['--import', 'tsx', ENTRY, ...argv], { cwd: ROOT, stdio: 'ignore' });
    const timer = setInterval(() => {
      if (existsSync(file) && readFileSync(file, 'utf8').split('\n').filter(Boolean).length >= lines) p.kill('SIGKILL');
    }, 50);
    p.on('exit', () => {
      clearInterval(timer);
      done();
    });
  });
}

/** A row's results without what differs between runs of the same work (time, memory, where files went). */
function comparable(r: BenchRow): unknown {
  return JSON.parse(JSON.stringify({ ...r, seconds: 0, data: r.data }, (k, v) => (['peakRssMiB', 'seconds', 'trainSeconds', 'earlierSeconds', 'attackSeconds', 'file', 'bundle'].includes(k) ? undefined : v)));
}

test('mce bench: kill -9 and resume equals an uninterrupted sweep split in 3 shard processes and merged, and --jobs 3', async () => {
  await useBackend();
  const dir = mkdtempSync(join(tmpdir(), 'mce-bench-e2e-'));
  try {
    const base = join(dir, 'base');
    await writeTinyFluxBundle(base, ['an emoji of a kitchen knife', 'a kitchen knife', 'kitchen knife', 'knife', 'spoon', 'dagger', 'fork', 'cat']);
    const flags = ['--models', base, '--methods', 'none,uce,sld', '--cases', 'kitchen-knife', '--attacks', 'none', '--n', '2', '--jobs', '1'];
    const whole = join(dir, 'whole');
    await killAfterRows(['bench', ...flags, '--out', whole], join(whole, 'results.jsonl'), 2);
    const killedRows = readRows(whole).length;
    assert.ok(killedRows >= 2 && killedRows < 6, `killed after ${killedRows} of 6 rows`);
    const resumed = await runCli(['bench', ...flags, '--out', whole]);
    assert.equal(resumed.code, 0, resumed.err);
    assert.match(resumed.err, new RegExp(`6 units, ${killedRows} already done`));
    assert.match(readFileSync(join(whole, 'table.md'), 'utf8'), /\| uce \| /);

    const shards = await Promise.all([1, 2, 3].map((i) => runCli(['bench', ...flags, '--shard', `${i}/3`, '--out', join(dir, `shard-${i}`)])));
    shards.forEach((r) => assert.equal(r.code, 0, r.err));
    const merged = await runCli(['bench', 'merge', ...[1, 2, 3].map((i) => join(dir, `shard-${i}`)), '--out', join(dir, 'merged')]);
    assert.equal(merged.code, 0, merged.err);
    assert.match(merged.err, /6 rows from 3 folders .* complete/);
    const jobs = join(dir, 'jobs');
    const local = await runCli(['bench', ...flags.slice(0, -2), '--jobs', '3', '--out', jobs]);
    assert.equal(local.code, 0, local.err);
    assert.match(local.err, /\[job 3\/3\] mce bench: 2 units \(job 3\/3 of 6\)/);
    assert.ok([1, 2, 3].every((i) => existsSync(join(jobs, `results.job-${i}-of-3.jsonl`))));
    assert.match(readFileSync(join(jobs, 'table.md'), 'utf8'), /\| uce \| /);

    const key = (rows: BenchRow[]): unknown[] => rows.sort((a, b) => (a.unit < b.unit ? -1 : 1)).map(comparable);
    const a = key(readRows(whole));
    assert.equal(a.length, 6);
    assert.deepEqual(key(readRows(join(dir, 'merged'))), a);
    assert.deepEqual(key(readRows(jobs)), a);
    // Real numbers came back: UCE changed some parameters, SLD (a wrapper) none.
    const erase = (m: string): Record<string, unknown> => readRows(whole).find((r) => r.unit.endsWith(`/${m}/kitchen-knife/erase`))!.data;
    assert.ok((erase('uce')['changed'] as { params: number }).params > 0);
    assert.equal((erase('sld')['changed'] as { params: number }).params, 0);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('mce bench: mce and the opt-in mce-decay and mce-text train masks on a tiny bundle; mce-decay records its decay and binarisation, mce-text its hooks', async () => {
  await useBackend();
  const dir = mkdtempSync(join(tmpdir(), 'mce-bench-decay-'));
  try {
    const base = join(dir, 'base');
    await writeTinyFluxBundle(base, ['an emoji of a kitchen knife', 'a kitchen knife', 'kitchen knife', 'knife', 'spoon', 'dagger', 'fork', 'cat']);
    const out = join(dir, 'out');
    const r = await runCli(['bench', '--models', base, '--methods', 'mce,mce-decay,mce-text', '--cases', 'kitchen-knife', '--attacks', 'none', '--n', '2', '--mce-iters', '2', '--jobs', '1', '--out', out]);
    assert.equal(r.code, 0, r.err);
    const rows = readRows(out);
    assert.equal(rows.length, 6);
    assert.ok(rows.every((x) => x.status === 'ok'), JSON.stringify(rows.map((x) => [x.unit, x.status])));
    const settings = (m: string): Record<string, unknown> => {
      const manifest = JSON.parse(readFileSync(join(out, 'models', `${base.replaceAll('/', '--')}--${m}--kitchen-knife`, 'manifest.json'), 'utf8')) as { erasure: { settings: Record<string, unknown> } };
      return manifest.erasure.settings;
    };
    assert.deepEqual([settings('mce')['decayTo'], settings('mce')['weightDecay'], settings('mce')['binarize']], ['zero', 0.01, { kind: 'threshold', threshold: 0 }]);
    assert.deepEqual([settings('mce-decay')['decayTo'], settings('mce-decay')['weightDecay'], settings('mce-decay')['binarize']], ['init', 0.1, { kind: 'threshold', threshold: 2 }]);
    assert.equal(settings('mce')['hooks'], undefined);
    assert.deepEqual(settings('mce-text')['hooks'], ['*.txt_mlp', '*.txt_mod']);
    assert.match(readFileSync(join(out, 'table.md'), 'utf8'), /\| mce-decay \| /);
    assert.match(readFileSync(join(out, 'table.md'), 'utf8'), /\| mce-text \| /);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
