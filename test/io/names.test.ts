import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  aeDiffusersToReference,
  aeReferenceToDiffusers,
  convertAeNames,
  convertFluxNames,
  convertFluxShapes,
  detectAeNaming,
  detectFluxNaming,
  diffusersToReferenceLinks,
  fluxNameMap,
  fluxPrefix,
  fluxReferenceSpecs,
  fluxSpecs,
  inferFluxLayout,
  type FluxLayout,
  type HostArray,
} from '../../src/io/names.js';
import { FLUX_DEV, FLUX_SCHNELL, fluxParamSpecs, type FluxParams } from '../../src/models/flux/params.js';
import { FLUX_AE_PARAMS, autoEncoderParamShapes } from '../../src/models/flux/autoencoder.js';
import { randnArray } from '../../src/engine/rng.js';

const repoRoot = resolve(fileURLToPath(new URL('.', import.meta.url)), '..', '..');
const goldenRoot = process.env['MCE_GOLDEN_DIR'] ? resolve(process.env['MCE_GOLDEN_DIR']) : resolve(repoRoot, '..', 'shared', 'golden');

const SMALL: FluxParams = {
  in_channels: 8,
  out_channels: 8,
  vec_in_dim: 6,
  context_in_dim: 10,
  hidden_size: 16,
  mlp_ratio: 2,
  num_heads: 2,
  depth: 2,
  depth_single_blocks: 3,
  axes_dim: [2, 2, 4],
  theta: 10_000,
  qkv_bias: true,
  guidance_embed: true,
};

function goldenFluxParams(): FluxParams[] {
  const dir = join(goldenRoot, 'flux');
  if (!existsSync(dir)) return [];
  return readdirSync(dir)
    .filter((d) => existsSync(join(dir, d, 'config.json')))
    .map((d) => (JSON.parse(readFileSync(join(dir, d, 'config.json'), 'utf8')) as { params: FluxParams }).params);
}

test('io reference specs equal models/flux fluxParamSpecs (presets, golden configs, no-bias, no-double-block)', () => {
  const configs: FluxParams[] = [
    FLUX_DEV, FLUX_SCHNELL, SMALL, { ...SMALL, qkv_bias: false, guidance_embed: false }, { ...SMALL, depth: 0 },
    ...goldenFluxParams(),
  ];
  assert.ok(configs.length >= 6);
  for (const p of configs) assert.deepEqual(fluxReferenceSpecs(p), fluxParamSpecs(p));
});

test('FLUX.1-dev: 780 reference tensors, diffusers names and shapes as in FluxTransformer2DModel', () => {
  const ref = fluxSpecs(FLUX_DEV, 'reference');
  const diff = new Map(fluxSpecs(FLUX_DEV, 'diffusers').map((s) => [s.name, s.shape]));
  assert.equal(ref.length, 780);
  // 16 embedder + 19 x 32 double + 38 x 14 single + 4 final
  assert.equal(diff.size, 16 + 19 * 32 + 38 * 14 + 4);
  const expect: [string, number[]][] = [
    ['x_embedder.weight', [3072, 64]],
    ['context_embedder.weight', [3072, 4096]],
    ['time_text_embed.timestep_embedder.linear_1.weight', [3072, 256]],
    ['time_text_embed.timestep_embedder.linear_2.bias', [3072]],
    ['time_text_embed.text_embedder.linear_1.weight', [3072, 768]],
    ['time_text_embed.guidance_embedder.linear_1.weight', [3072, 256]],
    ['transformer_blocks.0.norm1.linear.weight', [18432, 3072]],
    ['transformer_blocks.0.norm1_context.linear.bias', [18432]],
    ['transformer_blocks.0.attn.to_q.weight', [3072, 3072]],
    ['transformer_blocks.0.attn.to_v.bias', [3072]],
    ['transformer_blocks.0.attn.add_k_proj.weight', [3072, 3072]],
    ['transformer_blocks.0.attn.add_v_proj.bias', [3072]],
    ['transformer_blocks.0.attn.norm_q.weight', [128]],
    ['transformer_blocks.0.attn.norm_added_k.weight', [128]],
    ['transformer_blocks.0.attn.to_out.0.weight', [3072, 3072]],
    ['transformer_blocks.0.attn.to_add_out.bias', [3072]],
    ['transformer_blocks.18.ff.net.0.proj.weight', [12288, 3072]],
    ['transformer_blocks.18.ff.net.2.weight', [3072, 12288]],
    ['transformer_blocks.18.ff_context.net.0.proj.bias', [12288]],
    ['transformer_blocks.18.ff_context.net.2.weight', [3072, 12288]],
    ['single_transformer_blocks.0.norm.linear.weight', [9216, 3072]],
    ['single_transformer_blocks.0.attn.to_q.weight', [3072, 3072]],
    ['single_transformer_blocks.0.attn.norm_k.weight', [128]],
    ['single_transformer_blocks.37.proj_mlp.weight', [12288, 3072]],
    ['single_transformer_blocks.37.proj_out.weight', [3072, 15360]],
    ['proj_out.weight', [64, 3072]],
    ['norm_out.linear.weight', [6144, 3072]],
    ['norm_out.linear.bias', [6144]],
  ];
  for (const [n, s] of expect) assert.deepEqual(diff.get(n), s, n);
  assert.equal(diff.has('time_text_embed.guidance_embedder.linear_1.weight'), true);
  assert.equal(new Set(fluxSpecs(FLUX_SCHNELL, 'diffusers').map((s) => s.name)).has('time_text_embed.guidance_embedder.linear_1.weight'), false);
  // Each diffusers tensor is covered exactly once by its links.
  const m = fluxNameMap(FLUX_DEV);
  for (const [name, shape] of diff) {
    const rows = (m.byDiffusers.get(name) ?? []).map((k) => k.diffRows).sort((a, b) => a[0] - b[0]);
    let at = 0;
    for (const [a, b] of rows) {
      assert.equal(a, at, name);
      at = b;
    }
    assert.equal(at, shape[0], name);
  }
});

