// The MCE trainer on a FLUX model: prompt sets -> cached original-model targets (once per run)
// -> mask logits trained with AdamW (per-group learning rates) through the shared training loop
// (train/loop.ts: seeded per-step batches, accumulation, resumable checkpoints, progress with loss
// terms, sparsity and ETA, NaN stop), the gradient of each micro-batch coming from the
// checkpointed backprop through every sampling step (objective.ts).
import { tf } from '../../engine/tf.js';
import { AdamW } from '../../train/optim.js';
import { batchesPerEpoch, epochBatch, train, type TrainResult } from '../../train/loop.js';
import type { Progress } from '../../train/progress.js';
import { HARD_CONCRETE_DEFAULTS, type HardConcreteParams } from './hardconcrete.js';
import {
  DEFAULT_GROUP_LR, DEFAULT_INIT_LOGIT, MASK_GROUPS, binarize, groupOf, hookMatcher, hostLogits, initLogitsFor, optimizerGroups,
  sparsityReport, type Binarize, type HostMasks, type MaskGroup, type MaskLogits,
} from './masks.js';
import { fluxMaskSpecs } from '../../models/flux/masks.js';
import { unetMaskSpecs } from '../../models/unet/masks.js';
import { UnetPromptCache, unetBuildItems, unetObjectiveGrad, type DdimSettings, type UnetEraseModel } from './unet.js';
import {
  NotImplementedError, PromptCache, buildItems, disposeItems, objectiveGrad,
  type EraseTarget, type FluxEraseModel, type ObjectiveItem, type ObjectiveKind, type SampleSpec, type SamplerSettings, type SparsityTerm,
} from './objective.js';
export type { UnetEraseModel, DdimSettings } from './unet.js';
import type { PromptSets } from './prompts.js';

export interface MceSettings {
  /** Erase target: neutral (default) | empty | edit (FlowEdit: not implemented yet). */
  target: EraseTarget;
  /** final (MCE, default) | per-step. */
  objective: ObjectiveKind;
  /** Preservation weight β (default 0.1). */
  beta: number;
  /** FLUX: Euler timesteps + CFG; UNet: a DDIM plan + CFG. */
  sampler: SamplerSettings | DdimSettings;
  /** Optimizer steps (unless `epochs` is set). */
  iters: number;
  /**
   * Run length in epochs instead: shuffled passes over the erase samples, each micro-batch taking
   * the next eraseBatch of the epoch's seeded permutation (the reference trains 5 epochs). Without
   * it, every micro-batch draws its erase samples at random, with replacement.
   */
  epochs?: number;
  /** Micro-batches per optimizer step (default 1). */
  accumulate: number;
  /** Erase and preserve items per micro-batch (default 2 and 2). */
  eraseBatch: number;
  preserveBatch: number;
  /** Shared noises per prompt for the Monte Carlo average (1 = one fixed noise, as the original code). */
  noises: number;
  seed: number;
  /** Learning rate per group (missing: the reference's, DEFAULT_GROUP_LR). */
  lr: Partial<Record<MaskGroup, number>>;
  /**
   * Only the hook points matching one of these globs are trained (masks.ts hookMatcher); the others
   * stay at init, like a group at lr 0. Unset: every hook point of a group with lr > 0 (the reference).
   * ['*.txt_mlp', '*.txt_mod'] masks FLUX's text stream alone, ['*.attn2.to_k', '*.attn2.to_v'] a
   * UNet's cross-attention keys and values: units that act on the text and nothing else.
   */
  hooks?: readonly string[];
  /** AdamW decoupled weight decay (default 0.01, PyTorch's, as the reference). */
  weightDecay: number;
  /**
   * What the weight decay pulls the logits toward: 'zero' (the reference: mask 0.5) or 'init' (the
   * original model; a unit then stays masked only while the loss keeps pushing it).
   */
  decayTo: 'zero' | 'init';
  /**
   * AdamW's epsilon (default 1e-8, PyTorch's, as the reference). Adam scales each logit's step by its
   * own gradient size, so a unit with a faint gradient moves as fast as one the loss needs; an
   * epsilon near the gradients' size slows the faint ones (their steps shrink to lr * grad / eps).
   * On the knife it masked more, not fewer (docs/erasure.md "Keeping more"): the masks follow the loss.
   */
  adamEps: number;
  /** Initial logit (default 3). */
  init: number;
  sparsity: SparsityTerm;
  hc: HardConcreteParams;
}

