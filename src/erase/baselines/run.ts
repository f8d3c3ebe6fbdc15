// One baseline by name on a loaded model, for one or more world erasure targets (erased together,
// as each method's reference code takes several concepts): what the method produces (edited
// weights, or a sampling wrapper), its settings, and the published settings they scale.
// A target's phrases are its name and members; its neutral is --neutral if given, else its own.
//   uce    closed-form K/V edit: erase texts = every target's phrases, each guided to its own
//          target's neutral; preserved = the targets' near neighbours, erased phrases left out
//          (train_erase.py preserves only "" for objects; our world names the neighbours, so they
//          are kept, as UCE keeps other artists for styles)
//   sld    wrapper; safety concept = every target's phrases joined with ', '
//   flowedit  wrapper (FLUX only): prompts naming a target's phrase are edited toward its neutral
//   esd-x, esd-u   prompts = the targets' names, one drawn per step (one target: no draw)
//   eap    ESD's prompts; candidates: the model's concepts but every target's members
//   ca     erase/anchor pairs: the world's train captions with each concept and with its neutral
// One target gives what the single-target runs gave (same seed, same weights).
import { buildPromptSets, barePhrase } from '../mce/prompts.js';
import type { ErasureTarget } from '../../world/targets.js';
import type { ProgressOptions } from '../../train/progress.js';
import { CA_PUBLISHED, runCa } from './ca.js';
import { ESD_PUBLISHED, runEsd, type EsdMethod } from './esd.js';
import type { BaselineModel } from './family.js';
import { SLD_PRESETS, sldWrapper, type SldPreset } from './sld.js';
import { uceEdit } from './uce.js';
import { FLOWEDIT_PUBLISHED, flowEditWrapper } from './flowedit.js';
import { EAP_PUBLISHED, runEap } from './eap.js';
import { selectConcepts } from '../../world/dataset.js';
import { writeErasedBundle, writeWrapperBundle, type ChangeStats, type ErasureRecord } from './bundle.js';

export const BASELINE_METHODS = ['uce', 'sld', 'esd-x', 'esd-u', 'ca', 'flowedit', 'eap'] as const;
export type BaselineMethod = (typeof BASELINE_METHODS)[number];

/** A method that cannot run on this model (one line for the user). */
export class BaselineError extends Error {}

export interface BaselineOptions {
  seed: number;
  /** Sampler steps for training / capture (the model's default). */
  steps: number;
  /** The model's CFG (UCE's capture runs). */
  cfg: number;
  neutral?: string;
  preset?: SldPreset;
  iters?: number;
  lr?: number;
  eta?: number;
  /** CA: erase/anchor prompt pairs. */
  prompts?: number;
  progress?: Omit<ProgressOptions, 'total' | 'start' | 'elapsedOffset'> | false;
}

export type BaselineOutput =
  | { kind: 'weights'; weights: Record<string, Float32Array>; settings: Record<string, unknown>; published: unknown; losses?: number[]; trainedParams: number }
  | { kind: 'wrapper'; wrapper: Record<string, unknown>; settings: Record<string, unknown>; published: unknown };

function host(w: Record<string, { dataSync(): unknown; dispose(): void }>): Record<string, Float32Array> {
  const out: Record<string, Float32Array> = {};
  for (const [n, t] of Object.entries(w)) {
    out[n] = t.dataSync() as Float32Array;
    t.dispose();
  }
  return out;
}

/** `counts(['a', 'b', 'a'])` = { a: 2, b: 1 }: how many steps trained each prompt. */
function counts(xs: readonly string[]): Record<string, number> {
  const out: Record<string, number> = {};
  for (const x of xs) if (x !== undefined) out[x] = (out[x] ?? 0) + 1;
  return out;
}

