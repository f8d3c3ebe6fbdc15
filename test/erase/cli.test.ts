// mce erase as a user runs it: one-line errors (unknown concepts get suggestions), and a very
// short end-to-end run on the shipped flux-emoji (when the bundle is there) whose masks fold into
// the shipped BF16 transformer with apply-masks.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { runCli } from '../cli/run.js';
import { loadMasks } from '../../src/erase/mce/maskfile.js';
import { decodePng } from '../../src/io/png.js';

const SHIPPED = fileURLToPath(new URL('../../models/flux-emoji/manifest.json', import.meta.url));
const CLIP = fileURLToPath(new URL('../../models/emoji-clip/model.safetensors', import.meta.url));
const TRANSFORMER = fileURLToPath(new URL('../../models/flux-emoji/transformer.safetensors', import.meta.url));

test('erase: bad flags and unknown concepts fail with one line and the right exit code', async () => {
  const cases: [string[], number, RegExp][] = [
    [['erase', '--out', '/tmp/x'], 2, /^mce erase: --concept NAME is required/],
    [['erase', '--concept', 'kitchen knife'], 2, /^mce erase: --out DIR is required/],
    [['erase', '--concept', 'kitchen knif', '--out', '/tmp/mce-never'], 1, /^mce: unknown concept "kitchen knif"; did you mean "kitchen knife"/],
    [['erase', '--concept', 'dagger,vampyre', '--out', '/tmp/mce-never'], 1, /^mce: unknown concept "vampyre"; did you mean "vampire"/],
    [['erase', '--concept', 'dagger', '--target', 'edit', '--objective', 'per-step', '--out', '/tmp/mce-never'], 2, /--target edit \(FlowEdit\) works with --objective final only/],
    [['erase', '--concept', 'dagger', '--target', 'blank', '--out', '/tmp/mce-never'], 2, /--target must be one of neutral, empty, edit/],
    [['erase', '--concept', 'dagger', '--objective', 'x', '--out', '/tmp/mce-never'], 2, /--objective must be one of final, per-step/],
    [['erase', '--concept', 'dagger', '--iters', '1.5', '--out', '/tmp/mce-never'], 2, /--iters must be an integer/],
    [['erase', '--concept', 'dagger', '--beta=-1', '--out', '/tmp/mce-never'], 2, /--beta must be in/],
    [['erase', '--concept', 'dagger', '--binarize', 'top:1', '--out', '/tmp/mce-never'], 2, /^mce erase: --binarize: binarisation rule 'top:1': unknown kind/],
    [['erase', '--concept', 'dagger', '--decay-to', 'one', '--out', '/tmp/mce-never'], 2, /^mce erase: --decay-to must be zero or init, got 'one'/],
    [['erase', '--concept', 'dagger', '--sparsity-kind', 'l2', '--out', '/tmp/mce-never'], 2, /^mce erase: --sparsity-kind must be l1, l0 or edit, got 'l2'/],
    [['erase', '--concept', 'dagger', '--weight-decay', '2', '--out', '/tmp/mce-never'], 2, /--weight-decay must be in/],
    [['erase', '--concept', 'dagger', '--adam-eps=-1', '--out', '/tmp/mce-never'], 2, /--adam-eps must be in/],
    [['erase', '--concept', 'dagger', '--preserve', '0', '--out', '/tmp/mce-never'], 2, /--preserve must be/],
    [['erase', '--concept', 'dagger', '--epochs', '0', '--out', '/tmp/mce-never'], 2, /--epochs must be/],
    [['erase', '--concept', 'dagger', '--epochs', '2', '--iters', '5', '--out', '/tmp/mce-never'], 2, /^mce erase: give --iters or --epochs, not both/],
    ...(existsSync(SHIPPED)
      ? [
        [['erase', '--concept', 'dagger', '--hooks', '*.txt_mlp,*.ff.hidden', '--out', '/tmp/mce-never'], 2, /^mce erase: --hooks '\*\.ff\.hidden' matches no hook point of flux-emoji \(its hook points: \*\.img_mlp, \*\.txt_mlp, \*\.txt_mod, \*\.heads, \*\.mlp\)/],
        [['erase', '--concept', 'dagger', '--hooks', '*.heads', '--out', '/tmp/mce-never'], 2, /^mce erase: --hooks \*\.heads selects only hook points of groups at learning rate 0 \(heads\)/],
      ] as [string[], number, RegExp][]
      : []),
    [['eval', 'erasure', '--concept', 'dagger'], 2, /^mce eval erasure: --masks FILE is required/],
    [['eval', 'erasure', '--masks', '/tmp/mce-never/m.safetensors'], 2, /^mce eval erasure: --concept NAME is required/],
    [['eval', 'erasure', '--masks', '/tmp/mce-never/m.safetensors', '--concept', 'vampyre'], 1, /^mce: unknown concept "vampyre"; did you mean "vampire"/],
    [['eval', 'erasure', '--masks', '/tmp/mce-never/m.safetensors', '--concept', 'dagger', '--n', '0'], 2, /--n must be/],
    [['eval', 'erasure', '--masks', '/tmp/mce-never/m.safetensors', '--concept', 'dagger', '--binarize', 'topk-layer:2'], 2, /^mce eval erasure: --binarize: binarisation rule 'topk-layer:2': the kept fraction must be from 0 to 1/],
    [['generate', '--prompt', 'a cat', '--binarize', 'threshold', '--out', '/tmp/mce-never/x.png'], 2, /^mce generate: --binarize needs --masks/],
    ...(existsSync(CLIP) || !existsSync(SHIPPED)
      ? []
      : [[['erase', '--concept', 'dagger', '--filter', '0.9', '--out', join(tmpdir(), 'mce-filter-out')], 1, /^mce: the pair filter needs the emoji CLIP weights/] as [string[], number, RegExp]]),
  ];
  const runs = await Promise.all(cases.map(([argv]) => runCli(argv)));
  runs.forEach((r, i) => {
    const [argv, code, re] = cases[i]!;
    assert.equal(r.code, code, `${argv.join(' ')}: exit ${r.code}, stderr ${r.err}`);
    assert.match(r.err, re, argv.join(' '));
    assert.equal(r.err.trim().split('\n').length, 1, `more than one line: ${r.err}`);
  });
  assert.ok(!existsSync('/tmp/mce-never'));
  rmSync(join(tmpdir(), 'mce-filter-out'), { recursive: true, force: true });
});

