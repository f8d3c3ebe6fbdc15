// sd-emoji's trainer on a tiny config (pixels, 8x8): the loss goes down, a run killed between
// checkpoints and resumed ends with the same weights as an uninterrupted one, a second stage
// continues the record, the export is a loadable bundle, and DDIM generation from it is deterministic. No real training here.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { useBackend } from '../../src/engine/backend.js';
import { tf } from '../../src/engine/tf.js';
import { trainDiffusion, type DiffusionTrainConfig } from '../../src/train/diffusion.js';
import { generateSd, loadSdEmoji, SD_EMOJI_FORMAT } from '../../src/generate/sd-emoji.js';
import { loadTextToImage } from '../../src/generate/index.js';
import { tinyDiffusionConfig } from './tiny-diffusion.js';

const bytes = (dir: string, f: string): Buffer => readFileSync(join(dir, f));

test('tiny diffusion training: loss goes down; killed between checkpoints and resumed, it ends with the same weights; the bundle generates deterministically', async () => {
  await useBackend();
  const dir = mkdtempSync(join(tmpdir(), 'mce-diffusion-'));
  try {
    const quiet = { progress: false, log: () => {} };
    // Uninterrupted reference run.
    const ref = tinyDiffusionConfig(dir, 'ref');
    const r = await trainDiffusion(ref, 'tiny.json', quiet);
    assert.equal(r.step, 24);
    const manifest = JSON.parse(readFileSync(join(ref.out, 'manifest.json'), 'utf8'));
    assert.equal(manifest.format, SD_EMOJI_FORMAT);
    assert.equal(manifest.training.steps, 24);
    assert.equal(manifest.training.command, 'mce train diffusion --config tiny.json');
    assert.equal(manifest.schedule.prediction_type, 'epsilon');
    assert.equal(manifest.files['unet.safetensors'].bytes, bytes(ref.out, 'unet.safetensors').byteLength);
    const curve = manifest.training.loss_curve as [number, number][];
    assert.ok(manifest.training.loss_first_step > 0.8 && manifest.training.loss_first_step < 1.2, `first loss ${manifest.training.loss_first_step} (zero-init output: about 1)`);
    assert.ok(curve[curve.length - 1]![1] < 0.75 * manifest.training.loss_first_step, `loss did not go down: ${manifest.training.loss_first_step} -> ${JSON.stringify(curve)}`);

    // The same run, "killed" at step 7 (after the step-5 checkpoint: steps 6 and 7 are lost), then resumed.
    const killed = { ...tinyDiffusionConfig(dir, 'kill') };
    killed.train = { ...killed.train, exportEvery: 7 };
    await assert.rejects(
      trainDiffusion(killed, 'tiny.json', { progress: false, log: (s) => { if (s.includes('exported step 7')) throw new Error('killed'); } }),
      /killed/,
    );
    // An export before the planned end says how to stop there.
    const early = JSON.parse(readFileSync(join(killed.out, 'manifest.json'), 'utf8'));
    assert.equal(early.training.command, 'mce train diffusion --config tiny.json --max-steps 7');
    assert.equal(early.training.total_steps, 7);
    const resumed = await trainDiffusion(killed, 'tiny.json', quiet);
    assert.equal(resumed.resumedFrom, 5);
    assert.equal(resumed.step, 24);
    assert.deepEqual(bytes(killed.out, 'unet.safetensors'), bytes(ref.out, 'unet.safetensors'));
    assert.deepEqual(bytes(killed.out, 'text_encoder.safetensors'), bytes(ref.out, 'text_encoder.safetensors'));

    // A second stage starts from the reference's last checkpoint with its own schedule; the manifest
    // counts both stages' steps and keeps one loss curve.
    const stage2: DiffusionTrainConfig = { ...ref, run: join(dir, 'run-stage2'), out: join(dir, 'model-stage2'), train: { ...ref.train, steps: 6, lr: 0.0005, init: ref.run } };
    await trainDiffusion(stage2, 'tiny2.json', quiet);
    const m2 = JSON.parse(readFileSync(join(stage2.out, 'manifest.json'), 'utf8'));
    assert.equal(m2.training.steps, 30);
    assert.equal(m2.training.total_steps, 30);
    assert.equal(m2.training.command, 'mce train diffusion --config tiny2.json');
    assert.equal(m2.training.init.step, 24);
    assert.deepEqual(m2.training.loss_curve.slice(0, curve.length), curve);
    assert.ok(m2.training.loss_curve.length > curve.length);

    // Generation: same seed, same pixels; another seed, other pixels; a trajectory per DDIM step; no leaks.
    const before = tf.memory().numTensors;
    const model = await loadSdEmoji(ref.out);
    const a = generateSd(model, { prompt: 'a kitchen knife', seed: 3, n: 2, trajectory: true });
    const b = generateSd(model, { prompt: 'a kitchen knife', seed: 3, n: 2 });
    const c = generateSd(model, { prompt: 'a kitchen knife', seed: 4, n: 1 });
    assert.equal(a.images.length, 2);
    assert.equal(a.images[0]!.width, 8);
    assert.deepEqual(a.timesteps, [801, 601, 401, 201, 1]);
    assert.deepEqual(a.images[0]!.data, b.images[0]!.data);
    assert.deepEqual(a.images[1]!.data, b.images[1]!.data);
    assert.notDeepEqual(a.images[0]!.data, a.images[1]!.data);
    assert.deepEqual(c.images[0]!.data, generateSd(model, { prompt: 'a kitchen knife', seed: 4, n: 1 }).images[0]!.data);
    assert.notDeepEqual(a.images[0]!.data, c.images[0]!.data);
    // Image k of a call does not depend on n: the first image of n = 2 is the n = 1 image.
    assert.deepEqual(generateSd(model, { prompt: 'a kitchen knife', seed: 3, n: 1 }).images[0]!.data, a.images[0]!.data);
    assert.equal(a.trajectory!.length, 5);
    assert.equal(a.trajectory![0]!.length, 2);
    model.dispose();
    assert.equal(tf.memory().numTensors, before, 'generation leaked tensors');

    // The family-independent loader picks the diffusion branch from the manifest's format.
    const t2i = await loadTextToImage(ref.out);
    assert.equal(t2i.family, 'diffusion');
    assert.deepEqual(t2i.defaults, { steps: 5, cfg: 3 });
    assert.deepEqual(t2i.generate({ prompt: 'a kitchen knife', seed: 3, n: 1 }).images[0]!.data, a.images[0]!.data);
    t2i.dispose();
    assert.ok(!existsSync(join(ref.out, 'ae.safetensors')), 'a pixel-space model ships no autoencoder');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