test('links: qkv, txt qkv, linear1 and the final-layer shift/scale swap land on the right rows', () => {
  const H = 3072;
  const at = (n: string) => diffusersToReferenceLinks(n, FLUX_DEV)!.map((k) => [k.reference, k.refRows, k.diffRows]);
  assert.deepEqual(at('transformer_blocks.3.attn.to_k.weight'), [['double_blocks.3.img_attn.qkv.weight', [H, 2 * H], [0, H]]]);
  assert.deepEqual(at('transformer_blocks.3.attn.add_v_proj.bias'), [['double_blocks.3.txt_attn.qkv.bias', [2 * H, 3 * H], [0, H]]]);
  assert.deepEqual(at('transformer_blocks.3.attn.add_q_proj.weight'), [['double_blocks.3.txt_attn.qkv.weight', [0, H], [0, H]]]);
  assert.deepEqual(at('single_transformer_blocks.5.attn.to_v.weight'), [['single_blocks.5.linear1.weight', [2 * H, 3 * H], [0, H]]]);
  assert.deepEqual(at('single_transformer_blocks.5.proj_mlp.bias'), [['single_blocks.5.linear1.bias', [3 * H, 7 * H], [0, 4 * H]]]);
  assert.deepEqual(at('single_transformer_blocks.5.proj_out.weight'), [['single_blocks.5.linear2.weight', [0, H], [0, H]]]);
  assert.deepEqual(at('transformer_blocks.0.attn.norm_added_q.weight'), [['double_blocks.0.txt_attn.norm.query_norm.scale', [0, 128], [0, 128]]]);
  assert.deepEqual(
    at('norm_out.linear.weight'),
    [
      ['final_layer.adaLN_modulation.1.weight', [0, H], [H, 2 * H]],
      ['final_layer.adaLN_modulation.1.weight', [H, 2 * H], [0, H]],
    ],
  );
  assert.equal(diffusersToReferenceLinks('transformer_blocks.19.attn.to_q.weight', FLUX_DEV), null);
});

function randomRecord(l: FluxLayout, seed: number, u16 = false): Record<string, HostArray> {
  const out: Record<string, HostArray> = {};
  fluxReferenceSpecs(l).forEach((s, i) => {
    const n = s.shape.reduce((a, b) => a * b, 1);
    const f = randnArray(n, seed * 1000 + i);
    out[s.name] = { shape: s.shape, data: u16 ? Uint16Array.from(f, (v) => (Math.abs(v) * 10000) & 0xffff) : f };
  });
  return out;
}

