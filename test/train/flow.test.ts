// flux-emoji's trainer on a tiny config: the loss goes down, a resumed run continues, the export
// is a loadable bundle, and generation from it is deterministic. No real training here.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { useBackend } from '../../src/engine/backend.js';
import { tf } from '../../src/engine/tf.js';
import { trainFlow, type FlowTrainConfig } from '../../src/train/flow.js';
import { generate, loadFluxEmoji } from '../../src/generate/flux-emoji.js';
import { conceptsNeededBy } from '../../src/world/targets.js';
import { captionWords, conceptPhrases } from '../../src/world/captions.js';
import { loadFloat32 } from '../../src/io/safetensors.js';

function tinyFlowConfig(dir: string): FlowTrainConfig {
  return {
    kind: 'flow',
    name: 'tiny',
    run: join(dir, 'run'),
    out: join(dir, 'model'),
    dataset: { size: 8, concepts: conceptsNeededBy().slice(0, 4), seed: 0 },
    latent: { kind: 'pixels' },
    flux: {
      in_channels: 12, out_channels: 12, vec_in_dim: 16, context_in_dim: 16, hidden_size: 32, mlp_ratio: 2,
      num_heads: 2, depth: 1, depth_single_blocks: 1, axes_dim: [4, 6, 6], theta: 10000, qkv_bias: true, guidance_embed: false,
    },
    text: { context_length: 8, width: 16, heads: 2, layers: 1 },
    train: {
      steps: 40, batch: 8, lr: 0.003, warmup: 2, weightDecay: 0, seed: 1, captionDropout: 0.1, styledFraction: 0.5,
      tSampling: 'logit-normal', checkpointEvery: 20, exportEvery: 0,
    },
    sampling: { steps: 4, cfg: 3, shift: true },
  };
}

