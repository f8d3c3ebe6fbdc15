import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtemp, readFile, readdir, rm } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { tf } from '../../src/engine/tf.js';
import { useBackend } from '../../src/engine/backend.js';
import { train, epochBatch, epochPermutation } from '../../src/train/loop.js';
import { TrainError, loadCheckpoint } from '../../src/train/state.js';
import { disposeParams, problem } from './fixtures/problem.js';

const here = fileURLToPath(new URL('.', import.meta.url));
const tmp = (): Promise<string> => mkdtemp(join(tmpdir(), 'mce-loop-'));

interface Child {
  code: number | null;
  signal: NodeJS.Signals | null;
  out: string;
}

/** Run the fixture trainer in a child process; `killAfter` SIGKILLs it once it prints 'step N'. */
function runChild(args: string[], killAfter?: number): Promise<Child> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', join(here, 'fixtures', 'run.ts'), ...args], {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, MCE_BACKEND: 'wasm' },
    });
    let out = '';
    let err = '';
    child.stdout.on('data', (d: Buffer) => {
      out += d.toString();
      if (killAfter !== undefined && out.includes(`step ${killAfter}\n`)) child.kill('SIGKILL');
    });
    child.stderr.on('data', (d: Buffer) => { err += d.toString(); });
    child.on('error', reject);
    child.on('close', (code, signal) => {
      if (code !== 0 && signal === null) reject(new Error(`child failed (${code}): ${err}`));
      else resolve({ code, signal, out });
    });
  });
}

test('a run killed with SIGKILL and resumed ends with the same bytes as an uninterrupted run', async () => {
  const dirA = await tmp();
  const dirB = await tmp();
  try {
    const outA = join(dirA, 'final.safetensors');
    const outB = join(dirB, 'final.safetensors');
    const ckA = join(dirA, 'ckpt');
    const ckB = join(dirB, 'ckpt');
    // The uninterrupted run and the run to be killed go side by side.
    const [a, killed] = await Promise.all([
      runChild([ckA, '20', '5', outA]),
      runChild([ckB, '20', '5', outB, '60'], 12),
    ]);
    assert.match(a.out, /done resumedFrom=null step=20/);
    assert.equal(killed.signal, 'SIGKILL');
    assert.ok(!killed.out.includes('step 14'), 'killed before the step-15 checkpoint');
    assert.ok(!existsSync(outB));
    assert.deepEqual(await readdir(ckB), ['ckpt-00000010'], 'the step-10 checkpoint survives the kill');

    const resumed = await runChild([ckB, '20', '5', outB]);
    assert.match(resumed.out, /^step 11\n/);
    assert.match(resumed.out, /done resumedFrom=10 step=20/);
    assert.ok((await readFile(outA)).equals(await readFile(outB)), 'final parameters are byte-identical');
    const stA = await readFile(join(ckA, 'ckpt-00000020', 'state.safetensors'));
    const stB = await readFile(join(ckB, 'ckpt-00000020', 'state.safetensors'));
    assert.ok(stA.equals(stB), 'final parameters and optimizer state are byte-identical');

  } finally {
    await rm(dirA, { recursive: true, force: true });
    await rm(dirB, { recursive: true, force: true });
  }
});

test('an in-process resume at step k equals an uninterrupted run (no checkpoint files shared)', async () => {
  await useBackend('wasm');
  const dir = await tmp();
  const dir2 = await tmp();
  try {
    const full = problem();
    await train({ ...full, steps: 8, dir, progress: false });
    const part = problem();
    await train({ ...part, steps: 5, dir: dir2, progress: false });
    disposeParams(part.params);
    part.optimizer.dispose();
    const rest = problem();
    const r = await train({ ...rest, steps: 8, dir: dir2, progress: false });
    assert.equal(r.resumedFrom, 5);
    for (const n of Object.keys(full.params)) {
      assert.deepEqual(rest.params[n]!.dataSync(), full.params[n]!.dataSync(), n);
    }
    // Resuming a finished run takes no step and saves nothing new; it still reports and restores.
    const done = problem();
    const lines: string[] = [];
    let steps = 0;
    const r2 = await train({ ...done, steps: 8, dir: dir2, progress: { write: (x) => lines.push(x) }, onStep: () => { steps++; } });
    assert.equal(steps, 0);
    assert.equal(r2.resumedFrom, 8);
    assert.equal(r2.step, 8);
    assert.match(lines.join(''), /train: resumed from step 8\/8 .*\ntrain: already complete/);
    for (const n of Object.keys(full.params)) assert.deepEqual(done.params[n]!.dataSync(), full.params[n]!.dataSync(), n);
    for (const p of [full, rest, done]) {
      disposeParams(p.params);
      p.optimizer.dispose();
    }
  } finally {
    await rm(dir, { recursive: true, force: true });
    await rm(dir2, { recursive: true, force: true });
  }
});