export async function runBaseline(model: BaselineModel, method: BaselineMethod, given: readonly ErasureTarget[], o: BaselineOptions): Promise<BaselineOutput> {
  const targets = [...new Map(given.map((t) => [t.name, t])).values()];
  if (targets.length === 0) throw new BaselineError('no erasure target');
  const neutralOf = (t: ErasureTarget): string => barePhrase(o.neutral ?? t.neutral);
  const phrasesOf = (t: ErasureTarget): string[] => [t.name, ...t.members];
  const concepts = [...new Set(targets.flatMap(phrasesOf))];
  const names = targets.map((t) => t.name);
  const train = { steps: o.steps, seed: o.seed, ...(o.iters !== undefined ? { iters: o.iters } : {}), ...(o.lr !== undefined ? { lr: o.lr } : {}) };
  switch (method) {
    case 'uce': {
      // Each erase text goes to its own target's neutral (the first target that names it).
      const guideOf = new Map<string, string>();
      for (const t of targets) for (const c of phrasesOf(t)) if (!guideOf.has(c)) guideOf.set(c, neutralOf(t));
      const preserve = [...new Set(targets.flatMap((t) => t.neighbours))].filter((n) => !guideOf.has(n));
      const texts = { erase: concepts, guide: concepts.map((c) => guideOf.get(c)!), preserve };
      const r = uceEdit(model, texts, { seed: o.seed, captureSteps: o.steps, captureCfg: o.cfg });
      const trained = r.sites.reduce((a, s) => a + (s.rows[1] - s.rows[0]) * model.weights[s.weight]!.shape[1]!, 0);
      return { kind: 'weights', weights: host(r.weights), settings: { ...r.settings, texts, sites: r.sites, rows: r.rows }, published: { lambda: 0.5, erase_scale: 1, preserve_scale: 'max(0.1, 1/#retain)', technique: 'replace', with_to_k: true, source: 'rohitgandikota/unified-concept-editing train_erase.py' }, trainedParams: trained };
    }
    case 'sld': {
      const preset = o.preset ?? 'MEDIUM';
      const w = sldWrapper(preset, concepts.join(', '));
      return { kind: 'wrapper', wrapper: { ...w }, settings: { preset, safety_concept: w.safety_concept, params: w.params }, published: { ...SLD_PRESETS[preset], source: 'diffusers SafetyConfig' } };
    }
    case 'flowedit': {
      if (model.family !== 'flow') throw new BaselineError('FlowEdit edits along a flow: FLUX models only');
      const w = flowEditWrapper(targets.map((t) => ({ concepts: [...new Set(phrasesOf(t))], neutral: neutralOf(t) })));
      return { kind: 'wrapper', wrapper: { ...w }, settings: { edits: w.edits, params: w.params, reference_steps: w.reference_steps }, published: { ...FLOWEDIT_PUBLISHED, steps: w.reference_steps, source: 'MCE repo FlowEdit baseline / FlowEdit FLUX defaults' } };
    }
    case 'esd-x':
    case 'esd-u': {
      const r = await runEsd(model, method as EsdMethod, names, { ...train, ...(o.eta !== undefined ? { eta: o.eta } : {}) }, { progress: o.progress });
      return { kind: 'weights', weights: r.weights, settings: { ...r.settings, prompts: names, prompt_steps: counts(r.stepPrompts), trained: r.parts.map((p) => p.weight) }, published: ESD_PUBLISHED, losses: r.losses, trainedParams: r.trainedParams };
    }
    case 'eap': {
      const erased = new Set(targets.flatMap((t) => t.members));
      const pool = selectConcepts(320, 0).filter((c) => !erased.has(c));
      const r = await runEap(model, names, pool, { ...train, ...(o.eta !== undefined ? { eta: o.eta } : {}) }, { progress: o.progress });
      return { kind: 'weights', weights: r.weights, settings: { ...r.settings, prompts: names, prompt_steps: counts(r.stepPrompts), pool: pool.length, adversaries: r.adversaries, trained: r.parts.map((p) => p.weight) }, published: EAP_PUBLISHED, losses: r.losses, trainedParams: r.trainedParams };
    }
    case 'ca': {
      const sets = buildPromptSets(names, { erasePerTarget: o.prompts ?? 8, preserve: 0, neutral: o.neutral, seed: o.seed });
      const pairs = sets.erase.map((p) => ({ prompt: p.prompt, anchor: p.neutral }));
      const r = await runCa(model, pairs, train, { progress: o.progress });
      return { kind: 'weights', weights: r.weights, settings: { ...r.settings, pairs, trained: r.parts }, published: CA_PUBLISHED, losses: r.losses, trainedParams: r.trainedParams };
    }
  }
}


/** Write what a baseline produced as a bundle in `outDir`: an erased copy of the base model, or a wrapper bundle. */
export async function writeBaselineOutput(
  base: { dir: string; manifest: Record<string, unknown>; family: BaselineModel['family'] },
  result: BaselineOutput,
  outDir: string,
  record: ErasureRecord,
): Promise<ChangeStats> {
  if (result.kind === 'wrapper') {
    await writeWrapperBundle({ baseDir: base.dir, baseManifest: base.manifest, outDir, wrapper: result.wrapper, record });
    return { tensors: 0, params: 0, totalParams: 0, bytes: 0, totalBytes: 0 };
  }
  return writeErasedBundle({ baseDir: base.dir, baseManifest: base.manifest, family: base.family, outDir, weights: result.weights, record });
}
