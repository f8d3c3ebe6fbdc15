// FlowEdit (Kulikov et al., 2024) used as an inference-time eraser (the MCE repository's FLUX
// baseline): a wrapper bundle; when a prompt names an erased concept, the model's own image is
// edited along the flow toward the prompt with the concept replaced by its neutral, one
// concepts/neutral edit per erased target (generate/wrapped.ts).
// Published settings (MCE repo / FlowEdit's FLUX defaults, 28 steps): src_guidance 1.5,
// tar_guidance 5.5, n_max 24, n_min 0, n_avg 1; n_max and n_min keep their fraction of the steps
// in a run of another length (flux-emoji's 6 steps: edit the last round(24 * 6 / 28) = 5).
import type { FlowEditEdit, FlowEditWrapperEntry } from '../../generate/wrapped.js';

export const FLOWEDIT_PUBLISHED = Object.freeze({ srcGuidance: 1.5, tarGuidance: 5.5, nMax: 24, nMin: 0, nAvg: 1 });
export const FLOWEDIT_REFERENCE_STEPS = 28;

export function flowEditWrapper(edits: readonly FlowEditEdit[]): FlowEditWrapperEntry {
  return { method: 'flowedit', edits: edits.map((e) => ({ concepts: [...e.concepts], neutral: e.neutral })), params: { ...FLOWEDIT_PUBLISHED }, reference_steps: FLOWEDIT_REFERENCE_STEPS };
}