export function defaultMceSettings(sampler: SamplerSettings | DdimSettings, over: Partial<MceSettings> = {}): MceSettings {
  return {
    target: 'neutral',
    objective: 'final',
    beta: 0.1,
    sampler,
    iters: 60,
    accumulate: 1,
    eraseBatch: 2,
    preserveBatch: 2,
    noises: 4,
    seed: 0,
    lr: { ...DEFAULT_GROUP_LR },
    weightDecay: 0.01,
    decayTo: 'zero',
    adamEps: 1e-8,
    init: DEFAULT_INIT_LOGIT,
    sparsity: { kind: 'none', weight: 0 },
    hc: { ...HARD_CONCRETE_DEFAULTS },
    ...over,
  };
}

/**
 * The decay-to-init variant (docs/erasure.md "Keeping more"; the bench's mce-decay): the logits' AdamW decay
 * pulls toward their initial value at 0.1, and they are binarised at 2, about where the gate is fully
 * open without noise (b·ln((1-γ)/(ζ-1)) = 1.99 at the reference's hard-concrete parameters).
 */
export const DECAY_TO_INIT: Pick<MceSettings, 'weightDecay' | 'decayTo'> & { binarize: Binarize } = {
  weightDecay: 0.1,
  decayTo: 'init',
  binarize: { kind: 'threshold', threshold: 2 },
};

/** The training samples: every erase pair and preserve prompt, with each of the shared noises. */
export function trainingSamples(sets: PromptSets, s: Pick<MceSettings, 'target' | 'noises'>): { erase: SampleSpec[]; preserve: SampleSpec[] } {
  const erase: SampleSpec[] = [];
  const preserve: SampleSpec[] = [];
  for (let j = 0; j < s.noises; j++) {
    for (const p of sets.erase) {
      erase.push({ kind: 'erase', prompt: p.prompt, targetPrompt: s.target === 'empty' ? '' : p.neutral, noise: j, ...(s.target === 'edit' ? { edit: true } : {}) });
    }
    for (const p of sets.preserve) preserve.push({ kind: 'preserve', prompt: p, targetPrompt: p, noise: j });
  }
  return { erase, preserve };
}

/** The hook points a run trains: those of a group with a learning rate > 0 that match `hooks` (all, when unset). */
export function trainedHookPoints(names: readonly string[], s: Pick<MceSettings, 'lr' | 'hooks'>): string[] {
  const onHooks = s.hooks ? hookMatcher(s.hooks) : () => true;
  return names.filter((n) => (s.lr[groupOf(n)] ?? DEFAULT_GROUP_LR[groupOf(n)]) > 0 && onHooks(n));
}

/** Optimizer steps of a run: `iters`, or as many as `epochs` passes over the erase samples take (the last partial batch of each pass dropped). */
export function mceSteps(s: Pick<MceSettings, 'iters' | 'epochs' | 'eraseBatch' | 'accumulate'>, eraseSamples: number): number {
  if (s.epochs === undefined) return s.iters;
  if (!(Number.isInteger(s.epochs) && s.epochs >= 1)) throw new Error(`mce: epochs must be a positive integer, got ${s.epochs}`);
  return Math.ceil((s.epochs * batchesPerEpoch(eraseSamples, Math.min(s.eraseBatch, eraseSamples))) / s.accumulate);
}

export interface MceRunOptions {
  /** Checkpoint folder (resumable); none: nothing saved. */
  dir?: string;
  resume?: boolean;
  checkpointEvery?: number;
  /** Progress label / stream; false for none. */
  progress?: { label?: string; write?: (s: string) => void; quiet?: boolean; interval?: number } | false;
  evalEvery?: number;
  onEval?: (info: { step: number; logits: MaskLogits; progress: Progress }) => void | Promise<void>;
  /** Messages (target caching). */
  log?: (line: string) => void;
}

export interface MceRunResult {
  /** Trained logits (host copies), every hook point of the trained groups. */
  logits: HostMasks;
  train: TrainResult;
  /** Loss history per step: [step, loss, erase, preserve]. */
  history: [number, number, number, number][];
  /** This process's target caching and training; `earlier`: training time of the killed processes this run resumed from. */
  seconds: { targets: number; train: number; earlier: number };
}