test('a NaN loss stops the run with a clear message and the last good checkpoint stays intact', async () => {
  await useBackend('wasm');
  const dir = await tmp();
  const ref = await tmp();
  try {
    const p = problem({ nanAt: 6 });
    await assert.rejects(train({ ...p, steps: 20, checkpointEvery: 5, dir, progress: false }), (e: Error) => {
      assert.ok(e instanceof TrainError);
      assert.ok(!e.message.includes('\n'));
      assert.match(e.message, /^training stopped at step 7\/20: the loss is NaN in micro-batch 0 \(mse NaN, l2 \S+, jitter \S+\); parameters were not updated; last good checkpoint: .*ckpt-00000005 \(step 5\)$/);
      return true;
    });
    const ck = (await loadCheckpoint(dir))!;
    assert.equal(ck.step, 5);
    // It equals a clean 5-step run.
    const q = problem();
    await train({ ...q, steps: 5, dir: ref, progress: false });
    const good = (await loadCheckpoint(ref))!;
    assert.deepEqual(ck.params, good.params);
    assert.deepEqual(ck.optimizer, good.optimizer);
    for (const x of [p, q]) {
      disposeParams(x.params);
      x.optimizer.dispose();
    }
  } finally {
    await rm(dir, { recursive: true, force: true });
    await rm(ref, { recursive: true, force: true });
  }
});

test('Inf gradients (from a gradFn) stop the run before the update', async () => {
  await useBackend('wasm');
  const p = problem();
  const before = Array.from(p.params['l2.bias']!.dataSync());
  await assert.rejects(train({
    ...p,
    lossFn: undefined,
    gradFn: () => {
      return { loss: 1, terms: { a: 2 }, grads: { 'l2.bias': tf.fill([1], Infinity), nope: tf.zeros([3]) } };
    },
    steps: 3,
    progress: false,
  }), /^TrainError: training stopped at step 1\/3: the gradients are Inf \(loss 1, a 2\); parameters were not updated; no checkpoint was saved$/);
  assert.deepEqual(Array.from(p.params['l2.bias']!.dataSync()), before);
  disposeParams(p.params);
  p.optimizer.dispose();
});

test('terms may repeat the loss tensor; a gradFn may return it as a term too', async () => {
  await useBackend('wasm');
  const p = problem();
  const start = tf.memory().numTensors;
  const seen: Record<string, number>[] = [];
  await train({
    ...p,
    lossFn: (params, batch, ctx) => {
      const { loss } = p.lossFn!(params, batch, ctx) as { loss: tf.Scalar };
      return { loss, terms: { total: loss, again: loss } };
    },
    steps: 2,
    progress: false,
    onStep: (i) => { seen.push(i.terms); },
  });
  assert.ok(seen.every((t) => t['total'] === t['again'] && t['total']! > 0));
  await train({
    ...p,
    lossFn: undefined,
    gradFn: (params) => {
      const loss = tf.sum(tf.square(params['l2.bias']!)) as tf.Scalar;
      return { loss, terms: { same: loss }, grads: { 'l2.bias': tf.onesLike(params['l2.bias']!) } };
    },
    steps: 2,
    progress: false,
  });
  assert.equal(tf.memory().numTensors, start);
  disposeParams(p.params);
  p.optimizer.dispose();
});

