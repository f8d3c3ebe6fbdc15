// MCE masks: hard-concrete statistics and seeding, start-as-original, binarise / top-k / merge,
// the sparsity report, and the mask file.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { tf } from '../../src/engine/tf.js';
import { useBackend } from '../../src/engine/backend.js';
import { randnArray } from '../../src/engine/rng.js';
import { fluxForward, fluxMaskSpecs, makeImgIds, makeTxtIds } from '../../src/models/flux/index.js';
import {
  HARD_CONCRETE_DEFAULTS, deadZone, hardConcrete, hardConcreteScalar, hardConcreteUniform, deterministicMask,
} from '../../src/erase/mce/hardconcrete.js';
import {
  DEFAULT_GROUP_LR, binarize, fluxMasksFrom, formatBinarize, formatSparsity, parseBinarize, groupOf, hostLogits, initMaskLogits, masksFromLogits, mergeMasks,
  hookMatcher, optimizerGroups, sparsityReport,
} from '../../src/erase/mce/masks.js';
import { loadMasks, saveMasks } from '../../src/erase/mce/maskfile.js';
import { TINY, tinyModel } from './tiny.js';

test('hard-concrete: reference formula, bounded noise, dead zones, seeded replay', async () => {
  await useBackend();
  const n = 4000;
  for (const lambda of [-5, -1, 0, 0.7, 3]) {
    const l = tf.fill([n], lambda);
    const m = hardConcrete(l, 11, 2);
    const got = Array.from(m.dataSync());
    const u = hardConcreteUniform(n, 11, 2);
    for (let i = 0; i < 50; i++) assert.ok(Math.abs(got[i]! - hardConcreteScalar(lambda, u[i]!)) < 1e-5);
    const mean = got.reduce((a, b) => a + b, 0) / n;
    if (lambda === 3) assert.ok(Math.min(...got) >= 0.989, "λ = 3 starts every draw at mask >= 0.989");
    if (lambda === -5) assert.equal(Math.max(...got), 0);
    if (lambda === 0) assert.ok(Math.abs(mean - 0.5) < 0.02, `λ = 0 is symmetric around 0.5 (mean ${mean})`);
    tf.dispose([l, m]);
  }
  const dz = deadZone();
  assert.ok(Math.abs(dz.low + 3.09) < 0.01 && Math.abs(dz.high - 3.09) < 0.01, `dead zone ±3.09 (got ${dz.low}, ${dz.high})`);
  assert.ok(hardConcreteScalar(dz.low - 1e-3, 1 - 1e-9) === 0 && hardConcreteScalar(dz.high + 1e-3, 0) === 1);
  // Same (seed, stream) -> same draw; another seed or stream -> another draw.
  const a = hardConcreteUniform(16, 3, 0);
  assert.deepEqual(a, hardConcreteUniform(16, 3, 0));
  assert.notDeepEqual(a, hardConcreteUniform(16, 4, 0));
  assert.notDeepEqual(a, hardConcreteUniform(16, 3, 1));
  assert.equal(HARD_CONCRETE_DEFAULTS.beta, 0.83);
  // Gradient flows through the relaxation inside (0, 1) and is zero in the clamped region.
  const l = tf.tensor1d([0, 5, -5]);
  const g = tf.grad((x: tf.Tensor) => tf.sum(hardConcrete(x, 1, 0)))(l).dataSync();
  assert.ok(g[0]! > 0 && g[1] === 0 && g[2] === 0);
  tf.dispose([l]);
});

test('masks start as the original model: binary and continuous masks at λ = 3 give the unmasked output exactly', async () => {
  await useBackend();
  const m = tinyModel(3);
  const logits = initMaskLogits(TINY);
  assert.deepEqual(Object.keys(logits), fluxMaskSpecs(TINY).map((s) => s.name));
  const enc = m.encode(['a cat', 'a dog']);
  const inputs = {
    img: tf.tensor(randnArray(2 * 4 * 8, 1), [2, 4, 8]), img_ids: makeImgIds(2, 2, 2), txt: enc.txt, txt_ids: makeTxtIds(2, 3),
    timesteps: tf.tensor1d([0.7, 0.7]), y: enc.y,
  };
  const ref = fluxForward(TINY, m.weights, inputs).dataSync();
  for (const mode of ['binary', 'continuous'] as const) {
    const masks = fluxMasksFrom(logits, mode);
    const out = fluxForward(TINY, m.weights, inputs, { masks }).dataSync();
    assert.deepEqual(out, ref, mode);
    tf.dispose(Object.values(masks));
  }
  // Training masks (hard-concrete) are within 1% of 1 at init.
  const names = Object.keys(logits);
  const hc = masksFromLogits(names, names.map((n) => logits[n]!), { mode: 'hard-concrete', seed: 9 });
  for (const t of Object.values(hc)) assert.ok(Math.min(...t.dataSync()) >= 0.989);
  tf.dispose([...Object.values(hc), ...Object.values(logits), ...Object.values(inputs)]);
  m.dispose();
});