test('reference -> diffusers -> reference is the identity (F32 and raw 16-bit data); pieces hold the right rows', () => {
  for (const u16 of [false, true]) {
    const ref = randomRecord(SMALL, 1, u16);
    const d = convertFluxNames(ref, 'reference', 'diffusers', SMALL);
    assert.deepEqual(d.unknown, []);
    assert.deepEqual(d.incomplete, []);
    assert.deepEqual(
      Object.fromEntries(Object.entries(d.tensors).map(([k, t]) => [k, t.shape])),
      Object.fromEntries(fluxSpecs(SMALL, 'diffusers').map((s) => [s.name, s.shape])),
    );
    const back = convertFluxNames(d.tensors, 'diffusers', 'reference', SMALL);
    assert.deepEqual(back.unknown, []);
    assert.deepEqual(Object.keys(back.tensors).sort(), Object.keys(ref).sort());
    for (const [k, t] of Object.entries(ref)) {
      assert.deepEqual(back.tensors[k]!.shape, t.shape, k);
      assert.deepEqual(back.tensors[k]!.data, t.data, k);
    }
  }
  const H = SMALL.hidden_size;
  const M = H * SMALL.mlp_ratio;
  const ref = randomRecord(SMALL, 2);
  const d = convertFluxNames(ref, 'reference', 'diffusers', SMALL).tensors;
  const rows = (t: HostArray, a: number, b: number) => Array.from(t.data.subarray(a * t.shape.slice(1).reduce((x, y) => x * y, 1), b * t.shape.slice(1).reduce((x, y) => x * y, 1)));
  const all = (t: HostArray) => Array.from(t.data);
  // final layer: diffusers (scale, shift) = reference (shift, scale) swapped
  const ada = ref['final_layer.adaLN_modulation.1.weight']!;
  const no = d['norm_out.linear.weight']!;
  assert.deepEqual(rows(no, 0, H), rows(ada, H, 2 * H));
  assert.deepEqual(rows(no, H, 2 * H), rows(ada, 0, H));
  assert.deepEqual(rows(d['norm_out.linear.bias']!, 0, H), rows(ref['final_layer.adaLN_modulation.1.bias']!, H, 2 * H));
  // qkv split
  const qkv = ref['double_blocks.1.txt_attn.qkv.weight']!;
  assert.deepEqual(all(d['transformer_blocks.1.attn.add_k_proj.weight']!), rows(qkv, H, 2 * H));
  assert.deepEqual(all(d['transformer_blocks.1.attn.to_v.bias']!), rows(ref['double_blocks.1.img_attn.qkv.bias']!, 2 * H, 3 * H));
  // linear1 split
  const l1 = ref['single_blocks.2.linear1.weight']!;
  assert.deepEqual(all(d['single_transformer_blocks.2.attn.to_q.weight']!), rows(l1, 0, H));
  assert.deepEqual(all(d['single_transformer_blocks.2.proj_mlp.weight']!), rows(l1, 3 * H, 3 * H + M));
  assert.deepEqual(all(d['single_transformer_blocks.2.proj_out.weight']!), all(ref['single_blocks.2.linear2.weight']!));
  assert.deepEqual(all(d['transformer_blocks.0.attn.norm_added_k.weight']!), all(ref['double_blocks.0.txt_attn.norm.key_norm.scale']!));
});

test('unknown and incomplete names are reported; shapes-only conversion', () => {
  const ref = randomRecord(SMALL, 3);
  const d = convertFluxNames(ref, 'reference', 'diffusers', SMALL).tensors;
  delete d['transformer_blocks.0.attn.to_k.weight'];
  d['transformer_blocks.0.attn.something.weight'] = { shape: [1], data: new Float32Array(1) };
  const back = convertFluxNames(d, 'diffusers', 'reference', SMALL);
  assert.deepEqual(back.unknown, ['transformer_blocks.0.attn.something.weight']);
  assert.deepEqual(back.incomplete, ['double_blocks.0.img_attn.qkv.weight']);
  const shapes = convertFluxShapes(Object.fromEntries(fluxSpecs(FLUX_DEV, 'reference').map((s) => [s.name, s.shape])), 'reference', 'diffusers', FLUX_DEV);
  assert.deepEqual(shapes.tensors, Object.fromEntries(fluxSpecs(FLUX_DEV, 'diffusers').map((s) => [s.name, s.shape])));
});