test('a changed config is refused', async () => {
  await useBackend('wasm');
  const dir = await tmp();
  try {
    const a = problem();
    await train({ ...a, steps: 2, dir, progress: false });
    const b = problem({ lr: 2e-2 });
    await assert.rejects(train({ ...b, steps: 4, dir, progress: false }), (e: Error) => {
      assert.ok(e instanceof TrainError);
      assert.match(e.message, /refusing to resume: the checkpoint was made with a different config .*changed: config\.lr \(0\.01 -> 0\.02\), optimizer\.groups/);
      return true;
    });
    const c = problem({ seed: 8 });
    await assert.rejects(train({ ...c, steps: 4, dir, progress: false }), /changed: seed \(7 -> 8\)/);
    // resume: false starts over instead.
    const r = await train({ ...c, steps: 1, dir, progress: false, resume: false });
    assert.equal(r.resumedFrom, null);
    assert.equal((await loadCheckpoint(dir))!.step, 1);
    for (const x of [a, b, c]) {
      disposeParams(x.params);
      x.optimizer.dispose();
    }
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('tf.memory().numTensors stays flat across steps (accumulation, clipping, terms, eval, checkpoints)', async () => {
  for (const backend of ['wasm', 'cpu'] as const) {
    await useBackend(backend);
    const dir = await tmp();
    try {
      const p = problem();
      const start = tf.memory().numTensors;
      const counts: number[] = [];
      const evals: number[] = [];
      const lines: string[] = [];
      const r = await train({
        ...p,
        steps: 12,
        checkpointEvery: 4,
        evalEvery: 5,
        dir,
        progress: { write: (s) => lines.push(s), interval: 0 },
        onStep: () => { counts.push(tf.memory().numTensors); },
        onEval: ({ step }) => { evals.push(step); },
      });
      assert.equal(counts.length, 12);
      assert.ok(counts.every((c) => c === start), `${backend}: numTensors per step ${counts.join(',')} (start ${start})`);
      assert.equal(tf.memory().numTensors, start);
      assert.deepEqual(evals, [5, 10, 12]);
      assert.equal(r.step, 12);
      assert.ok(r.loss > 0 && Number.isFinite(r.loss));
      assert.equal(lines.length, 12);
      assert.match(lines[11]!, /^train 12\/12 100% \| loss \S+ mse \S+ l2 \S+ jitter \S+ \| \S+ (it\/s|s\/it) \| 0:\d\d elapsed \| ETA 0:00\n$/);
      disposeParams(p.params);
      p.optimizer.dispose();
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  }
});

test('training reduces the loss; epochs mode and the extra state survive a resume', async () => {
  await useBackend('wasm');
  const dir = await tmp();
  try {
    const history: number[] = [];
    const state = { save: () => [...history], load: (v: unknown) => { history.splice(0, history.length, ...(v as number[])); } };
    const a = problem();
    const seen: string[] = [];
    const opts = {
      ...a,
      epochs: 2,
      stepsPerEpoch: 3,
      dir,
      progress: false as const,
      state,
      onStep: (i: { step: number; loss: number; epoch: number }) => { history.push(i.loss); seen.push(`${i.step}:${i.epoch}`); },
    };
    const r1 = await train({ ...opts, epochs: 1 });
    assert.equal(r1.step, 3);
    assert.equal(r1.epoch, 1);
    history.length = 0;
    const r2 = await train(opts);
    assert.equal(r2.resumedFrom, 3);
    assert.equal(history.length, 6, 'the history saved with the checkpoint was restored');
    assert.deepEqual(seen, ['1:0', '2:0', '3:1', '4:1', '5:1', '6:2']);
    disposeParams(a.params);
    a.optimizer.dispose();

    const b = problem({ lr: 0.05 });
    const losses: number[] = [];
    await train({ ...b, steps: 60, progress: false, onStep: (i) => { losses.push(i.loss); } });
    const mean = (xs: number[]): number => xs.reduce((s, x) => s + x, 0) / xs.length;
    assert.ok(mean(losses.slice(-10)) < 0.5 * mean(losses.slice(0, 10)), `loss fell: ${mean(losses.slice(0, 10))} -> ${mean(losses.slice(-10))}`);
    disposeParams(b.params);
    b.optimizer.dispose();
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('epoch data order is a seeded permutation per epoch', () => {
  const p0 = Array.from(epochPermutation(10, 3, 0));
  assert.deepEqual([...p0].sort((x, y) => x - y), [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
  assert.notDeepEqual(p0, Array.from(epochPermutation(10, 3, 1)));
  assert.deepEqual(p0, Array.from(epochPermutation(10, 3, 0)));
  const seen: number[] = [];
  for (let i = 0; i < 3; i++) {
    const b = epochBatch(10, 3, 3, i);
    assert.equal(b.epoch, 0);
    seen.push(...b.indices);
  }
  assert.deepEqual(seen, p0.slice(0, 9));
  assert.equal(epochBatch(10, 3, 3, 3).epoch, 1);
  assert.throws(() => epochBatch(2, 3, 0, 0), /larger than the dataset/);
});