test('groups and reference learning rates (heads frozen)', () => {
  assert.equal(groupOf('double_blocks.3.img_mlp'), 'ffn');
  assert.equal(groupOf('double_blocks.3.txt_mlp'), 'ffn');
  assert.equal(groupOf('double_blocks.0.txt_mod'), 'txt_mod');
  assert.equal(groupOf('single_blocks.1.heads'), 'heads');
  assert.equal(groupOf('single_blocks.1.mlp'), 'single_mlp');
  assert.throws(() => groupOf('double_blocks.0.img_mod'));
  assert.deepEqual(DEFAULT_GROUP_LR, { ffn: 0.5, txt_mod: 0.5, heads: 0, single_mlp: 0, attn_linear: 0.5 });
  assert.equal(groupOf('mid_block.attentions.0.transformer_blocks.0.ff.hidden'), 'ffn');
  assert.equal(groupOf('mid_block.attentions.0.transformer_blocks.0.attn2.to_k'), 'attn_linear');
  const g = optimizerGroups({ heads: 0.1 });
  assert.equal(g.find((x) => x.name === 'heads')!.lr, 0.1);
  assert.equal(g.find((x) => x.name === 'ffn')!.lr, 0.5);
});

test('hook globs: * matches any run of characters, dots are literal, the whole name must match', () => {
  const text = hookMatcher(['*.txt_mlp', '*.txt_mod']);
  assert.deepEqual(['double_blocks.0.txt_mlp', 'double_blocks.1.txt_mod', 'double_blocks.0.img_mlp', 'single_blocks.0.mlp'].map(text), [true, true, false, false]);
  const single = hookMatcher(['*.mlp']);
  assert.deepEqual(['single_blocks.3.mlp', 'double_blocks.0.txt_mlp'].map(single), [true, false]);
  const kv = hookMatcher(['*.attn2.to_k', '*.attn2.to_v']);
  assert.deepEqual(['mid_block.attentions.0.transformer_blocks.0.attn2.to_k', 'mid_block.attentions.0.transformer_blocks.0.attn1.to_k', 'up_blocks.0.attentions.0.transformer_blocks.0.attn2.to_out'].map(kv), [true, false, false]);
  assert.equal(hookMatcher(['double_blocks.0.txt_mlp'])('double_blocksX0Xtxt_mlp'), false);
  assert.equal(hookMatcher(['double_blocks.0'])('double_blocks.0.txt_mlp'), false);
  assert.equal(hookMatcher([])('double_blocks.0.txt_mlp'), false);
});

test('binarize: threshold, top-k per layer (stable), top-k global per group; merge is AND; sparsity table', () => {
  const logits = {
    'double_blocks.0.img_mlp': Float32Array.from([2, -1, 0.5, 0.5, -3]),
    'double_blocks.0.txt_mlp': Float32Array.from([1, 1, 1, -2, 4]),
    'double_blocks.0.txt_mod': Float32Array.from([0, 0.1, -0.1, 5, 5, 5]),
  };
  const th = binarize(logits);
  assert.deepEqual([...th['double_blocks.0.img_mlp']!], [1, 0, 1, 1, 0]);
  assert.deepEqual([...th['double_blocks.0.txt_mod']!], [0, 1, 0, 1, 1, 1], 'keep iff λ > 0 (0 is pruned)');
  assert.deepEqual([...binarize(logits, { kind: 'threshold', threshold: 1 })['double_blocks.0.img_mlp']!], [1, 0, 0, 0, 0]);
  const local = binarize(logits, { kind: 'topk-layer', keep: 0.4 });
  assert.deepEqual([...local['double_blocks.0.img_mlp']!], [1, 0, 1, 0, 0], 'ties keep the earlier unit');
  assert.deepEqual([...local['double_blocks.0.txt_mlp']!], [1, 0, 0, 0, 1]);
  // Global over the ffn group (10 units, keep 3): 4, 2, then the first of the 1s.
  const glob = binarize(logits, { kind: 'topk-global', keep: 0.3 });
  assert.deepEqual([...glob['double_blocks.0.img_mlp']!, ...glob['double_blocks.0.txt_mlp']!], [1, 0, 0, 0, 0, 1, 0, 0, 0, 1]);
  assert.deepEqual([...glob['double_blocks.0.txt_mod']!], [0, 0, 0, 1, 1, 0], 'txt_mod is its own group');
  assert.throws(() => binarize(logits, { kind: 'topk-layer', keep: 2 }));

  const merged = mergeMasks([th, local, { 'single_blocks.0.mlp': Float32Array.from([1, 0]) }]);
  assert.deepEqual([...merged['double_blocks.0.img_mlp']!], [1, 0, 1, 0, 0]);
  assert.deepEqual([...merged['single_blocks.0.mlp']!], [1, 0], 'a hook point in one set only is kept as it is');
  assert.throws(() => mergeMasks([th, { 'double_blocks.0.img_mlp': Float32Array.from([1]) }]), /units/);

  const rep = sparsityReport(th);
  assert.equal(rep.total.units, 16);
  assert.equal(rep.total.pruned, 2 + 1 + 2);
  assert.deepEqual(rep.groups.map((g) => [g.group, g.pruned, g.units]), [['ffn', 3, 10], ['txt_mod', 2, 6]]);
  const table = formatSparsity(rep);
  assert.match(table, /double_blocks\.0\.img_mlp\s+ffn\s+5\s+2\s+40\.0%/);
  assert.match(table, /total\s+16\s+5\s+31\.3%/);
});