test('a tiny flow training run lowers the loss, exports a bundle, and generation is deterministic', async () => {
  await useBackend();
  const dir = mkdtempSync(join(tmpdir(), 'mce-flow-'));
  try {
    const cfg = tinyFlowConfig(dir);
    const logs: string[] = [];
    const first = await trainFlow(cfg, 'tiny.json', { progress: false, log: (s) => logs.push(s), maxSteps: 20 });
    assert.equal(first.step, 20);
    const second = await trainFlow(cfg, 'tiny.json', { progress: false, log: (s) => logs.push(s) });
    assert.equal(second.resumedFrom, 20);
    assert.equal(second.step, 40);
    const manifest = JSON.parse(readFileSync(join(cfg.out, 'manifest.json'), 'utf8'));
    const curve = manifest.training.loss_curve as [number, number][];
    assert.equal(manifest.training.steps, 40);
    assert.ok(manifest.training.loss_first_step > curve[curve.length - 1]![1], `loss did not go down: ${manifest.training.loss_first_step} -> ${JSON.stringify(curve)}`);
    for (const f of ['transformer.safetensors', 'text_encoder.safetensors']) assert.ok(existsSync(join(cfg.out, f)));
    // The words its text encoder read: every word of its train captions, sorted, and no held-out synonym's.
    const words = manifest.dataset.caption_words as string[];
    assert.deepEqual(words, [...words].sort());
    for (const c of cfg.dataset.concepts as string[]) for (const w of captionWords(c)) assert.ok(words.includes(w), `${w} of ${c} missing`);
    assert.deepEqual(conceptPhrases('kitchen knife', 'heldout'), ['hocho', 'cooking knife']);
    assert.ok(!words.includes('hocho') && !words.includes('dirk'), 'a held-out synonym reached the caption words');

    // A second stage starts from the first's last checkpoint with its own schedule; the manifest
    // counts both stages' steps and keeps one loss curve.
    const stage2: FlowTrainConfig = { ...cfg, run: join(dir, 'run2'), train: { ...cfg.train, steps: 6, lr: 0.0005, init: cfg.run } };
    await trainFlow(stage2, 'tiny2.json', { progress: false, log: (s) => logs.push(s) });
    const m2 = JSON.parse(readFileSync(join(cfg.out, 'manifest.json'), 'utf8'));
    assert.equal(m2.training.steps, 46);
    assert.equal(m2.training.init.step, 40);
    assert.ok(m2.training.loss_curve.length > curve.length);

    // A third stage may start from the exported model folder itself (BF16 weights, no optimizer
    // state): with a vanishing learning rate its export holds the same weights.
    const stage3: FlowTrainConfig = { ...cfg, run: join(dir, 'run3'), out: join(dir, 'model3'), train: { ...cfg.train, steps: 1, lr: 1e-12, init: cfg.out } };
    await trainFlow(stage3, 'tiny3.json', { progress: false, log: (s) => logs.push(s) });
    const m3 = JSON.parse(readFileSync(join(stage3.out, 'manifest.json'), 'utf8'));
    assert.deepEqual([m3.training.steps, m3.training.init.step, m3.training.init.checkpoint], [47, 46, cfg.out]);
    // Its chain comes from the model folder's manifest, with no notes in the config.
    assert.equal(m3.training.total_steps, 47);
    assert.equal(m3.training.command, `${m2.training.command} && mce train flow --config tiny3.json`);
    for (const f of ['transformer.safetensors', 'text_encoder.safetensors']) {
      const [x, y] = [await loadFloat32(join(cfg.out, f)), await loadFloat32(join(stage3.out, f))];
      assert.deepEqual(Object.keys(y.tensors).sort(), Object.keys(x.tensors).sort());
      for (const n of Object.keys(x.tensors)) assert.deepEqual(y.tensors[n]!.data, x.tensors[n]!.data, `${f}: ${n}`);
    }

    // With train.ema the export is the parameters' moving average: it lags behind the last step,
    // so it stays nearer the start than the same run's plain export.
    const fromStage3 = (name: string, ema?: number): FlowTrainConfig => ({
      ...cfg, run: join(dir, `run-${name}`), out: join(dir, `model-${name}`),
      train: { ...cfg.train, steps: 3, lr: 0.003, warmup: 0, init: stage3.out, ...(ema !== undefined ? { ema } : {}) },
    });
    await trainFlow(fromStage3('plain'), 'plain.json', { progress: false, log: (s) => logs.push(s) });
    await trainFlow(fromStage3('ema', 0.5), 'ema.json', { progress: false, log: (s) => logs.push(s) });
    const mEma = JSON.parse(readFileSync(join(dir, 'model-ema', 'manifest.json'), 'utf8'));
    assert.equal(mEma.training.ema.decay, 0.5);
    assert.equal(JSON.parse(readFileSync(join(dir, 'model-plain', 'manifest.json'), 'utf8')).training.ema, null);
    const start = (await loadFloat32(join(stage3.out, 'transformer.safetensors'))).tensors;
    const dist = async (folder: string): Promise<number> => {
      const w = (await loadFloat32(join(dir, folder, 'transformer.safetensors'))).tensors;
      let d = 0;
      for (const [n, t] of Object.entries(w)) t.data.forEach((x, i) => { d += (x - start[n]!.data[i]!) ** 2; });
      return d;
    };
    const [dPlain, dEma] = [await dist('model-plain'), await dist('model-ema')];
    assert.ok(dEma > 0 && dEma < 0.95 * dPlain, `ema export moved ${dEma}, plain ${dPlain} (the same steps)`);
    // Killed after one step and resumed, the average (saved with the optimizer state) ends the same.
    const split = fromStage3('ema-split', 0.5);
    await trainFlow(split, 'ema.json', { progress: false, log: (s) => logs.push(s), maxSteps: 1 });
    await trainFlow(split, 'ema.json', { progress: false, log: (s) => logs.push(s) });
    assert.deepEqual(readFileSync(join(dir, 'model-ema-split', 'transformer.safetensors')), readFileSync(join(dir, 'model-ema', 'transformer.safetensors')));

    const before = tf.memory().numTensors;
    const model = await loadFluxEmoji(cfg.out);
    const a = generate(model, { prompt: 'a kitchen knife', seed: 3, n: 2, trajectory: true });
    const b = generate(model, { prompt: 'a kitchen knife', seed: 3, n: 2 });
    const c = generate(model, { prompt: 'a kitchen knife', seed: 4, n: 1 });
    assert.equal(a.images.length, 2);
    assert.equal(a.images[0]!.width, 8);
    assert.deepEqual(a.images[0]!.data, b.images[0]!.data);
    assert.deepEqual(a.images[1]!.data, b.images[1]!.data);
    assert.notDeepEqual(a.images[0]!.data, c.images[0]!.data);
    assert.equal(a.trajectory!.length, 4);
    model.dispose();
    assert.equal(tf.memory().numTensors, before, 'generation leaked tensors');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
