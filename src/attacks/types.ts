// What every attack shares: the model it attacks (an erased bundle of either family, or an
// inference wrapper), the original model it may consult, the erasure target it tries to bring
// back, and the result it reports. An attack is a plain async function
//   (subject, target, options) -> AttackResult
// that searches for prompts (or a token embedding, or an edit) on which the erased model draws the
// target again, then measures the attack success rate (ASR) with the concept classifier on the
// erased model's images. The prompts it found are saved with the hash of the model they were found
// on (attacks/store.ts), because an adversarial prompt is only meaningful against that model.
import type { BaselineModel } from '../erase/baselines/family.js';
import type { TextToImageModel } from '../generate/index.js';
import type { ErasureTarget } from '../world/targets.js';

export const ATTACK_NAMES = ['ring-a-bell', 'p4d', 'unlearndiff', 'mma', 'inversion', 'edit', 'i2p'] as const;
export type AttackName = (typeof ATTACK_NAMES)[number];

export interface AttackSubject {
  /** The attacked model as a sampler: what `mce generate --model` loads (erased bundle or wrapper). */
  erased: TextToImageModel;
  /**
   * The attacked model's denoiser, white-box (predict, sampler, encode). For an inference wrapper
   * (SLD, FlowEdit) this is its base model: white-box attacks optimise there and are then measured
   * through the wrapper (a transfer attack; the result's settings say so).
   */
  erasedWhiteBox: BaselineModel;
  /** True when erasedWhiteBox is the wrapper's base model rather than the attacked model itself. */
  whiteBoxIsBase: boolean;
  /** The original (unerased) model, white-box: P4D's teacher, the source of concept images. */
  original: BaselineModel;
  /** sha256 over the attacked bundle's manifest and weight files. */
  modelHash: string;
  /** The attacked bundle's name (manifest) and folder. */
  modelName: string;
  modelDir: string;
}

export interface AttackOptions {
  seed: number;
  /** 'quick' = CI-smoke budget (seconds), 'full' = the published budget scaled to this machine. */
  budget: 'quick' | 'full';
  /** Seeds each adversarial prompt is generated with when measuring ASR. */
  seedsPerPrompt?: number;
  /** Classifier weights (default: the shipped emoji classifier). */
  classifier?: string;
  /** One progress line per search step on stderr (false = quiet). */
  progress?: boolean;
}

export interface AdversarialPrompt {
  /** The prompt text as the tokenizer reads it (a learned embedding shows as its placeholder, e.g. "<adv>"). */
  prompt: string;
  /** Search objective at the end (attack-specific; lower is better), when there is one. */
  loss?: number;
  /** Share of this prompt's generations (seedsPerPrompt seeds) in which the target is detected. */
  detected: number;
}

export interface AttackResult {
  attack: AttackName;
  /** The erasure target's name. */
  target: string;
  model: { name: string; sha256: string };
  /** Share of all generations from the found prompts in which the target is detected. */
  asr: number;
  /** The same rate for the plain concept prompts on the attacked model (no attack), for context. */
  baseline: number;
  prompts: AdversarialPrompt[];
  /** Generations behind `asr`. */
  generations: number;
  seconds: number;
  /** Hyperparameters used, the published ones they scale, and notes (e.g. transfer from a wrapper's base). */
  settings: Record<string, unknown>;
}

export type Attack = (subject: AttackSubject, target: ErasureTarget, opts: AttackOptions) => Promise<AttackResult>;