test('mask files round-trip and are checked against the model', async () => {
  await useBackend();
  const dir = mkdtempSync(join(tmpdir(), 'mce-masks-'));
  try {
    const logits = initMaskLogits(TINY, { groups: ['ffn', 'txt_mod'] });
    const host = hostLogits(logits);
    host['double_blocks.0.img_mlp']![3] = -2;
    const keep = binarize(host);
    await saveMasks(join(dir, 'm.safetensors'), { logits: host, keep, cfg: TINY });
    const back = await loadMasks(join(dir, 'm.safetensors'), TINY);
    assert.deepEqual(back.logits, host);
    assert.deepEqual(back.keep, keep);
    assert.deepEqual(back.cfg, TINY);
    await assert.rejects(loadMasks(join(dir, 'm.safetensors'), { ...TINY, mlp_ratio: 4 }), /has 64 units, the model has 128/);
    tf.dispose(Object.values(logits));
    const d = deterministicMask(tf.tensor1d([-1, 1]), 'sigmoid');
    assert.ok(Math.abs(d.dataSync()[1]! - 0.731) < 1e-3);
    d.dispose();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('optional sparsity term: L1 on sigmoid(logits), expected L0 and the expected fraction masked, with gradients', async () => {
  await useBackend();
  const { sparsityTerm } = await import('../../src/erase/mce/objective.js');
  const l = [tf.tensor1d([0, 2]), tf.tensor1d([-1])];
  const sig = (x: number): number => 1 / (1 + Math.exp(-x));
  const r = sparsityTerm(l, { kind: 'l1', weight: 3 }, HARD_CONCRETE_DEFAULTS);
  assert.ok(Math.abs(r.value - (3 * (sig(0) + sig(2) + sig(-1))) / 3) < 1e-5);
  const g = r.grads![0]!.dataSync();
  assert.ok(Math.abs(g[0]! - (3 / 3) * 0.25) < 1e-5);
  const r0 = sparsityTerm(l, { kind: 'l0', weight: 1 }, HARD_CONCRETE_DEFAULTS);
  const shift = 0.83 * Math.log(0.1 / 1.1);
  assert.ok(Math.abs(r0.value - (sig(0 - shift) + sig(2 - shift) + sig(-1 - shift)) / 3) < 1e-5);
  // edit: the expected fraction masked, P(m = 0) = 1 - P(m > 0); its gradient pulls logits up (toward kept).
  const re = sparsityTerm(l, { kind: 'edit', weight: 2 }, HARD_CONCRETE_DEFAULTS);
  assert.ok(Math.abs(re.value - (2 * (3 - (sig(0 - shift) + sig(2 - shift) + sig(-1 - shift)))) / 3) < 1e-5);
  const ge = re.grads![1]!.dataSync()[0]!;
  const p = sig(-1 - shift);
  assert.ok(Math.abs(ge - (-2 / 3) * p * (1 - p)) < 1e-5, `edit gradient ${ge}`);
  assert.equal(sparsityTerm(l, { kind: 'none', weight: 1 }, HARD_CONCRETE_DEFAULTS).grads, null);
  tf.dispose([...l, ...r.grads!, ...r0.grads!, ...re.grads!]);
});

test('binarisation rules from the command line: parse, read back, one-line errors', () => {
  assert.deepEqual(parseBinarize('threshold'), { kind: 'threshold', threshold: 0 });
  assert.deepEqual(parseBinarize('threshold:-3.5'), { kind: 'threshold', threshold: -3.5 });
  assert.deepEqual(parseBinarize('topk-layer:0.9'), { kind: 'topk-layer', keep: 0.9 });
  assert.deepEqual(parseBinarize('topk-global:1'), { kind: 'topk-global', keep: 1 });
  for (const r of ['threshold:-3.5', 'topk-layer:0.9', 'topk-global:0']) assert.equal(formatBinarize(parseBinarize(r)), r);
  assert.throws(() => parseBinarize('threshold:x'), /^Error: binarisation rule 'threshold:x': the threshold must be a number/);
  assert.throws(() => parseBinarize('topk-global'), /the kept fraction must be from 0 to 1/);
  assert.throws(() => parseBinarize('topk-layer:1.5'), /the kept fraction must be from 0 to 1/);
  assert.throws(() => parseBinarize('top:0.5'), /unknown kind \(threshold:T, topk-layer:F or topk-global:F\)/);
  assert.throws(() => parseBinarize('threshold:1:2'), /too many parts/);
});