test('naming detection, prefixes and layout inference in both namings', () => {
  for (const p of [FLUX_DEV, FLUX_SCHNELL, SMALL, { ...SMALL, qkv_bias: false, guidance_embed: false }]) {
    for (const naming of ['reference', 'diffusers'] as const) {
      const specs = fluxSpecs(p, naming);
      const names = specs.map((s) => s.name);
      assert.equal(detectFluxNaming(names), naming);
      const layout = inferFluxLayout(Object.fromEntries(specs.map((s) => [s.name, s.shape])), naming);
      const want: FluxLayout = {
        in_channels: p.in_channels, out_channels: p.out_channels, vec_in_dim: p.vec_in_dim, context_in_dim: p.context_in_dim,
        hidden_size: p.hidden_size, mlp_ratio: p.mlp_ratio, num_heads: p.num_heads, depth: p.depth,
        depth_single_blocks: p.depth_single_blocks, qkv_bias: p.qkv_bias, guidance_embed: p.guidance_embed,
      };
      assert.deepEqual(layout, want);
    }
  }
  assert.equal(detectFluxNaming(['encoder.conv_in.weight']), null);
  assert.equal(fluxPrefix(['model.diffusion_model.img_in.weight', 'model.diffusion_model.txt_in.weight', 'vae.x']), 'model.diffusion_model.');
  assert.equal(fluxPrefix(['transformer.x_embedder.weight']), 'transformer.');
  assert.equal(fluxPrefix(['img_in.weight']), '');
  assert.throws(() => inferFluxLayout({ 'double_blocks.0.img_mod.lin.weight': [6, 1] }, 'reference'), /no tensor 'img_in.weight'/);
});

test('autoencoder names: every FLUX AE tensor maps to AutoencoderKL and back; known diffusers names', () => {
  const levels = FLUX_AE_PARAMS.ch_mult.length;
  const shapes = autoEncoderParamShapes(FLUX_AE_PARAMS);
  const rec = Object.fromEntries(shapes.map(([n, s]) => [n, { shape: s }]));
  const d = convertAeNames(rec, 'reference', 'diffusers', levels);
  assert.deepEqual(d.unknown, []);
  assert.equal(Object.keys(d.tensors).length, 244);
  const want: [string, string, number[]][] = [
    ['decoder.up.3.upsample.conv.weight', 'decoder.up_blocks.0.upsamplers.0.conv.weight', [512, 512, 3, 3]],
    ['decoder.up.1.block.0.nin_shortcut.weight', 'decoder.up_blocks.2.resnets.0.conv_shortcut.weight', [256, 512, 1, 1]],
    ['decoder.up.0.block.2.norm2.bias', 'decoder.up_blocks.3.resnets.2.norm2.bias', [128]],
    ['encoder.down.2.downsample.conv.bias', 'encoder.down_blocks.2.downsamplers.0.conv.bias', [512]],
    ['encoder.mid.attn_1.proj_out.weight', 'encoder.mid_block.attentions.0.to_out.0.weight', [512, 512]],
    ['decoder.mid.attn_1.norm.weight', 'decoder.mid_block.attentions.0.group_norm.weight', [512]],
    ['decoder.mid.block_2.conv1.weight', 'decoder.mid_block.resnets.1.conv1.weight', [512, 512, 3, 3]],
    ['encoder.norm_out.weight', 'encoder.conv_norm_out.weight', [512]],
    ['decoder.conv_out.weight', 'decoder.conv_out.weight', [3, 128, 3, 3]],
  ];
  for (const [r, dn, s] of want) {
    assert.equal(aeReferenceToDiffusers(r, levels), dn);
    assert.deepEqual(d.tensors[dn]?.shape, s, dn);
  }
  assert.equal(aeDiffusersToReference('encoder.mid_block.attentions.0.proj_attn.weight', levels), 'encoder.mid.attn_1.proj_out.weight');
  const back = convertAeNames(d.tensors, 'diffusers', 'reference', levels);
  assert.deepEqual(back.tensors, rec);
  assert.equal(detectAeNaming(Object.keys(rec)), 'reference');
  assert.equal(detectAeNaming(Object.keys(d.tensors)), 'diffusers');
});