test('erase --hooks text trains only the text stream of flux-emoji', { skip: !existsSync(SHIPPED) && 'models/flux-emoji is not there' }, async () => {
  const out = mkdtempSync(join(tmpdir(), 'mce-erase-hooks-'));
  try {
    const r = await runCli(['erase', '--concept', 'dagger', '--hooks', 'text', '--iters', '1', '--steps', '1', '--prompts', '1', '--preserve', '1', '--noises', '1', '--eval', '0', '--no-grid', '--val-every', '0', '--out', out]);
    assert.equal(r.code, 0, r.err);
    const sp = JSON.parse(readFileSync(join(out, 'sparsity.json'), 'utf8')) as { layers: { name: string }[] };
    assert.deepEqual(sp.layers.map((l) => l.name), ['double_blocks.0.txt_mlp', 'double_blocks.0.txt_mod', 'double_blocks.1.txt_mlp', 'double_blocks.1.txt_mod']);
    const summary = JSON.parse(readFileSync(join(out, 'summary.json'), 'utf8')) as { settings: { hooks: string[] } };
    assert.deepEqual(summary.settings.hooks, ['*.txt_mlp', '*.txt_mod']);
  } finally {
    rmSync(out, { recursive: true, force: true });
  }
});

test('erase --cfg-interval: the whole range trains as no interval does; a limited one changes the losses and is recorded', { skip: !existsSync(SHIPPED) && 'models/flux-emoji is not there' }, async () => {
  const dir = mkdtempSync(join(tmpdir(), 'mce-erase-interval-'));
  try {
    const quick = ['erase', '--concept', 'dagger', '--iters', '2', '--steps', '2', '--prompts', '1', '--preserve', '1', '--noises', '1', '--eval', '0', '--no-grid', '--val-every', '0'];
    const [every, whole, limited, bad] = await Promise.all([
      runCli([...quick, '--out', join(dir, 'every')]),
      runCli([...quick, '--cfg-interval', '0,1', '--out', join(dir, 'whole')]),
      runCli([...quick, '--cfg-interval', '0.7,1', '--out', join(dir, 'limited')]),
      runCli([...quick, '--cfg-interval', '1,0', '--out', join(dir, 'bad')]),
    ]);
    for (const r of [every, whole, limited]) assert.equal(r.code, 0, r.err);
    const logits = async (run: string) => (await loadMasks(join(dir, run, 'masks.safetensors'))).logits;
    assert.deepEqual(await logits('whole'), await logits('every'));
    // Adam's first steps have the same size whatever the gradient, so compare the losses, which the sampler sets.
    const summary = (run: string) => JSON.parse(readFileSync(join(dir, run, 'summary.json'), 'utf8')) as { loss: { curve: number[][] }; settings: { sampler: Record<string, unknown> } };
    assert.deepEqual(summary('whole').loss.curve, summary('every').loss.curve);
    assert.notEqual(summary('limited').loss.curve[0]![1], summary('every').loss.curve[0]![1]);
    const sampler = (run: string) => summary(run).settings.sampler;
    assert.deepEqual(sampler('limited')['cfgInterval'], [0.7, 1]); // 2 steps: t = 1 guided, t = 0.613 not
    assert.equal('cfgInterval' in sampler('every'), false);
    assert.equal(bad.code, 2, bad.err);
    assert.match(bad.err, /^mce erase: --cfg-interval: guidance interval must be LO,HI/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('erase end to end on flux-emoji (2 iterations, 2 steps), then apply-masks on the shipped BF16 weights', { skip: !existsSync(SHIPPED) && 'models/flux-emoji is not there' }, async () => {
  const dir = mkdtempSync(join(tmpdir(), 'mce-erase-'));
  try {
    const out = join(dir, 'run');
    const r = await runCli(['erase', '--concept', 'kitchen knife', '--iters', '2', '--steps', '2', '--prompts', '2', '--preserve', '3', '--noises', '1', '--eval', '2', '--out', out]);
    assert.equal(r.code, 0, r.err);
    for (const f of ['masks.safetensors', 'sparsity.txt', 'sparsity.json', 'summary.json', 'grid.png', 'report.html']) assert.ok(existsSync(join(out, f)), f);
    const summary = JSON.parse(readFileSync(join(out, 'summary.json'), 'utf8')) as {
      prompts: { erase: unknown[]; preserve: string[] }; settings: { adamEps: number };
      loss: { curve: unknown[] }; trajectoryDivergence: { erase: number[] };
      evaluation: { erase: { prompts: string[]; ssim: number; clip: unknown }; clipModel: string | null; notes: string[] };
    };
    assert.equal(summary.evaluation.erase.prompts.length, 2);
    // --preserve sets the preserve count apart from --prompts (2 erase prompts, 3 preserve).
    assert.match(r.err, /2 erase \/ 3 preserve prompts \(3 of them near neighbours\)/);
    assert.equal(summary.prompts.erase.length, 2);
    assert.equal(summary.prompts.preserve.length, 3);
    assert.equal(summary.settings.adamEps, 1e-8);
    assert.ok(summary.evaluation.erase.ssim > 0 && summary.evaluation.erase.ssim <= 1);
    if (!existsSync(CLIP)) {
      // Without the emoji CLIP weights the CLIP score is skipped with a note, not an error.
      assert.equal(summary.evaluation.clipModel, null);
      assert.equal(summary.evaluation.erase.clip, null);
      assert.ok(summary.evaluation.notes.some((n) => /no emoji CLIP weights .*CLIP scores not measured/.test(n)), summary.evaluation.notes.join('; '));
    }
    assert.ok(existsSync(join(out, 'val-00002.png')));
    assert.equal(summary.loss.curve.length, 2);
    assert.equal(summary.trajectoryDivergence.erase.length, 3);
    assert.equal(summary.trajectoryDivergence.erase[0], 0, 'same initial noise');
    const m = await loadMasks(join(out, 'masks.safetensors'));
    assert.ok(Object.keys(m.keep).length > 0 && Object.keys(m.logits).length === Object.keys(m.keep).length);
    const png = decodePng(readFileSync(join(out, 'grid.png')));
    assert.ok(png.width > 0 && png.height > png.width);
    assert.match(readFileSync(join(out, 'sparsity.txt'), 'utf8'), /group ffn/);
    // mce eval erasure on the run's masks gives the run's own evaluation (same groups, seed, sampler).
    const ev = await runCli(['eval', 'erasure', '--masks', join(out, 'masks.safetensors'), '--concept', 'kitchen knife', '--steps', '2', '--n', '2', '--json']);
    assert.equal(ev.code, 0, ev.err);
    const again0 = JSON.parse(ev.out) as { evaluation: Record<string, unknown>; acceptance: unknown[]; sparsity: { total: { fraction: number } } };
    const drop = (e: Record<string, unknown>) => ({ ...e, seconds: 0 });
    assert.deepEqual(drop(again0.evaluation), drop(summary.evaluation as unknown as Record<string, unknown>));
    assert.equal(again0.acceptance.length, 6);
    assert.equal(again0.sparsity.total.fraction, (summary as unknown as { sparsity: { total: { fraction: number } } }).sparsity.total.fraction);
    // --binarize binarises the logits again: at threshold 0 they are the stored masks; far below every logit every unit is kept (the original model).
    const th = async (t: string) => {
      const r = await runCli(['eval', 'erasure', '--masks', join(out, 'masks.safetensors'), '--concept', 'kitchen knife', '--steps', '2', '--n', '2', '--json', '--binarize', `threshold:${t}`]);
      assert.equal(r.code, 0, r.err);
      return JSON.parse(r.out) as { binarize: string; sparsity: { total: { pruned: number } }; evaluation: { erase: { before: number; after: number; ssim: number } } & Record<string, unknown> };
    };
    const [at0, keepAll] = await Promise.all([th('0'), th('-1000')]);
    assert.equal(at0.binarize, 'threshold:0');
    assert.deepEqual(drop(at0.evaluation), drop(again0.evaluation));
    assert.equal(keepAll.evaluation.erase.after, keepAll.evaluation.erase.before);
    assert.equal(keepAll.evaluation.erase.ssim, 1);
    assert.equal(keepAll.sparsity.total.pruned, 0);
    // Rerunning the same command resumes (already complete).
    const again = await runCli(['erase', '--concept', 'kitchen knife', '--iters', '2', '--steps', '2', '--prompts', '2', '--preserve', '3', '--noises', '1', '--eval', '0', '--out', out]);
    assert.equal(again.code, 0, again.err);
    assert.match(again.err, /already complete/);
    const folded = join(dir, 'folded.safetensors');
    const a = await runCli(['apply-masks', '--weights', TRANSFORMER, '--masks', join(out, 'masks.safetensors'), '--out', folded]);
    assert.equal(a.code, 0, a.err);
    assert.ok(existsSync(folded));
    // A finished run binarised again by another rule: no training, new keep-masks and sparsity.
    const all = await runCli(['erase', '--concept', 'kitchen knife', '--iters', '2', '--steps', '2', '--prompts', '2', '--preserve', '3', '--noises', '1', '--eval', '0', '--no-grid', '--binarize', 'threshold:1000', '--out', out]);
    assert.equal(all.code, 0, all.err);
    assert.match(all.err, /already complete/);
    const s2 = JSON.parse(readFileSync(join(out, 'summary.json'), 'utf8')) as { settings: { binarize: string }; sparsity: { total: { fraction: number } } };
    assert.equal(s2.settings.binarize, 'threshold:1000');
    assert.equal(s2.sparsity.total.fraction, 1);
    const m2 = await loadMasks(join(out, 'masks.safetensors'));
    assert.ok(Object.values(m2.keep).every((k) => k.every((v) => v === 0)));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
