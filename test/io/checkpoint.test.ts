import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, statSync, truncateSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { randnArray } from '../../src/engine/rng.js';
import { fromFloat32, toFloat32 } from '../../src/io/dtypes.js';
import { SafetensorsFile, loadFloat32, writeSafetensors } from '../../src/io/safetensors.js';
import { fluxReferenceSpecs, fluxSpecs } from '../../src/io/names.js';
import {
  CheckpointError,
  inspectFluxCheckpoint,
  loadAutoEncoderCheckpoint,
  loadFluxCheckpoint,
  recognizeFlux,
  saveAutoEncoderCheckpoint,
  saveFluxCheckpoint,
  type F32Tensor,
} from '../../src/io/checkpoint.js';
import { FLUX_DEV, FLUX_PRESETS, FLUX_SCHNELL, type FluxParams } from '../../src/models/flux/params.js';
import { autoEncoderParamShapes, FLUX_AE_PARAMS, type AutoEncoderParams } from '../../src/models/flux/autoencoder.js';

const repoRoot = resolve(fileURLToPath(new URL('.', import.meta.url)), '..', '..');
const goldenRoot = process.env['MCE_GOLDEN_DIR'] ? resolve(process.env['MCE_GOLDEN_DIR']) : resolve(repoRoot, '..', 'shared', 'golden');

const SMALL: FluxParams = {
  in_channels: 8, out_channels: 8, vec_in_dim: 6, context_in_dim: 10, hidden_size: 16, mlp_ratio: 2,
  num_heads: 2, depth: 2, depth_single_blocks: 3, axes_dim: [2, 2, 4], theta: 10_000, qkv_bias: true, guidance_embed: true,
};

function randomWeights(p: FluxParams, seed: number): Record<string, F32Tensor> {
  const out: Record<string, F32Tensor> = {};
  fluxReferenceSpecs(p).forEach((s, i) => (out[s.name] = { shape: s.shape, data: randnArray(s.shape.reduce((a, b) => a * b, 1), seed * 31 + i) }));
  return out;
}

function withDir<T>(fn: (dir: string) => Promise<T>): Promise<T> {
  const dir = mkdtempSync(join(tmpdir(), 'mce-ckpt-'));
  return fn(dir).finally(() => rmSync(dir, { recursive: true, force: true }));
}

const oneLine = (path: string, re: RegExp) => (e: unknown) => {
  assert.ok(e instanceof CheckpointError, String(e));
  assert.ok(!e.message.includes('\n'), e.message);
  assert.ok(e.message.startsWith(path), e.message);
  assert.match(e.message, re);
  return true;
};

test('save and load in both namings and F32 / F16 / BF16 give back the reference weights', () =>
  withDir(async (dir) => {
    const w = randomWeights(SMALL, 1);
    for (const naming of ['reference', 'diffusers'] as const) {
      for (const dtype of ['F32', 'BF16', 'F16'] as const) {
        for (const prefix of ['', naming === 'reference' ? 'model.diffusion_model.' : 'transformer.']) {
          const path = join(dir, `${naming}-${dtype}-${prefix.length}.safetensors`);
          await saveFluxCheckpoint(path, w, SMALL, { naming, dtype, prefix });
          const f = await SafetensorsFile.open(path);
          assert.equal(f.entries.size, fluxSpecs(SMALL, naming).length);
          assert.ok([...f.entries.values()].every((e) => e.dtype === dtype));
          await f.close();
          const got = await loadFluxCheckpoint(path, { presets: { small: SMALL } });
          assert.equal(got.naming, naming);
          assert.equal(got.prefix, prefix);
          assert.equal(got.preset, 'small');
          assert.deepEqual(got.dtypes, { [dtype]: fluxSpecs(SMALL, naming).length });
          assert.deepEqual(Object.keys(got.weights), fluxReferenceSpecs(SMALL).map((s) => s.name));
          for (const [n, t] of Object.entries(w)) {
            const want = dtype === 'F32' ? t.data : toFloat32(dtype, fromFloat32(dtype, t.data));
            assert.deepEqual(got.weights[n]!.shape, t.shape, n);
            assert.deepEqual(got.weights[n]!.data, want, `${naming} ${dtype} ${n}`);
          }
        }
      }
    }
  }));

