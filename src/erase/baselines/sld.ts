// SLD (Safe Latent Diffusion) as an inference wrapper: no weight changes; sampling subtracts the
// safety concept's guidance (sampling/sld.ts has the rule, for UNet noise and FLUX velocity alike).
// The presets are diffusers' SafetyConfig (the paper's hyper-parameter sets), unchanged:
//
//   preset   warmup  guidance  threshold  momentum  beta
//   WEAK       15       20       0.0        0.0      0.0
//   MEDIUM     10     1000       0.01       0.3      0.4     (the pipeline's defaults)
//   STRONG      7     2000       0.025      0.5      0.7
//   MAX         0     5000       1.0        0.5      0.7
//
// Warm-up is counted in sampler steps of SD's 50-step default; a run with another number of steps
// keeps the same fraction, round(warmup * steps / 50) (flux-emoji samples in 6 steps: MEDIUM's 10
// of 50 becomes 1 of 6). The manifest records the published numbers and this rule.
import type { SldParams } from '../../sampling/sld.js';

export type SldPreset = 'WEAK' | 'MEDIUM' | 'STRONG' | 'MAX';

export const SLD_PRESETS: Readonly<Record<SldPreset, Readonly<SldParams>>> = Object.freeze({
  WEAK: Object.freeze({ warmupSteps: 15, guidanceScale: 20, threshold: 0.0, momentumScale: 0.0, momBeta: 0.0 }),
  MEDIUM: Object.freeze({ warmupSteps: 10, guidanceScale: 1000, threshold: 0.01, momentumScale: 0.3, momBeta: 0.4 }),
  STRONG: Object.freeze({ warmupSteps: 7, guidanceScale: 2000, threshold: 0.025, momentumScale: 0.5, momBeta: 0.7 }),
  MAX: Object.freeze({ warmupSteps: 0, guidanceScale: 5000, threshold: 1.0, momentumScale: 0.5, momBeta: 0.7 }),
});

/** The number of sampler steps the presets' warm-up counts are given for (SD's default). */
export const SLD_REFERENCE_STEPS = 50;

export function isSldPreset(s: string): s is SldPreset {
  return Object.hasOwn(SLD_PRESETS, s);
}

/** What a wrapper manifest's `wrapper` holds for SLD (generate/wrapped.ts reads it). */
export interface SldWrapper {
  method: 'sld';
  preset: SldPreset;
  /** The text whose direction is steered away from. */
  safety_concept: string;
  params: SldParams;
  reference_steps: number;
  note: string;
}

export function sldWrapper(preset: SldPreset, safetyConcept: string): SldWrapper {
  return {
    method: 'sld',
    preset,
    safety_concept: safetyConcept,
    params: { ...SLD_PRESETS[preset] },
    reference_steps: SLD_REFERENCE_STEPS,
    note: `published ${preset} preset (diffusers SafetyConfig); warm-up scaled to the run's steps as round(warmupSteps * steps / ${SLD_REFERENCE_STEPS}); applied to the prediction (UNet noise or FLUX velocity) the way CFG is`,
  };
}
