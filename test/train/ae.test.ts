// The autoencoder trainer on a tiny config: the loss goes down, a killed run resumes, and a
// decoder-only stage (train.init + freeze: "encoder") keeps the encoder, and so the latent scale
// and shift a generator was trained on, bit for bit; a flow model on the latent ships the AE.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { useBackend } from '../../src/engine/backend.js';
import { trainAe, type AeTrainConfig } from '../../src/train/ae.js';
import { trainFlow, type FlowTrainConfig } from '../../src/train/flow.js';
import { sha256 } from '../../src/world/util.js';
import { loadFloat32 } from '../../src/io/safetensors.js';
import { conceptsNeededBy } from '../../src/world/targets.js';

function tinyAeConfig(dir: string): AeTrainConfig {
  return {
    kind: 'ae',
    run: join(dir, 'run'),
    out: join(dir, 'out', 'ae.safetensors'),
    dataset: { size: 8, concepts: conceptsNeededBy().slice(0, 4), seed: 0 },
    ae: { resolution: 8, in_channels: 3, ch: 32, out_ch: 3, ch_mult: [1, 1], num_res_blocks: 1, z_channels: 4, scale_factor: 1, shift_factor: 0 },
    train: { steps: 12, batch: 4, lr: 0.002, warmup: 2, weightDecay: 0, klWeight: 0.0001, l1Weight: 0.5, seed: 1, checkpointEvery: 6 },
  };
}

test('the autoencoder trains, resumes, and a decoder-only stage keeps the encoder bit for bit', async () => {
  await useBackend();
  const dir = mkdtempSync(join(tmpdir(), 'mce-ae-'));
  try {
    const cfg = tinyAeConfig(dir);
    const quiet = { progress: false, log: () => {} };
    assert.equal((await trainAe(cfg, 'tiny.json', { ...quiet, maxSteps: 6 })).step, 6);
    const done = await trainAe(cfg, 'tiny.json', quiet);
    assert.deepEqual([done.resumedFrom, done.step], [6, 12]);
    const info1 = JSON.parse(readFileSync(join(dir, 'out', 'ae.json'), 'utf8'));
    const curve = info1.loss_curve as [number, number][];
    assert.ok(curve[curve.length - 1]![1] < curve[0]![1], `reconstruction MSE did not go down: ${JSON.stringify(curve)}`);
    assert.equal(info1.init, null);
    assert.ok(info1.params.scale_factor > 0 && info1.params.scale_factor !== 1);

    const stage2: AeTrainConfig = {
      ...cfg,
      run: join(dir, 'run2'),
      out: join(dir, 'out2', 'ae.safetensors'),
      train: { ...cfg.train, steps: 4, lr: 0.01, init: cfg.out, freeze: 'encoder' },
    };
    await trainAe(stage2, 'tiny2.json', quiet);
    const [a, b] = [await loadFloat32(cfg.out), await loadFloat32(stage2.out)];
    assert.deepEqual(Object.keys(b.tensors).sort(), Object.keys(a.tensors).sort());
    let decoderChanged = 0;
    for (const n of Object.keys(a.tensors)) {
      if (n.startsWith('encoder.')) assert.deepEqual(b.tensors[n]!.data, a.tensors[n]!.data, n);
      else if (a.tensors[n]!.data.some((v, i) => v !== b.tensors[n]!.data[i])) decoderChanged++;
    }
    assert.ok(decoderChanged > 10, `only ${decoderChanged} decoder tensors changed`);
    const info2 = JSON.parse(readFileSync(join(dir, 'out2', 'ae.json'), 'utf8'));
    assert.deepEqual([info2.params.scale_factor, info2.params.shift_factor], [info1.params.scale_factor, info1.params.shift_factor]);
    assert.equal(info2.frozen, 'encoder');
    assert.equal(info2.init.path, cfg.out);

    // A flow model on this latent ships the autoencoder it decodes with, and its training record.
    const flow: FlowTrainConfig = {
      kind: 'flow', name: 'tiny-ae', run: join(dir, 'flow-run'), out: join(dir, 'flow'),
      dataset: { size: 8, concepts: cfg.dataset.concepts, seed: 0 },
      latent: { kind: 'ae', ae: stage2.out },
      flux: {
        in_channels: 16, out_channels: 16, vec_in_dim: 16, context_in_dim: 16, hidden_size: 32, mlp_ratio: 2,
        num_heads: 2, depth: 1, depth_single_blocks: 1, axes_dim: [4, 6, 6], theta: 10000, qkv_bias: true, guidance_embed: false,
      },
      text: { context_length: 8, width: 16, heads: 2, layers: 1 },
      train: { steps: 2, batch: 4, lr: 0.001, warmup: 1, weightDecay: 0, seed: 1, captionDropout: 0.1, styledFraction: 0.5, tSampling: 'logit-normal', checkpointEvery: 2, exportEvery: 0 },
      sampling: { steps: 2, cfg: 2, shift: true },
    };
    await trainFlow(flow, 'flow.json', quiet);
    const m = JSON.parse(readFileSync(join(flow.out, 'manifest.json'), 'utf8'));
    assert.deepEqual(readFileSync(join(flow.out, 'ae.safetensors')), readFileSync(stage2.out));
    assert.equal(m.files['ae.safetensors'].sha256, sha256(readFileSync(stage2.out)));
    assert.equal(m.latent.autoencoder.training.frozen, 'encoder');

    // A frozen encoder needs something to freeze; an init must have the configured architecture.
    await assert.rejects(trainAe({ ...stage2, train: { ...stage2.train, init: undefined } }, 'bad.json', quiet), /^Error: bad\.json: train\.freeze: freezing the encoder needs train\.init/);
    await assert.rejects(trainAe({ ...stage2, ae: { ...stage2.ae, z_channels: 8 } }, 'bad.json', quiet), /^Error: bad\.json: train\.init: .* has another architecture/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