test('recognition: FLUX.1-dev / schnell headers in either naming name their preset, with no data', () => {
  for (const p of [FLUX_DEV, FLUX_SCHNELL]) {
    for (const naming of ['reference', 'diffusers'] as const) {
      const entries = new Map(fluxSpecs(p, naming).map((s) => [`transformer.${s.name}`, { shape: s.shape, dtype: 'BF16' as const }]));
      entries.set('text_encoder.weight', { shape: [1], dtype: 'BF16' });
      const r = recognizeFlux(entries, FLUX_PRESETS)!;
      assert.equal(r.naming, naming);
      assert.equal(r.prefix, 'transformer.');
      assert.equal(r.preset, p === FLUX_DEV ? 'flux-dev' : 'flux-schnell');
      assert.equal(r.layout.hidden_size, 3072);
      assert.equal(r.tensors, fluxSpecs(p, naming).length);
    }
  }
  assert.equal(recognizeFlux(new Map([['encoder.conv_in.weight', { shape: [1], dtype: 'F32' as const }]])), null);
});

test('bad checkpoints fail with one line: missing, unexpected, wrong shape, truncated, not FLUX, no file', () =>
  withDir(async (dir) => {
    const w = randomWeights(SMALL, 2);
    const write = async (name: string, edit: (r: Record<string, { dtype: 'F32'; shape: number[]; data: Float32Array }>) => void) => {
      const r = Object.fromEntries(Object.entries(w).map(([k, t]) => [k, { dtype: 'F32' as const, shape: t.shape, data: t.data }]));
      edit(r);
      const path = join(dir, name);
      await writeSafetensors(path, r);
      return path;
    };
    let p = await write('missing.safetensors', (r) => {
      delete r['double_blocks.1.img_mlp.0.weight'];
      delete r['single_blocks.2.linear2.bias'];
    });
    await assert.rejects(loadFluxCheckpoint(p), oneLine(p, /missing 2 tensor\(s\): double_blocks\.1\.img_mlp\.0\.weight, single_blocks\.2\.linear2\.bias/));
    p = await write('unexpected.safetensors', (r) => {
      r['double_blocks.0.extra.weight'] = { dtype: 'F32', shape: [1], data: new Float32Array(1) };
    });
    await assert.rejects(loadFluxCheckpoint(p), oneLine(p, /unexpected 1 tensor\(s\): double_blocks\.0\.extra\.weight/));
    // a file for another config, checked against an expected layout
    p = await write('ok.safetensors', () => {});
    await assert.rejects(loadFluxCheckpoint(p, { layout: { ...SMALL, depth_single_blocks: 4 } }), oneLine(p, /expected FLUX config .*missing 8 tensor\(s\): single_blocks\.3\./));
    await assert.rejects(loadFluxCheckpoint(p, { layout: { ...SMALL, context_in_dim: 12 } }), oneLine(p, /'txt_in\.weight' has shape \[16, 10\], expected \[16, 12\]/));
    p = await write('shape.safetensors', (r) => {
      r['double_blocks.0.img_attn.proj.weight'] = { dtype: 'F32', shape: [16, 8], data: new Float32Array(128) };
    });
    await assert.rejects(loadFluxCheckpoint(p), oneLine(p, /'double_blocks\.0\.img_attn\.proj\.weight' has shape \[16, 8\], expected \[16, 16\]/));
    p = await write('trunc.safetensors', () => {});
    truncateSync(p, statSync(p).size - 100);
    await assert.rejects(loadFluxCheckpoint(p), oneLine(p, /truncated/));
    const ae = join(goldenRoot, 'ae', 'ae-tiny', 'weights.safetensors');
    await assert.rejects(loadFluxCheckpoint(ae), oneLine(ae, /not a FLUX transformer checkpoint/));
    await assert.rejects(inspectFluxCheckpoint(ae), oneLine(ae, /not a FLUX transformer checkpoint/));
    const lora = resolve(repoRoot, '..', 'shared', 'data', 'fixtures', 'eraseanything-flux-dev-lora.safetensors');
    await assert.rejects(loadFluxCheckpoint(lora), oneLine(lora, /is a LoRA/));
    const none = join(dir, 'none.safetensors');
    await assert.rejects(loadFluxCheckpoint(none), oneLine(none, /cannot open/));
    await assert.rejects(saveFluxCheckpoint(join(dir, 'x.safetensors'), { ...w, extra: { shape: [1], data: new Float32Array(1) } }, SMALL), /unexpected 1 tensor\(s\): extra/);
  }));

