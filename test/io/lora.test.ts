import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { tf } from '../../src/engine/tf.js';
import { useBackend } from '../../src/engine/backend.js';
import { randnArray } from '../../src/engine/rng.js';
import { SafetensorsFile, writeSafetensors } from '../../src/io/safetensors.js';
import { convertFluxNames, fluxReferenceSpecs, fluxSpecs, type HostArray } from '../../src/io/names.js';
import { LoraError, loadFluxLora, mergeLoraHost, mergeLoraTensors, parseLoraNames, planFluxLora } from '../../src/io/lora.js';
import { FLUX_DEV, type FluxParams } from '../../src/models/flux/params.js';

const repoRoot = resolve(fileURLToPath(new URL('.', import.meta.url)), '..', '..');
const FIXTURE = resolve(repoRoot, '..', 'shared', 'data', 'fixtures', 'eraseanything-flux-dev-lora.safetensors');

const SMALL: FluxParams = {
  in_channels: 8, out_channels: 8, vec_in_dim: 6, context_in_dim: 10, hidden_size: 16, mlp_ratio: 2,
  num_heads: 2, depth: 2, depth_single_blocks: 3, axes_dim: [2, 2, 4], theta: 10_000, qkv_bias: true, guidance_embed: true,
};

test('the EraseAnything FLUX.1-dev LoRA: all 76 tensors map onto the right FLUX.1-dev weights and rows (shapes only)', async () => {
  await useBackend('cpu');
  const before = tf.memory().numTensors;
  const f = await SafetensorsFile.open(FIXTURE);
  const shapes = new Map([...f.entries].map(([n, e]) => [n, e.shape]));
  await f.close();
  assert.equal(shapes.size, 76);
  assert.ok([...f.entries.values()].every((e) => e.dtype === 'BF16'));
  const plan = planFluxLora(shapes, FLUX_DEV);
  assert.equal(plan.length, 38);
  const covered = new Set(plan.flatMap((t) => [t.names.A, t.names.B]));
  assert.equal(covered.size, 76);
  for (const n of shapes.keys()) assert.ok(covered.has(n), `${n} is not mapped`);
  const H = FLUX_DEV.hidden_size;
  const refShapes = new Map(fluxReferenceSpecs(FLUX_DEV).map((s) => [s.name, s.shape]));
  for (const t of plan) {
    const m = t.module.match(/^transformer_blocks\.(\d+)\.attn\.add_(q|k)_proj$/);
    assert.ok(m, t.module);
    const i = Number(m[1]);
    const k = m[2] === 'q' ? 0 : 1;
    assert.equal(t.naming, 'diffusers');
    assert.equal(t.rank, 8);
    assert.equal(t.inFeatures, 3072);
    assert.equal(t.outFeatures, 3072);
    assert.equal(t.alpha, null);
    assert.equal(t.scale, 1);
    assert.deepEqual(t.pieces, [{ reference: `double_blocks.${i}.txt_attn.qkv.weight`, refRows: [k * H, (k + 1) * H], loraRows: [0, H] }]);
    assert.deepEqual(refShapes.get(t.pieces[0]!.reference), [3 * H, 3072]);
    assert.equal(t.names.A, `transformer.${t.module}.lora_A.weight`);
    assert.equal(t.names.B, `transformer.${t.module}.lora_B.weight`);
  }
  // every double block, q and k of the text stream
  assert.deepEqual(new Set(plan.map((t) => t.pieces[0]!.reference)).size, 19);
  assert.equal(tf.memory().numTensors, before);
});

test('the fixture reads as F32 from BF16 (values are the bf16 bit patterns widened)', async () => {
  const lora = await loadFluxLora(FIXTURE, FLUX_DEV);
  assert.equal(lora.plan.length, 38);
  assert.equal(Object.keys(lora.tensors).length, 76);
  const f = await SafetensorsFile.open(FIXTURE);
  const name = 'transformer.transformer_blocks.7.attn.add_k_proj.lora_B.weight';
  const raw = (await f.read(name)) as Uint16Array;
  await f.close();
  const got = lora.tensors[name]!.data;
  assert.equal(got.length, 3072 * 8);
  const u32 = new Uint32Array(1);
  const f32 = new Float32Array(u32.buffer);
  for (let i = 0; i < raw.length; i += 97) {
    u32[0] = raw[i]! << 16;
    assert.equal(got[i], f32[0]);
  }
  assert.ok(got.some((v) => v !== 0));
});

