// mce erase on an SD-style UNet bundle (a tiny random sd-emoji-format folder): DDIM with CFG inside
// each step, masks saved under UNet hook-point names, every output the FLUX path writes (with the
// pair filter and the CLIP score from a tiny random emoji dual encoder); the masks
// fold into the bundle's BF16 UNet with apply-masks, and the folded UNet samples what the masked
// one does.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runCli } from '../cli/run.js';
import { esc } from '../../src/report/html.js';
import { useBackend } from '../../src/engine/backend.js';
import { tf } from '../../src/engine/tf.js';
import { loadFloat32 } from '../../src/io/safetensors.js';
import { loadMasks } from '../../src/erase/mce/maskfile.js';
import { fluxMasksFrom } from '../../src/erase/mce/masks.js';
import { noiseSeed } from '../../src/erase/mce/objective.js';
import { loadEraseSubject } from '../../src/erase/mce/subject.js';
import type { UnetEraseModel } from '../../src/erase/mce/unet.js';
import { ClipVocab, initClip, saveClip, type ClipConfig } from '../../src/models/clip/clip.js';
import { TINY_SD_UNET, writeTinySdBundle } from './tiny-sd.js';

test('erase on a UNet bundle: masks with UNet names, grids, divergence, report; apply-masks folds them exactly', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'mce-erase-sd-'));
  try {
    const bundle = await writeTinySdBundle(join(dir, 'tiny-sd'));
    // A tiny random emoji dual encoder, so that the CLIP-score path runs.
    const clipPath = join(dir, 'clip.safetensors');
    const clipCfg: ClipConfig = { image: { size: 16, widths: [8, 8], depths: [1, 1], groups: 4 }, text: { context: 24, width: 16, layers: 1, heads: 2, mlpRatio: 2 }, embedDim: 8, vocab: ClipVocab.covering(['a kitchen knife emoji']) };
    await saveClip(clipPath, clipCfg, initClip(clipCfg, 5), 'F32'); // seed 5: positive cosines on noise-like images
    const out = join(dir, 'run');
    // High learning rates so that two steps prune units and the erased model departs from the original.
    const args = ['erase', '--model', bundle, '--concept', 'kitchen knife', '--iters', '2', '--prompts', '2', '--noises', '1', '--eval', '2', '--lr-ffn', '40', '--lr-attn', '40', '--val-every', '2', '--clip', clipPath, '--filter', '0.9', '--out', out];
    const r = await runCli(args);
    assert.equal(r.code, 0, r.err);
    assert.match(r.err, /pair filter kept [12]\/2 erase pairs \(quantile 0\.9\)/);
    for (const f of ['masks.safetensors', 'sparsity.txt', 'sparsity.json', 'summary.json', 'grid.png', 'val-00002.png', 'report.html']) assert.ok(existsSync(join(out, f)), f);
    type Group = {
      prompts: string[]; ssim: number; before: number; after: number; clip: { before: number; after: number };
      perPrompt: { before: { concept: string; style: string; hit: boolean }; after: { concept: string; style: string; hit: boolean }; ssim: number }[];
    };
    const summary = JSON.parse(readFileSync(join(out, 'summary.json'), 'utf8')) as {
      family: string;
      settings: { sampler: { steps: number; cfg: number; timesteps: number[] } };
      trajectoryDivergence: { erase: number[]; preserve: number[] };
      sparsity: { groups: { group: string; pruned: number }[] };
      acceptance: { bar: string; value: number | null; met: boolean | null }[];
      evaluation: {
        erase: Group;
        others: Group;
        classifier: string | null; clipModel: string; notes: string[];
      };
    };
    assert.equal(summary.family, 'diffusion');
    // The bundle's defaults: 3 DDIM steps ("leading" spacing, offset 1), CFG 3.
    assert.deepEqual(summary.settings.sampler.timesteps, [667, 334, 1]);
    assert.equal(summary.settings.sampler.cfg, 3);
    for (const kind of ['erase', 'preserve'] as const) {
      const d = summary.trajectoryDivergence[kind];
      assert.equal(d.length, 4, `${kind}: states x_0..x_3`);
      assert.equal(d[0], 0, 'same initial noise');
      assert.ok(d[3]! > 0, `${kind}: the erased model departs from the original (${d.join(', ')})`);
    }
    assert.ok(summary.sparsity.groups.some((g) => g.group === 'attn_linear' && g.pruned > 0), JSON.stringify(summary.sparsity.groups));
    assert.equal(summary.evaluation.erase.prompts.length, 2);
    assert.ok(summary.evaluation.others.ssim > 0 && summary.evaluation.others.ssim < 1, String(summary.evaluation.others.ssim));
    assert.equal(summary.evaluation.clipModel, clipPath);
    for (const g of [summary.evaluation.erase, summary.evaluation.others]) {
      assert.ok(g.clip.before > 0 && g.clip.before <= 100 && g.clip.after > 0 && g.clip.after <= 100, JSON.stringify(g.clip));
      assert.notEqual(g.clip.before, g.clip.after, 'different images score differently');
    }
    assert.ok(!summary.evaluation.notes.some((n) => n.includes('CLIP')), summary.evaluation.notes.join('; '));
    // Per prompt: the classifier's calls behind each rate, and the SSIMs behind the mean.
    assert.ok(summary.evaluation.classifier, 'the shipped classifier is used');
    for (const g of [summary.evaluation.erase, summary.evaluation.others]) {
      assert.equal(g.perPrompt.length, g.prompts.length);
      const hits = (k: 'before' | 'after'): number => g.perPrompt.filter((p) => p[k].hit).length / g.perPrompt.length;
      assert.deepEqual([hits('before'), hits('after')], [g.before, g.after]);
      assert.ok(Math.abs(g.perPrompt.reduce((a, p) => a + p.ssim, 0) / g.perPrompt.length - g.ssim) < 1e-12);
      for (const p of g.perPrompt) assert.ok(typeof p.after.concept === 'string' && ['noto', 'fluent', 'twemoji'].includes(p.after.style), JSON.stringify(p));
    }
    const ssimBar = summary.acceptance.find((b) => b.bar === 'other concepts: mean SSIM to the original >= 0.85')!;
    assert.equal(ssimBar.value, summary.evaluation.others.ssim);
    assert.equal(ssimBar.met, summary.evaluation.others.ssim >= 0.85);
    const report = readFileSync(join(out, 'report.html'), 'utf8');
    assert.match(report, /Acceptance bars/);
    assert.match(report, /Trajectory divergence/);
    assert.match(report, /CLIP original/);
    assert.match(report, /Per prompt: the classifier's top-1 concept/);
    assert.ok(summary.evaluation.others.prompts.every((p) => report.includes(esc(p))), 'each held-out prompt is listed');

    const m = await loadMasks(join(out, 'masks.safetensors'), { unet: TINY_SD_UNET });
    assert.deepEqual(m.unet, TINY_SD_UNET);
    assert.equal(m.cfg, null);
    assert.ok('down_blocks.0.attentions.0.transformer_blocks.0.ff.hidden' in m.keep, Object.keys(m.keep).join(', '));
    assert.ok('mid_block.attentions.0.transformer_blocks.0.attn2.to_v' in m.keep);
    assert.ok(Object.values(m.keep).some((k) => k.some((v) => v === 0)), 'some unit is pruned');

    // Fold into the BF16 UNet; the folded bundle (same text encoder) samples what the masked model does.
    const folded = join(dir, 'folded');
    await writeTinySdBundle(folded);
    const a = await runCli(['apply-masks', '--weights', join(bundle, 'unet.safetensors'), '--masks', join(out, 'masks.safetensors'), '--out', join(folded, 'unet.safetensors')]);
    assert.equal(a.code, 0, a.err);
    assert.match(a.err, /diffusers names, \d+\/\d+ tensors changed/);
    await useBackend();
    const orig = await loadEraseSubject(bundle);
    const fold = await loadEraseSubject(folded);
    const masks = fluxMasksFrom(m.logits, 'binary', 0);
    const so = orig.newSampler();
    const sf = fold.newSampler();
    const prompts = ['a kitchen knife', 'a cat'];
    const seeds = [noiseSeed(1, 0), noiseSeed(1, 1)];
    const ra = so.sample(prompts, seeds, masks);
    const rb = sf.sample(prompts, seeds);
    const plain = so.sample(prompts, seeds);
    const diff = (x: tf.Tensor, y: tf.Tensor): number => tf.tidy(() => tf.max(tf.abs(tf.sub(x, y))).dataSync()[0]!);
    assert.ok(diff(ra.final, rb.final) < 1e-4, `folded vs masked: ${diff(ra.final, rb.final)}`);
    assert.ok(diff(ra.final, plain.final) > 1e-2, 'the masks change the output');
    // Untouched tensors are copied as they are.
    const w0 = await loadFloat32(join(bundle, 'unet.safetensors'));
    const w1 = await loadFloat32(join(folded, 'unet.safetensors'));
    assert.deepEqual(w1.tensors['conv_in.weight']!.data, w0.tensors['conv_in.weight']!.data);
    assert.equal((orig.model as UnetEraseModel).kind, 'unet');
    tf.dispose([ra.final, rb.final, plain.final, ...Object.values(masks)]);
    so.dispose();
    sf.dispose();
    orig.dispose();
    fold.dispose();

    // UNet masks on a checkpoint without those tensors: one line, exit 1.
    const bad = await runCli(['apply-masks', '--weights', join(bundle, 'text_encoder.safetensors'), '--masks', join(out, 'masks.safetensors'), '--out', join(dir, 'bad.safetensors')]);
    assert.equal(bad.code, 1, bad.err);
    assert.match(bad.err, /^mce: mask '.*' needs '.*', which the checkpoint does not have\n$/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('erase on a UNet bundle: --target edit (FlowEdit) is a usage error', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'mce-erase-sd-'));
  try {
    const bundle = await writeTinySdBundle(join(dir, 'tiny-sd'));
    const r = await runCli(['erase', '--model', bundle, '--concept', 'dagger', '--target', 'edit', '--out', join(dir, 'run')]);
    assert.equal(r.code, 2, r.err);
    assert.match(r.err, /^mce erase: --target edit \(FlowEdit\) works on flow models \(flux-emoji\) only/);
    assert.equal(r.err.trim().split('\n').length, 1);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