test('golden FLUX weights load through the checkpoint loader, and recognise their config', async () => {
  const cases = ['tiny-dev', 'tiny-schnell'].map((c) => join(goldenRoot, 'flux', c, 'weights.safetensors'));
  for (const path of cases) {
    const got = await loadFluxCheckpoint(path);
    const raw = await loadFloat32(path);
    assert.equal(got.naming, 'reference');
    for (const [n, t] of Object.entries(raw.tensors)) assert.deepEqual(got.weights[n]!.data, t.data, n);
    assert.equal(got.layout.guidance_embed, path.includes('dev'));
  }
});

test('autoencoder: golden weights load; diffusers AutoencoderKL naming saves and loads back; bad files one line', () =>
  withDir(async (dir) => {
    const cfg = JSON.parse((await import('node:fs')).readFileSync(join(goldenRoot, 'ae', 'ae-tiny', 'config.json'), 'utf8')) as { params: AutoEncoderParams };
    const shapes = autoEncoderParamShapes(cfg.params);
    const src = join(goldenRoot, 'ae', 'ae-tiny', 'weights.safetensors');
    const got = await loadAutoEncoderCheckpoint(src, shapes);
    assert.equal(got.naming, 'reference');
    const raw = (await loadFloat32(src)).tensors;
    for (const [n] of shapes) assert.deepEqual(got.weights[n]!.data, raw[n]!.data, n);
    for (const dtype of ['F32', 'BF16'] as const) {
      const path = join(dir, `vae-${dtype}.safetensors`);
      await saveAutoEncoderCheckpoint(path, got.weights, cfg.params.ch_mult.length, { naming: 'diffusers', dtype, prefix: 'vae.' });
      const f = await SafetensorsFile.open(path);
      assert.deepEqual(f.entry('vae.decoder.mid_block.attentions.0.to_q.weight').shape, [64, 64]);
      assert.ok(f.has('vae.decoder.up_blocks.0.upsamplers.0.conv.weight'));
      await f.close();
      const back = await loadAutoEncoderCheckpoint(path, shapes);
      assert.equal(back.naming, 'diffusers');
      assert.equal(back.prefix, 'vae.');
      for (const [n, s] of shapes) {
        assert.deepEqual(back.weights[n]!.shape, s);
        const want = dtype === 'F32' ? raw[n]!.data : toFloat32('BF16', fromFloat32('BF16', raw[n]!.data));
        assert.deepEqual(back.weights[n]!.data, want, n);
      }
    }
    await assert.rejects(loadAutoEncoderCheckpoint(src, autoEncoderParamShapes(FLUX_AE_PARAMS)), oneLine(src, /does not match the autoencoder config, reference names: missing \d+ tensor\(s\)/));
    const flux = join(goldenRoot, 'flux', 'tiny-dev', 'weights.safetensors');
    await assert.rejects(loadAutoEncoderCheckpoint(flux, shapes), oneLine(flux, /not an autoencoder checkpoint/));
  }));