function randomWeights(p: FluxParams, seed: number): Record<string, { shape: number[]; data: Float32Array }> {
  const out: Record<string, { shape: number[]; data: Float32Array }> = {};
  fluxReferenceSpecs(p).forEach((s, i) => (out[s.name] = { shape: s.shape, data: randnArray(s.shape.reduce((a, b) => a * b, 1), seed * 7919 + i) }));
  return out;
}

function clone<T extends { shape: number[]; data: Float32Array }>(r: Record<string, T>): Record<string, { shape: number[]; data: Float32Array }> {
  return Object.fromEntries(Object.entries(r).map(([k, t]) => [k, { shape: [...t.shape], data: t.data.slice() }]));
}

/** A LoRA over several kinds of targets; returns its tensors and the alpha per module (or none). */
function syntheticLora(p: FluxParams): { tensors: Record<string, { shape: number[]; data: Float32Array }>; alphas: Map<string, number> } {
  const diff = new Map(fluxSpecs(p, 'diffusers').map((s) => [s.name, s.shape]));
  const ref = new Map(fluxReferenceSpecs(p).map((s) => [s.name, s.shape]));
  const mods: [string, number, number | null][] = [
    ['transformer_blocks.0.attn.to_q', 2, null],
    ['transformer_blocks.1.attn.add_v_proj', 3, 6],
    ['transformer_blocks.1.attn.to_add_out', 2, null],
    ['transformer_blocks.0.ff.net.0.proj', 4, 2],
    ['transformer_blocks.1.norm1_context.linear', 2, null],
    ['single_transformer_blocks.2.attn.to_k', 2, null],
    ['single_transformer_blocks.2.proj_mlp', 2, 1],
    ['single_transformer_blocks.0.proj_out', 3, null],
    ['norm_out.linear', 2, 8],
    ['double_blocks.0.img_mlp.2', 2, null], // a reference-named module
  ];
  const tensors: Record<string, { shape: number[]; data: Float32Array }> = {};
  const alphas = new Map<string, number>();
  mods.forEach(([m, r, alpha], i) => {
    const [rows, cols] = (diff.get(`${m}.weight`) ?? ref.get(`${m}.weight`))! as [number, number];
    tensors[`transformer.${m}.lora_A.weight`] = { shape: [r, cols], data: randnArray(r * cols, 100 + i) };
    tensors[`transformer.${m}.lora_B.weight`] = { shape: [rows, r], data: randnArray(rows * r, 200 + i) };
    if (alpha !== null) alphas.set(m, alpha);
  });
  return { tensors, alphas };
}

