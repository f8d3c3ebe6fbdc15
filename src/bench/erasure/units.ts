// Running one benchmark unit. An erase unit writes the cell's erased bundle under
// DIR/models/<cell> (MCE: masks trained with resumable checkpoints under DIR/work/<cell>, then
// folded; baselines: erase/baselines/run.ts); the original model ('none') needs none. A metrics unit
// compares the bundle with the original model (metrics.ts) and saves the grid strip; an attack unit
// runs one attack on the bundle and saves what it found under DIR/attacks with the bundle's hash.
import { existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { tf } from '../../engine/tf.js';
import { readManifest } from '../../generate/bundle.js';
import { imageGrid, loadTextToImage } from '../../generate/index.js';
import { erasureTarget } from '../../world/targets.js';
import { selectConcepts } from '../../world/dataset.js';
import { writePng } from '../../io/png.js';
import { loadAttack } from '../../attacks/index.js';
import { loadAttackSubject } from '../../attacks/subject.js';
import { saveAttackResult } from '../../attacks/store.js';
import type { AttackResult } from '../../attacks/types.js';
import { benchCase, type BenchSettings, type BenchUnit } from './plan.js';
import { erasureMetrics } from './metrics.js';

export interface UnitContext {
  dir: string;
  settings: BenchSettings;
  log(line: string): void;
}

const slug = (cell: string): string => cell.replaceAll('/', '--');

/** The model a cell's metrics and attacks load: the original for 'none', else the cell's bundle. */
export function cellModel(ctx: UnitContext, u: Pick<BenchUnit, 'cell' | 'method' | 'model'>): string {
  return u.method === 'none' ? u.model : join(ctx.dir, 'models', slug(u.cell));
}

export function gridStripFile(ctx: UnitContext, u: Pick<BenchUnit, 'cell'>): string {
  return join(ctx.dir, 'grids', `${slug(u.cell)}.png`);
}

function stepsFor(ctx: UnitContext, model: string): number | undefined {
  return ctx.settings.steps[model] ?? undefined;
}

export async function runUnit(u: BenchUnit, ctx: UnitContext): Promise<Record<string, unknown>> {
  if (u.kind === 'erase') return runErase(u, ctx);
  if (u.kind === 'metrics') return runMetrics(u, ctx);
  return runAttackUnit(u, ctx);
}

async function runErase(u: BenchUnit, ctx: UnitContext): Promise<Record<string, unknown>> {
  const c = benchCase(u.case);
  if (u.method === 'none') return { bundle: u.model, note: 'the original model, unerased' };
  const out = cellModel(ctx, u);
  const steps = stepsFor(ctx, u.model);
  const seed = ctx.settings.seed;
  const { dir: baseDir, manifest: baseManifest } = readManifest(u.model);
  if (u.method.startsWith('mce')) {
    const { buildPromptSets } = await import('../../erase/mce/prompts.js');
    const { loadEraseSubject } = await import('../../erase/mce/subject.js');
    const { DECAY_TO_INIT, defaultMceSettings, trainMce } = await import('../../erase/mce/train.js');
    const { TEXT_ONLY_HOOKS, binarize } = await import('../../erase/mce/masks.js');
    const { writeMceBundle } = await import('../../erase/mce/bundle.js');
    const sets = buildPromptSets(c.concepts, { erasePerTarget: 12, preserve: 12 * c.concepts.length, seed });
    const subject = await loadEraseSubject(u.model, steps ? { steps } : {});
    try {
      // mce erase's flag defaults (src/cli/erase.ts): 2 noises, single-block MLP masks trained at 0.5,
      // and as many iterations per concept; mce-decay is DECAY_TO_INIT on top, mce-text the text-only hook points.
      const decay = u.method === 'mce-decay';
      const s = defaultMceSettings(subject.sampler, {
        iters: ctx.settings.mceIters * c.concepts.length, seed, noises: 2, lr: { ffn: 0.5, txt_mod: 0.5, heads: 0, single_mlp: 0.5, attn_linear: 0.5 },
        ...(decay ? { weightDecay: DECAY_TO_INIT.weightDecay, decayTo: DECAY_TO_INIT.decayTo } : {}),
        ...(u.method === 'mce-text' ? { hooks: TEXT_ONLY_HOOKS[subject.family] } : {}),
      });
      const rule = decay ? DECAY_TO_INIT.binarize : { kind: 'threshold' as const, threshold: 0 };
      const res = await trainMce(subject.model, sets, s, { dir: join(ctx.dir, 'work', slug(u.cell), 'checkpoints'), checkpointEvery: 10, log: (l) => ctx.log(`  ${l}`) });
      const changed = await writeMceBundle({
        baseDir, baseManifest, family: subject.family, outDir: out, keep: binarize(res.logits, rule),
        record: { method: u.method, concept: c.concepts.join(', '), settings: { ...s, sampler: subject.samplerRecord, binarize: rule } },
      });
      tf.dispose(Object.values(res.logits));
      return { bundle: out, changed, maskedUnits: changed.maskedUnits, units: changed.units, loss: res.train.loss, trainSeconds: res.seconds.train, earlierSeconds: res.seconds.earlier };
    } finally {
      subject.dispose();
    }
  }
  const { loadBaselineModel } = await import('../../erase/baselines/load.js');
  const { runBaseline, writeBaselineOutput } = await import('../../erase/baselines/run.js');
  const loaded = await loadBaselineModel(u.model);
  try {
    const targets = c.concepts.map((x) => erasureTarget(x));
    const sampleSteps = steps ?? loaded.defaults.steps;
    const result = await runBaseline(loaded.model, u.method as Parameters<typeof runBaseline>[1], targets, { seed, steps: sampleSteps, cfg: loaded.defaults.cfg, progress: false });
    const record = { method: u.method, concept: c.concepts.join(', '), settings: result.settings, published: result.published, seed, steps: sampleSteps };
    const changed = await writeBaselineOutput({ dir: loaded.dir, manifest: loaded.manifest, family: loaded.model.family }, result, out, record);
    return { bundle: out, kind: result.kind, changed, trainedParams: result.kind === 'weights' ? result.trainedParams : 0 };
  } finally {
    loaded.dispose();
  }
}

async function runMetrics(u: BenchUnit, ctx: UnitContext): Promise<Record<string, unknown>> {
  const c = benchCase(u.case);
  const bundle = cellModel(ctx, u);
  if (u.method !== 'none' && !existsSync(join(bundle, 'manifest.json'))) throw new Error(`${bundle}: the cell's erased bundle is missing (its erase unit did not finish)`);
  const original = await loadTextToImage(u.model);
  const erased = await loadTextToImage(bundle);
  try {
    const steps = stepsFor(ctx, u.model);
    const m = await erasureMetrics(original, erased, c.concepts.map((x) => erasureTarget(x)), {
      n: ctx.settings.n, seed: ctx.settings.seed, ...(steps ? { steps } : {}), modelConcepts: selectConcepts(320, 0),
    });
    const strip = imageGrid([m.samples.erased], 0);
    mkdirSync(join(ctx.dir, 'grids'), { recursive: true });
    await writePng(gridStripFile(ctx, u), { ...strip, channels: 3 });
    const { samples, ...rest } = m;
    return { ...rest, grid: { file: gridStripFile(ctx, u), prompts: samples.prompts } };
  } finally {
    original.dispose();
    erased.dispose();
  }
}

async function runAttackUnit(u: BenchUnit, ctx: UnitContext): Promise<Record<string, unknown>> {
  const c = benchCase(u.case);
  const attack = await loadAttack(u.attack!);
  const subject = await loadAttackSubject(cellModel(ctx, u), u.model);
  try {
    // A multi-concept cell is attacked on each of its concepts in turn, each with the full budget;
    // its success rate pools their generations (each concept is attacked with as many).
    const results: { r: AttackResult; file: string }[] = [];
    for (const concept of c.concepts) {
      const r = await attack(subject, erasureTarget(concept), { seed: ctx.settings.seed, budget: ctx.settings.budget, seedsPerPrompt: ctx.settings.attackSeeds, progress: false });
      results.push({ r, file: saveAttackResult(join(ctx.dir, 'attacks'), r) });
    }
    const generations = results.reduce((a, { r }) => a + r.generations, 0);
    const pooled = (rate: (r: AttackResult) => number): number =>
      generations ? results.reduce((a, { r }) => a + rate(r) * r.generations, 0) / generations : 0;
    const perTarget = results.map(({ r, file }) => ({ target: r.target, asr: r.asr, baseline: r.baseline, generations: r.generations, best: r.prompts.slice(0, 3), file, attackSeconds: r.seconds }));
    const only = perTarget.length === 1 ? perTarget[0]! : null;
    return {
      asr: pooled((r) => r.asr),
      baseline: pooled((r) => r.baseline),
      generations,
      target: results.map(({ r }) => r.target).join(', '),
      model: results[0]!.r.model,
      ...(only ? { best: only.best, file: only.file } : { perTarget }),
      attackSeconds: results.reduce((a, { r }) => a + r.seconds, 0),
    };
  } finally {
    subject.dispose();
  }
}
