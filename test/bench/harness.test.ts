// Smoke test of the benchmark harness at tiny sizes: every workload runs in our engine and, when
// PyTorch is present, in torch_bench.py on the same inputs, and the two agree (loss, gradient norms).
// No timing assertions: timings on a shared 2-core machine are noise at this size.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runBench, writeResults } from '../../src/bench/harness.js';
import { formatTable } from '../../src/bench/report.js';
import { probeTorch } from '../../src/bench/torch.js';
import { workloads } from '../../src/bench/workloads/index.js';
import { main } from '../../src/cli/main.js';
import { tf } from '../../src/engine/tf.js';
import { useBackend } from '../../src/engine/backend.js';

const quiet = (): void => {};

test('workload names are stable and unique', () => {
  const names = workloads.map((w) => w.name);
  for (const n of ['sgemm-1024', 'block-fwd-bwd', 'euler8-ckpt']) assert.ok(names.includes(n), n);
  assert.equal(new Set(names).size, names.length);
});

test('inputs are deterministic', () => {
  for (const w of workloads) {
    const a = w.prepare('tiny').inputs;
    const b = w.prepare('tiny').inputs;
    assert.deepEqual(a.map((x) => x.name), b.map((x) => x.name));
    a.forEach((x, i) => assert.deepEqual(x.data, b[i]!.data, `${w.name}/${x.name}`));
  }
});

test('tiny run: every workload, same results as PyTorch when present, JSON written atomically', async () => {
  const torch = await probeTorch();
  await useBackend();
  const tensorsBefore = tf.memory().numTensors;
  const run = await runBench({ size: 'tiny', smoke: true, reps: 2, log: quiet });
  assert.equal(tf.memory().numTensors, tensorsBefore, 'the harness frees every tensor');
  assert.deepEqual(run.records.map((r) => r.name), workloads.map((w) => w.name));
  for (const r of run.records) {
    // Workloads without a PyTorch twin (a whole CLI process) have no FLOPs, inputs or torch columns.
    const twin = workloads.find((w) => w.name === r.name)!.torch !== false;
    assert.ok(r.ours_ms > 0 && Number.isFinite(r.gflops) && (r.gflops > 0 || !twin), r.name);
    assert.ok(r.peak_mb >= 0 && (r.inputs_mb > 0 || !twin), r.name);
    assert.equal(r.backend, run.backend);
    assert.equal(r.reps, 2);
    assert.ok(!r.notes.some((n) => n.includes('leaked')), `${r.name}: ${r.notes.join('; ')}`);
    for (const v of Object.values(r.check.ours)) assert.ok(Number.isFinite(v), r.name);
    if (torch.ok && twin) {
      assert.ok(r.torch_ms !== null && r.torch_ms > 0, r.name);
      assert.equal(r.ratio, r.ours_ms / r.torch_ms!);
      assert.ok(r.torch_peak_mb !== null, r.name);
      assert.equal(r.check.ok, true, `${r.name}: ours ${JSON.stringify(r.check.ours)} torch ${JSON.stringify(r.check.torch)}`);
    } else {
      assert.equal(r.torch_ms, null);
      assert.equal(r.ratio, null);
    }
  }
  const euler = run.records.find((r) => r.name === 'euler8-ckpt')!;
  assert.equal(euler.target?.met, true, 'checkpointed memory is flat in N');
  // The whole-process generate run made a real 32x32 image (not a blank one).
  const gen = run.records.find((r) => r.name === 'generate-cli')!;
  assert.equal(gen.check.ours['width'], 32);
  assert.ok(gen.check.ours['mean_pixel']! > 20 && gen.check.ours['mean_pixel']! < 250, `mean pixel ${gen.check.ours['mean_pixel']}`);

  const dir = mkdtempSync(join(tmpdir(), 'mce-bench-test-'));
  try {
    const out = join(dir, 'sub', 'results.json');
    writeResults(out, run.records);
    const back = JSON.parse(readFileSync(out, 'utf8')) as Record<string, unknown>[];
    assert.equal(back.length, run.records.length);
    for (const r of back) for (const k of ['name', 'ours_ms', 'torch_ms', 'ratio', 'gflops', 'peak_mb', 'backend']) assert.ok(k in r, k);
    assert.deepEqual(readdirSync(join(dir, 'sub')), ['results.json'], 'no temporary file left');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  const table = formatTable(run);
  for (const w of workloads) assert.ok(table.includes(w.name));
});

test('--no-torch on the wasm backend: torch columns null, table says PyTorch absent', async () => {
  const run = await runBench({ size: 'tiny', reps: 1, torch: false, backend: 'wasm', log: quiet });
  assert.equal(run.backend, 'wasm');
  assert.equal(run.records.length, workloads.length);
  for (const r of run.records) {
    assert.equal(r.backend, 'wasm');
    assert.equal(r.torch_ms, null);
    assert.equal(r.ratio, null);
    assert.ok(r.ours_ms > 0);
  }
  assert.match(formatTable(run), /PyTorch absent/);
  const only = await runBench({ size: 'tiny', reps: 1, torch: false, only: ['euler8-ckpt'], log: quiet });
  assert.deepEqual(only.records.map((r) => r.name), ['euler8-ckpt']);
});

test('mce bench rejects bad flags with a usage error', async () => {
  const err = process.stderr.write;
  process.stderr.write = (() => true) as typeof process.stderr.write;
  try {
    assert.equal(await main(['bench', 'engine', '--only', 'no-such-workload']), 2);
    assert.equal(await main(['bench', 'engine', '--reps', '0']), 2);
    assert.equal(await main(['bench', 'engine', '--backend', 'gpu']), 2);
  } finally {
    process.stderr.write = err;
  }
  assert.ok(existsSync(join(import.meta.dirname, '..', '..', 'bench', 'torch_bench.py')));
});