/** What the trainer needs of a model family. */
interface Backend {
  specs: { name: string; size: number }[];
  steps: number;
  prepare(prompts: string[]): void;
  build(samples: readonly SampleSpec[]): ObjectiveItem[];
  grad(names: readonly string[], logits: readonly tf.Tensor[], items: readonly ObjectiveItem[], seed: number): ReturnType<typeof objectiveGrad>;
  dispose(): void;
}

function backendFor(model: FluxEraseModel | UnetEraseModel, s: MceSettings): Backend {
  const st = { objective: s.objective, beta: s.beta, sparsity: s.sparsity, hc: s.hc };
  if (s.target === 'edit' && s.objective !== 'final') throw new NotImplementedError('--target edit (FlowEdit) works with the final objective only');
  if ('kind' in model && model.kind === 'unet') {
    if (s.target === 'edit') throw new NotImplementedError('--target edit (FlowEdit) is implemented for flow models (FLUX) only; use neutral or empty on a UNet');
    if (!('plan' in s.sampler)) throw new Error('mce: a UNet needs DDIM sampler settings ({ plan, cfg })');
    const sampler = s.sampler;
    const cache = new UnetPromptCache(model);
    return {
      specs: unetMaskSpecs(model.cfg),
      steps: sampler.plan.timesteps.length,
      prepare: (p) => cache.add(p),
      build: (samples) => unetBuildItems(model, cache, samples, { sampler, objective: s.objective }, s.seed),
      grad: (names, logits, items, seed) => unetObjectiveGrad(model, cache, names, logits, items, { ...st, sampler }, seed),
      dispose: () => cache.dispose(),
    };
  }
  if (!('timesteps' in s.sampler)) throw new Error('mce: a FLUX model needs Euler sampler settings ({ timesteps, cfg })');
  const sampler = s.sampler;
  const flux = model as FluxEraseModel;
  const cache = new PromptCache(flux);
  return {
    specs: fluxMaskSpecs(flux.cfg),
    steps: sampler.timesteps.length - 1,
    prepare: (p) => cache.add(p),
    build: (samples) => buildItems(flux, cache, samples, { sampler, objective: s.objective }, s.seed),
    grad: (names, logits, items, seed) => objectiveGrad(flux, cache, names, logits, items, { ...st, sampler }, seed),
    dispose: () => cache.dispose(),
  };
}

/**
 * Train MCE masks on a FLUX model (Euler) or an SD-style UNet (DDIM) for the prompt sets.
 * Deterministic for a seed; with `dir`, a run killed and resumed ends with the same logits as an
 * uninterrupted one.
 */
