// One baseline by name on a loaded model, for a world erasure target: what the method produces
// (edited weights, or a sampling wrapper), its settings, and the published settings they scale.
//   uce    closed-form K/V edit: erase texts = the target's name and members, guide = its neutral,
//          preserved = its near neighbours (train_erase.py preserves only "" for objects; our world
//          names the neighbours, so they are kept, as UCE keeps other artists for styles)
//   sld    wrapper; safety concept = the target's name and members
//   flowedit  wrapper (FLUX only): prompts naming the target's name or members are edited toward its neutral
//   esd-x, esd-u   prompt = the target's name
//   eap    ESD-x's prompt; candidates: the model's concepts but the target's members
//   ca     erase/anchor pairs: the world's train captions with the concept and with its neutral
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

export async function runBaseline(model: BaselineModel, method: BaselineMethod, target: ErasureTarget, o: BaselineOptions): Promise<BaselineOutput> {
  const neutral = barePhrase(o.neutral ?? target.neutral);
  const concepts = [...new Set([target.name, ...target.members])];
  switch (method) {
    case 'uce': {
      const texts = { erase: concepts, guide: neutral, preserve: target.neighbours };
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
      const w = flowEditWrapper(concepts, neutral);
      return { kind: 'wrapper', wrapper: { ...w }, settings: { concepts, neutral, params: w.params, reference_steps: w.reference_steps }, published: { ...FLOWEDIT_PUBLISHED, steps: w.reference_steps, source: 'MCE repo FlowEdit baseline / FlowEdit FLUX defaults' } };
    }
    case 'esd-x':
    case 'esd-u': {
      const r = await runEsd(model, method as EsdMethod, target.name, { steps: o.steps, seed: o.seed, ...(o.iters !== undefined ? { iters: o.iters } : {}), ...(o.lr !== undefined ? { lr: o.lr } : {}), ...(o.eta !== undefined ? { eta: o.eta } : {}) }, { progress: o.progress });
      return { kind: 'weights', weights: r.weights, settings: { ...r.settings, prompt: target.name, trained: r.parts.map((p) => p.weight) }, published: ESD_PUBLISHED, losses: r.losses, trainedParams: r.trainedParams };
    }
    case 'eap': {
      const pool = selectConcepts(320, 0).filter((c) => !target.members.includes(c));
      const r = await runEap(model, target.name, pool, { steps: o.steps, seed: o.seed, ...(o.iters !== undefined ? { iters: o.iters } : {}), ...(o.lr !== undefined ? { lr: o.lr } : {}), ...(o.eta !== undefined ? { eta: o.eta } : {}) }, { progress: o.progress });
      return { kind: 'weights', weights: r.weights, settings: { ...r.settings, prompt: target.name, pool: pool.length, adversaries: r.adversaries, trained: r.parts.map((p) => p.weight) }, published: EAP_PUBLISHED, losses: r.losses, trainedParams: r.trainedParams };
    }
    case 'ca': {
      const sets = buildPromptSets([target.name], { erasePerTarget: o.prompts ?? 8, preserve: 0, neutral: o.neutral, seed: o.seed });
      const pairs = sets.erase.map((p) => ({ prompt: p.prompt, anchor: p.neutral }));
      const r = await runCa(model, pairs, { steps: o.steps, seed: o.seed, ...(o.iters !== undefined ? { iters: o.iters } : {}), ...(o.lr !== undefined ? { lr: o.lr } : {}) }, { progress: o.progress });
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