test('merge = the diffusers-side update W += (alpha/r) B A, mapped back to the reference rows (host and tensors)', async () => {
  await useBackend('cpu');
  const p = SMALL;
  const base = randomWeights(p, 1);
  const { tensors: lora, alphas } = syntheticLora(p);
  const shapes = Object.fromEntries(Object.entries(lora).map(([k, t]) => [k, t.shape]));
  const plan = planFluxLora(shapes, p, { alphas });
  assert.equal(plan.length, 10);
  const strength = 0.7;

  // Expected: convert to diffusers, add the update on each (unfused) module, convert back.
  const d = convertFluxNames(clone(base) as Record<string, HostArray>, 'reference', 'diffusers', p).tensors;
  const ref2 = clone(base);
  for (const t of plan) {
    const A = lora[t.names.A]!;
    const B = lora[t.names.B]!;
    const target = t.naming === 'diffusers' ? d[`${t.module}.weight`]! : ref2[`${t.module}.weight`]!;
    const [rows, cols] = target.shape as [number, number];
    const scale = strength * (alphas.has(t.module) ? alphas.get(t.module)! / t.rank : 1);
    for (let i = 0; i < rows; i++) for (let j = 0; j < cols; j++) {
      let s = 0;
      for (let k = 0; k < t.rank; k++) s += B.data[i * t.rank + k]! * A.data[k * cols + j]!;
      (target.data as Float32Array)[i * cols + j]! += scale * s;
    }
  }
  const back = convertFluxNames(d, 'diffusers', 'reference', p).tensors;
  // the reference-named module was applied on ref2 directly
  back['double_blocks.0.img_mlp.2.weight'] = ref2['double_blocks.0.img_mlp.2.weight']!;

  const merged = clone(base);
  const changed = mergeLoraHost(merged, plan, lora, strength);
  assert.deepEqual(new Set(changed), new Set([
    'double_blocks.0.img_attn.qkv.weight', 'double_blocks.1.txt_attn.qkv.weight', 'double_blocks.1.txt_attn.proj.weight',
    'double_blocks.0.img_mlp.0.weight', 'double_blocks.1.txt_mod.lin.weight', 'single_blocks.2.linear1.weight',
    'single_blocks.0.linear2.weight', 'final_layer.adaLN_modulation.1.weight', 'double_blocks.0.img_mlp.2.weight',
  ]));
  let maxErr = 0;
  for (const [name, w] of Object.entries(merged)) {
    const e = back[name]!.data as Float32Array;
    for (let i = 0; i < e.length; i++) maxErr = Math.max(maxErr, Math.abs(w.data[i]! - e[i]!));
  }
  assert.ok(maxErr < 1e-5, `host merge differs by ${maxErr}`);
  // untouched weights stay bit-identical
  assert.deepEqual(merged['double_blocks.0.txt_attn.qkv.weight']!.data, base['double_blocks.0.txt_attn.qkv.weight']!.data);
  // and the row slices outside an update are untouched: rows [H, 3H) of block 0's img qkv (only to_q changed)
  const H = p.hidden_size;
  const q0 = merged['double_blocks.0.img_attn.qkv.weight']!;
  assert.deepEqual(q0.data.subarray(H * H), base['double_blocks.0.img_attn.qkv.weight']!.data.subarray(H * H));

  const tw: Record<string, tf.Tensor> = {};
  for (const [k, t] of Object.entries(base)) tw[k] = tf.tensor(t.data, t.shape);
  const mt = mergeLoraTensors(tw, plan, lora, strength);
  let maxErrT = 0;
  for (const [name, w] of Object.entries(merged)) {
    const got = mt[name]!.dataSync();
    for (let i = 0; i < got.length; i++) maxErrT = Math.max(maxErrT, Math.abs(got[i]! - w.data[i]!));
  }
  assert.ok(maxErrT < 1e-5, `tensor merge differs by ${maxErrT}`);
  assert.equal(mt['img_in.weight'], tw['img_in.weight']);
  tf.dispose([...Object.values(tw), ...changed.map((n) => mt[n]!)]);
});