export async function trainMce(model: FluxEraseModel | UnetEraseModel, sets: PromptSets, s: MceSettings, opts: MceRunOptions = {}): Promise<MceRunResult> {
  const log = opts.log ?? (() => {});
  if (!(s.noises >= 1 && Number.isInteger(s.noises))) throw new Error(`mce: noises must be a positive integer, got ${s.noises}`);
  const { erase, preserve } = trainingSamples(sets, s);
  if (erase.length === 0) throw new Error('mce: no erase prompts');
  if (s.beta > 0 && preserve.length === 0) throw new Error('mce: beta > 0 needs preserve prompts');
  const be = backendFor(model, s);
  const logits = initLogitsFor(be.specs, { init: s.init });
  // Trained hook points: groups with a learning rate > 0 (and matching --hooks). Frozen ones stay at init (binary 1) and are not applied.
  const names = trainedHookPoints(Object.keys(logits), s);
  if (names.length === 0) {
    const lrOf = (g: MaskGroup): number => s.lr[g] ?? DEFAULT_GROUP_LR[g];
    throw new Error(`mce: every mask group is frozen (learning rates ${MASK_GROUPS.map((g) => `${g} ${lrOf(g)}`).join(', ')}${s.hooks ? `; hooks ${s.hooks.join(', ')}` : ''})`);
  }
  const params: MaskLogits = Object.fromEntries(names.map((n) => [n, logits[n]!]));
  for (const n of Object.keys(logits)) if (!(n in params)) logits[n]!.dispose();
  let items: { erase: ObjectiveItem[]; preserve: ObjectiveItem[] } | null = null;
  const history: [number, number, number, number][] = [];
  const t0 = performance.now();
  try {
    be.prepare([...new Set([...erase, ...preserve].flatMap((x) => [x.prompt, x.targetPrompt])), ...(s.sampler.cfg !== 1 ? [''] : [])]);
    log(`mce: caching original-model targets for ${erase.length} erase + ${preserve.length} preserve samples (${s.noises} noise(s) each, ${be.steps} steps)`);
    items = {
      erase: be.build(erase),
      preserve: s.beta > 0 ? be.build(preserve) : [],
    };
    const tTargets = (performance.now() - t0) / 1000;
    const optimizer = new AdamW(params, { lr: 0.5, eps: s.adamEps, weightDecay: s.weightDecay, decayTo: s.decayTo === 'init' ? s.init : 0, groups: optimizerGroups(s.lr) });
    const it = items;
    const ne = it.erase.length;
    const np = it.preserve.length;
    const eraseBatch = Math.min(s.eraseBatch, ne);
    const t1 = performance.now();
    const result = await train<{ erase: number[]; preserve: number[] }>({
      params,
      optimizer,
      steps: mceSteps(s, ne),
      accumulate: s.accumulate,
      seed: s.seed,
      disposeBatch: false,
      config: {
        kind: 'mce', target: s.target, objective: s.objective, beta: s.beta, sampler: s.sampler, eraseBatch: s.eraseBatch,
        preserveBatch: s.preserveBatch, noises: s.noises, init: s.init, sparsity: s.sparsity, hc: s.hc, lr: s.lr,
        ...(s.hooks ? { hooks: s.hooks } : {}),
        ...(s.epochs !== undefined ? { epochs: s.epochs } : {}),
        prompts: { erase: sets.erase, preserve: sets.preserve },
      },
      batchFn: (ctx, rng) => ({
        erase: s.epochs !== undefined
          ? epochBatch(ne, eraseBatch, s.seed, ctx.index).indices
          : Array.from({ length: eraseBatch }, () => rng.int(ne)),
        preserve: s.beta > 0 ? Array.from({ length: Math.min(s.preserveBatch, np) }, () => rng.int(np)) : [],
      }),
      gradFn: (p, batch, ctx) => {
        const order = names;
        const chosen = [...batch.erase.map((i) => it.erase[i]!), ...batch.preserve.map((i) => it.preserve[i]!)];
        const r = be.grad(order, order.map((n) => p[n]!), chosen, ctx.seed);
        const grads = Object.fromEntries(order.map((n, i) => [n, r.grads[i]!]));
        const terms: Record<string, number> = { erase: r.terms.erase, preserve: r.terms.preserve };
        if (s.sparsity.kind !== 'none' && s.sparsity.weight > 0) terms['sparsity'] = r.terms.sparsity;
        return { loss: r.loss, terms, grads };
      },
      onStep: (info) => {
        history.push([info.step, info.loss, info.terms['erase'] ?? NaN, info.terms['preserve'] ?? NaN]);
      },
      dir: opts.dir,
      resume: opts.resume,
      checkpointEvery: opts.checkpointEvery,
      evalEvery: opts.evalEvery ?? 10,
      onEval: async ({ step, progress }) => {
        const rep = sparsityReport(binarize(hostLogits(params)));
        progress.log(`${progress.label ?? 'mce'}: step ${step}: pruned ${rep.groups.map((g) => `${g.group} ${(100 * g.fraction).toFixed(1)}%`).join(', ')}`);
        if (opts.onEval) await opts.onEval({ step, logits: params, progress });
      },
      state: {
        save: () => history,
        load: (saved) => {
          history.length = 0;
          if (Array.isArray(saved)) history.push(...(saved as [number, number, number, number][]));
        },
      },
      progress: opts.progress === false ? false : { label: 'mce', ...(opts.progress ?? {}) },
    });
    optimizer.dispose();
    const host = hostLogits(params);
    const trainSeconds = (performance.now() - t1) / 1000;
    // The loop's elapsed time carries the checkpoints' elapsed time; what is beyond this process's is earlier processes'.
    return { logits: host, train: result, history, seconds: { targets: tTargets, train: trainSeconds, earlier: Math.max(0, result.elapsedSeconds - trainSeconds) } };
  } finally {
    if (items) disposeItems([...items.erase, ...items.preserve]);
    be.dispose();
    tf.dispose(Object.values(params));
  }
}