test('alpha tensors in a file set scale = alpha / rank; prefixes and older lora.down/up names parse', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'mce-lora-'));
  try {
    const p = SMALL;
    const H = p.hidden_size;
    const path = join(dir, 'l.safetensors');
    const A = randnArray(4 * H, 1);
    const B = randnArray(H * 4, 2);
    await writeSafetensors(path, {
      'transformer.single_transformer_blocks.1.attn.to_v.lora_A.weight': { dtype: 'F16', shape: [4, H], data: A },
      'transformer.single_transformer_blocks.1.attn.to_v.lora_B.weight': { dtype: 'BF16', shape: [H, 4], data: B },
      'transformer.single_transformer_blocks.1.attn.to_v.alpha': { dtype: 'F32', shape: [], data: new Float32Array([8]) },
    });
    const l = await loadFluxLora(path, p);
    assert.equal(l.plan.length, 1);
    assert.equal(l.plan[0]!.alpha, 8);
    assert.equal(l.plan[0]!.scale, 2);
    assert.deepEqual(l.plan[0]!.pieces, [{ reference: 'single_blocks.1.linear1.weight', refRows: [2 * H, 3 * H], loraRows: [0, H] }]);
    // a global alpha (peft lora_alpha) applies where the file has none
    const shapes = { 'base_model.model.transformer_blocks.0.attn.to_k.lora.down.weight': [4, H], 'base_model.model.transformer_blocks.0.attn.to_k.lora.up.weight': [H, 4] };
    const plan = planFluxLora(shapes, p, { alpha: 2 });
    assert.equal(plan[0]!.scale, 0.5);
    assert.deepEqual(plan[0]!.pieces[0]!.refRows, [H, 2 * H]);
    assert.deepEqual(parseLoraNames(['x.lora_A.default.weight', 'y.weird']).unknown, ['y.weird']);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('LoRAs that do not fit fail with one line naming the first offenders', async () => {
  const H = SMALL.hidden_size;
  const oneLine = (re: RegExp) => (e: unknown) => e instanceof LoraError && !e.message.includes('\n') && re.test(e.message);
  assert.throws(() => planFluxLora({ 'transformer.transformer_blocks.7.attn.to_q.lora_A.weight': [2, H], 'transformer.transformer_blocks.7.attn.to_q.lora_B.weight': [H, 2] }, SMALL),
    oneLine(/1 module\(s\) not in this FLUX model: transformer_blocks\.7\.attn\.to_q/));
  assert.throws(() => planFluxLora({ 'transformer.transformer_blocks.0.attn.to_q.lora_A.weight': [2, H] }, SMALL), oneLine(/incomplete module\(s\): transformer_blocks\.0\.attn\.to_q \(no lora_B\)/));
  assert.throws(() => planFluxLora({ 'transformer_blocks.0.attn.to_q.lora_A.weight': [2, H], 'transformer_blocks.0.attn.to_q.lora_B.weight': [H, 3] }, SMALL), oneLine(/do not share a rank/));
  assert.throws(() => planFluxLora({ 'transformer_blocks.0.attn.to_q.lora_A.weight': [2, H], 'transformer_blocks.0.attn.to_q.lora_B.weight': [3 * H, 2] }, SMALL), oneLine(/B @ A is \[48, 16\], the weight is \[16, 16\]/));
  assert.throws(() => planFluxLora({ 'lora_unet_double_blocks_0_img_attn_qkv.lora_down.weight': [2, H], 'lora_unet_double_blocks_0_img_attn_qkv.lora_up.weight': [3 * H, 2] }, SMALL), oneLine(/kohya-style/));
  assert.throws(() => planFluxLora({ 'transformer_blocks.0.attn.to_q.weight': [H, H] }, SMALL), oneLine(/not LoRA tensors/));
  // The real fixture does not fit a smaller model.
  const f = await SafetensorsFile.open(FIXTURE);
  const shapes = new Map([...f.entries].map(([n, e]) => [n, e.shape]));
  await f.close();
  assert.throws(() => planFluxLora(shapes, { ...FLUX_DEV, depth: 2 }), oneLine(/34 module\(s\) not in this FLUX model/));
  await assert.rejects(loadFluxLora('/nonexistent/lora.safetensors', SMALL), oneLine(/cannot open/));
});

test('the fixture merges into a full-size FLUX.1-dev txt qkv weight (one block, rows q and k only)', async () => {
  const lora = await loadFluxLora(FIXTURE, FLUX_DEV);
  const plan = lora.plan.filter((t) => t.module.startsWith('transformer_blocks.3.'));
  assert.equal(plan.length, 2);
  const name = 'double_blocks.3.txt_attn.qkv.weight';
  const H = 3072;
  const w = { [name]: { shape: [3 * H, H], data: new Float32Array(3 * H * H) } };
  assert.deepEqual(mergeLoraHost(w, plan, lora.tensors), [name]);
  const W = w[name]!.data;
  for (const [row, col] of [[0, 0], [17, 3000], [H + 5, 9], [2 * H - 1, H - 1]] as const) {
    const mod = row < H ? 'add_q_proj' : 'add_k_proj';
    const A = lora.tensors[`transformer.transformer_blocks.3.attn.${mod}.lora_A.weight`]!.data;
    const B = lora.tensors[`transformer.transformer_blocks.3.attn.${mod}.lora_B.weight`]!.data;
    const r = row % H;
    let s = 0;
    for (let k = 0; k < 8; k++) s += B[r * 8 + k]! * A[k * H + col]!;
    assert.ok(Math.abs(W[row * H + col]! - s) <= 1e-6 + 1e-5 * Math.abs(s), `row ${row} col ${col}`);
  }
  // the v rows are untouched
  assert.ok(W.subarray(2 * H * H).every((v) => v === 0));
  assert.ok(W.subarray(0, 2 * H * H).some((v) => v !== 0));
});
