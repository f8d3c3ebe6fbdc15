// The training loop shared by every trainer in mce (flow and diffusion models, the autoencoder,
// classifiers, MCE masks). A plain loop, not a framework:
//
//   for each optimizer step k (0-based) from the last checkpoint to the end:
//     for each micro-batch j < accumulate:
//       batch <- batchFn(ctx, Rng(seed, k, j))        the data depends only on (seed, k, j)
//       loss, grads <- lossFn under tf.variableGrads  (or gradFn, e.g. checkpointed backprop)
//     grads <- mean over micro-batches; stop on NaN/Inf loss or gradients
//     AdamW step (clipping inside); stop if it made a parameter NaN/Inf
//     progress line, eval every K, checkpoint every K and at the end
//
// Because every random draw is a pure function of (seed, step, micro-batch) and the checkpoint holds
// the parameters and optimizer state exactly, a run killed and resumed from its last checkpoint
// ends with the same bytes as an uninterrupted run. Every tensor made during a step is disposed
// in that step, so tf.memory().numTensors stays flat.
import { rm } from 'node:fs/promises';
import { tf } from '../engine/tf.js';
import { Rng, mixSeed } from '../engine/rng.js';
import { globalNorm, type AdamW, type Grads, type Params } from './optim.js';
import { Progress, formatNumber, type ProgressOptions } from './progress.js';
import {
  TrainError, configHash, listCheckpoints, loadCheckpoint, restoreParams, saveCheckpoint,
} from './state.js';

// Stream ids mixed into the run seed, so the batch, loss and tensor-noise draws are independent.
const BATCH_STREAM = 0x62617463;
const LOSS_STREAM = 0x6c6f7373;
const NOISE_STREAM = 0x6e6f6973;
const PERM_STREAM = 0x7065726d;

/** Where in the run a micro-batch is. */
export interface BatchContext {
  /** 0-based index of the optimizer step being computed. */
  step: number;
  /** Micro-batch index within the step, in [0, accumulate). */
  micro: number;
  /** Micro-batches per step. */
  accumulate: number;
  /** Global micro-batch index: step * accumulate + micro (use it to walk a dataset). */
  index: number;
  /** floor(step / stepsPerEpoch) in epoch mode, else 0. */
  epoch: number;
  /** Total optimizer steps of the run. */
  total: number;
}

/** What a loss function gets besides the parameters and the batch. */
export interface LossContext extends BatchContext {
  /** A seeded stream for randomness inside the loss (timesteps, noise, dropout), independent of the batch's. */
  rng: Rng;
  /** A 32-bit seed for this micro-batch, for seeded tensor noise (randnArray(n, seed), step seeds). */
  seed: number;
}

type Terms = Record<string, tf.Scalar | number>;

/** A loss function's result: the scalar to minimise, optionally with named terms for progress. */
export type LossOutput = tf.Scalar | { loss: tf.Scalar; terms?: Terms };

/** A gradient function's result (for losses whose gradients are not one tape, e.g. checkpointed backprop). */
export interface GradOutput {
  loss: tf.Scalar | number;
  terms?: Terms;
  /** Gradients by parameter name; the loop disposes them. */
  grads: Grads;
}

/** Reported after every optimizer step. */
export interface StepInfo {
  /** Steps completed (1 after the first step). */
  step: number;
  total: number;
  epoch: number;
  /** Loss of this step (mean over micro-batches). */
  loss: number;
  /** Named terms of this step (mean over micro-batches), 'loss' excluded. */
  terms: Record<string, number>;
  /** Global gradient norm before clipping. */
  gradNorm: number;
  clipCoef: number;
  /** Learning rate per group. */
  lr: Record<string, number>;
}

/** User state carried in checkpoints (for example a loss history for curves). JSON only. */
export interface ExtraState {
  save(): unknown;
  load(saved: unknown): void;
}

export interface TrainOptions<B> {
  /** Parameters being trained (the optimizer was built over them). */
  params: Params;
  optimizer: AdamW;
  /** Run length in optimizer steps... */
  steps?: number;
  /** ...or in epochs of `stepsPerEpoch` steps. */
  epochs?: number;
  stepsPerEpoch?: number;
  /** Micro-batches per optimizer step (gradients are averaged), default 1. */
  accumulate?: number;
  /** Run seed: every batch and every random draw in the loss derive from it. */
  seed: number;
  /** Make the micro-batch for (step, micro). Must be a pure function of ctx and rng. */
  batchFn: (ctx: BatchContext, rng: Rng) => B | Promise<B>;
  /**
   * The loss, differentiated with tf.variableGrads over the trainable parameters (synchronous;
   * intermediate tensors are disposed by tfjs). Term tensors are read and disposed by the loop.
   */
  lossFn?: (params: Params, batch: B, ctx: LossContext) => LossOutput;
  /**
   * Alternative to lossFn: compute loss and gradients yourself (e.g. checkpointed backprop). It
   * runs in a tfjs scope, as lossFn does under tf.variableGrads: tensors it creates and neither
   * returns nor tf.keep()s are disposed when it returns. May be async.
   */
  gradFn?: (params: Params, batch: B, ctx: LossContext) => GradOutput | Promise<GradOutput>;
  /** Dispose the tensors in each batch after use (tf.dispose on the batch), default true. */
  disposeBatch?: boolean;
  /** Checkpoint folder; without it nothing is saved or resumed. */
  dir?: string;
  /** Save every K steps (default 0: only at the end). */
  checkpointEvery?: number;
  /** Checkpoints to keep, newest first (default 1). */
  keepCheckpoints?: number;
  /** Resume from the last checkpoint in dir (default true). false starts over and deletes dir's checkpoints. */
  resume?: boolean;
  /** The run's configuration (JSON): hashed with the seed, accumulate, optimizer and parameter shapes; a checkpoint made with another is refused. */
  config?: unknown;
  /** Call onEval every K steps and after the last step. */
  evalEvery?: number;
  onEval?: (info: { step: number; epoch: number; params: Params; progress: Progress }) => void | Promise<void>;
  onStep?: (info: StepInfo) => void | Promise<void>;
  /** User state saved in, and restored from, checkpoints. */
  state?: ExtraState;
  /** Progress settings (total/start are filled in), or false for none. */
  progress?: Omit<ProgressOptions, 'total' | 'start' | 'elapsedOffset'> | false;
}

export interface TrainResult {
  /** Steps completed. */
  step: number;
  total: number;
  epoch: number;
  /** The step this session resumed from (null for a fresh start). */
  resumedFrom: number | null;
  /** The last checkpoint written or found (null without dir). */
  checkpoint: string | null;
  /** Last step's loss (NaN when no step ran in this session). */
  loss: number;
  /** Smoothed loss terms at the end of this session. */
  terms: Record<string, number>;
  /** Training time in seconds, all sessions together. */
  elapsedSeconds: number;
  configHash: string;
}

function nonFinite(x: number): string | null {
  return Number.isNaN(x) ? 'NaN' : Number.isFinite(x) ? null : 'Inf';
}

/** The name of the first parameter holding a NaN or Inf, or null. One host sync: x * 0 is 0 for every finite x, NaN otherwise. */
function firstNonFiniteParam(vars: readonly tf.Variable[], names: readonly string[]): string | null {
  const zeroIfFinite = (ts: readonly tf.Tensor[]): number => {
    const t = tf.tidy(() => tf.addN(ts.map((v) => tf.sum(tf.mul(v, 0)))));
    const x = t.dataSync()[0]!;
    t.dispose();
    return x;
  };
  if (!vars.length || zeroIfFinite(vars) === 0) return null;
  for (let i = 0; i < vars.length; i++) if (zeroIfFinite([vars[i]!]) !== 0) return names[i]!;
  return names[0]!;
}

function disposeAll(grads: Grads | null): void {
  if (grads) for (const g of Object.values(grads)) g.dispose();
}

/** Scalars and numbers to numbers (disposing the scalars). One host sync per tensor. */
function readTerms(terms: Terms | undefined): Record<string, number> {
  const out: Record<string, number> = {};
  if (!terms) return out;
  for (const [k, v] of Object.entries(terms)) out[k] = typeof v === 'number' ? v : v.dataSync()[0]!;
  for (const v of Object.values(terms)) if (typeof v !== 'number') v.dispose();
  return out;
}

/** Run (or resume) a training loop. */
export async function train<B>(opts: TrainOptions<B>): Promise<TrainResult> {
  const { params, optimizer, seed } = opts;
  const accumulate = opts.accumulate ?? 1;
  if (!Number.isSafeInteger(accumulate) || accumulate < 1) throw new Error(`train: accumulate must be a positive integer, got ${accumulate}`);
  if ((opts.lossFn === undefined) === (opts.gradFn === undefined)) throw new Error('train: give exactly one of lossFn and gradFn');
  let total: number;
  let stepsPerEpoch = 0;
  if (opts.epochs !== undefined) {
    if (opts.steps !== undefined) throw new Error('train: give steps or epochs, not both');
    stepsPerEpoch = opts.stepsPerEpoch ?? 0;
    if (!Number.isSafeInteger(stepsPerEpoch) || stepsPerEpoch < 1) throw new Error('train: epochs need stepsPerEpoch (a positive integer)');
    total = opts.epochs * stepsPerEpoch;
  } else {
    if (opts.steps === undefined) throw new Error('train: give steps or epochs');
    total = opts.steps;
  }
  if (!Number.isSafeInteger(total) || total < 0) throw new Error(`train: invalid number of steps ${total}`);
  const every = opts.checkpointEvery ?? 0;
  const epochOf = (step: number): number => (stepsPerEpoch > 0 ? Math.floor(step / stepsPerEpoch) : 0);

  const trainable = optimizer.trainableNames();
  for (const n of trainable) if (params[n] !== optimizer.params[n]) throw new Error(`train: the optimizer was built over other parameters ('${n}' differs)`);
  const trainableSet = new Set(trainable);
  const varList = trainable.map((n) => params[n]!);
  const nameOfVar = new Map(trainable.map((n) => [params[n]!.name, n]));

  const fullConfig = {
    config: opts.config ?? null,
    seed,
    accumulate,
    stepsPerEpoch: stepsPerEpoch || null,
    optimizer: optimizer.describe(),
    params: Object.fromEntries(Object.keys(params).sort().map((n) => [n, params[n]!.shape])),
  };
  const hash = configHash(fullConfig);

  // Resume (or start over).
  let start = 0;
  let resumedFrom: number | null = null;
  let elapsedOffset = 0;
  let lastCheckpoint: string | null = null;
  if (opts.dir !== undefined) {
    if (opts.resume === false) {
      for (const c of await listCheckpoints(opts.dir)) await rm(c.path, { recursive: true, force: true });
    } else {
      const ck = await loadCheckpoint(opts.dir, { configHash: hash, config: fullConfig });
      if (ck) {
        restoreParams(params, ck.params, ck.path);
        if (!ck.optimizer) throw new TrainError(`${ck.path}: checkpoint has no optimizer state`);
        try {
          optimizer.loadState(ck.optimizer);
        } catch (e) {
          throw new TrainError(`${ck.path}: ${(e as Error).message}`);
        }
        if (opts.state) opts.state.load((ck.metadata as { user?: unknown }).user ?? null);
        start = ck.step;
        resumedFrom = ck.step;
        elapsedOffset = ck.elapsedSeconds;
        lastCheckpoint = ck.path;
      }
    }
  }

  const pOpts = opts.progress === false ? { quiet: true } : opts.progress ?? {};
  const progress = new Progress({ ...pOpts, total, start, elapsedOffset });
  const now = pOpts.now ?? Date.now;
  const t0 = now();
  const elapsed = (): number => elapsedOffset + (now() - t0) / 1000;
  if (resumedFrom !== null) {
    progress.log(`${progress.label}: resumed from step ${resumedFrom}/${total} (${lastCheckpoint})`);
  }

  let savedStep = resumedFrom ?? -1;
  const checkpoint = async (step: number, loss: number): Promise<void> => {
    if (opts.dir === undefined || step === savedStep) return;
    lastCheckpoint = await saveCheckpoint(opts.dir, {
      step,
      epoch: epochOf(step),
      params,
      optimizer: optimizer.state(),
      rng: { seed, scheme: 'per-step: batch Rng(mixSeed(seed, stream, step, micro))' },
      configHash: hash,
      config: fullConfig,
      elapsedSeconds: elapsed(),
      metadata: { loss: Number.isFinite(loss) ? loss : null, user: opts.state ? opts.state.save() ?? null : null },
    }, { keep: opts.keepCheckpoints ?? 1 });
    savedStep = step;
  };

  const stopMessage = (step: number, what: string, terms: Record<string, number>): string => {
    const t = Object.entries(terms).map(([k, v]) => `${k} ${formatNumber(v)}`).join(', ');
    const ck = lastCheckpoint ? `last good checkpoint: ${lastCheckpoint} (step ${savedStep})` : 'no checkpoint was saved';
    return `training stopped at step ${step}/${total}: ${what}${t ? ` (${t})` : ''}; parameters were not updated; ${ck}`;
  };

  let lastLoss = NaN;
  try {
    for (let k = start; k < total; k++) {
      const epoch = epochOf(k);
      let acc: Grads | null = null;
      let lossSum = 0;
      const termSums: Record<string, number> = {};
      let info: StepInfo;
      try {
        for (let j = 0; j < accumulate; j++) {
          const bctx: BatchContext = { step: k, micro: j, accumulate, index: k * accumulate + j, epoch, total };
          const batch = await opts.batchFn(bctx, new Rng(mixSeed(seed, BATCH_STREAM, k, j)));
          const lctx: LossContext = { ...bctx, rng: new Rng(mixSeed(seed, LOSS_STREAM, k, j)), seed: mixSeed(seed, NOISE_STREAM, k, j) };
          let loss: number;
          let terms: Record<string, number>;
          let grads: Grads;
          try {
            if (opts.lossFn) {
              const lossFn = opts.lossFn;
              let rawTerms: Terms | undefined;
              const { value, grads: byVar } = tf.variableGrads(() => {
                const out = lossFn(params, batch, lctx);
                if (out instanceof tf.Tensor) return out;
                rawTerms = out.terms;
                if (rawTerms) for (const v of Object.values(rawTerms)) if (typeof v !== 'number') tf.keep(v);
                return out.loss;
              }, varList);
              loss = value.dataSync()[0]!;
              terms = readTerms(rawTerms); // a term may be the loss tensor itself: read before disposing
              value.dispose();
              grads = {};
              for (const [vn, g] of Object.entries(byVar)) grads[nameOfVar.get(vn)!] = g;
            } else {
              // Like tf.tidy (which cannot wrap an async function): what gradFn makes and does not
              // return or tf.keep is disposed when it returns or throws.
              const engine = tf.engine();
              engine.startScope();
              let out: GradOutput;
              try {
                out = await opts.gradFn!(params, batch, lctx);
              } catch (e) {
                engine.endScope();
                throw e;
              }
              engine.endScope([
                ...Object.values(out.grads),
                ...(typeof out.loss === 'number' ? [] : [out.loss]),
                ...Object.values(out.terms ?? {}).filter((v): v is tf.Scalar => typeof v !== 'number'),
              ]);
              loss = typeof out.loss === 'number' ? out.loss : out.loss.dataSync()[0]!;
              terms = readTerms(out.terms);
              if (typeof out.loss !== 'number') out.loss.dispose();
              grads = {};
              for (const [n, g] of Object.entries(out.grads)) {
                if (trainableSet.has(n)) grads[n] = g;
                else g.dispose();
              }
            }
          } finally {
            if (opts.disposeBatch !== false) tf.dispose(batch as unknown as tf.TensorContainer);
          }
          delete terms['loss'];
          const bad = nonFinite(loss);
          if (bad) {
            disposeAll(grads);
            throw new TrainError(stopMessage(k + 1, `the loss is ${bad}${accumulate > 1 ? ` in micro-batch ${j}` : ''}`, terms));
          }
          lossSum += loss;
          for (const [n, v] of Object.entries(terms)) termSums[n] = (termSums[n] ?? 0) + v;
          if (acc === null) acc = grads;
          else {
            const prev: Grads = acc;
            const next: Grads = {};
            for (const n of new Set([...Object.keys(prev), ...Object.keys(grads)])) {
              const a = prev[n];
              const b = grads[n];
              next[n] = a && b ? tf.add(a, b) : (a ?? b)!.clone();
            }
            disposeAll(prev);
            disposeAll(grads);
            acc = next;
          }
        }
        if (accumulate > 1 && acc) {
          const sum: Grads = acc;
          acc = Object.fromEntries(Object.entries(sum).map(([n, g]) => [n, tf.div(g, accumulate)]));
          disposeAll(sum);
        }
        const loss = lossSum / accumulate;
        const terms = Object.fromEntries(Object.entries(termSums).map(([n, v]) => [n, v / accumulate]));
        const gradNorm = globalNorm(acc ?? {});
        const bad = nonFinite(gradNorm);
        if (bad) throw new TrainError(stopMessage(k + 1, `the gradients are ${bad}`, { loss, ...terms }));
        const report = optimizer.step(acc ?? {}, { gradNorm });
        // Finite gradients can still overflow the update (a huge learning rate): stop before this
        // step's parameters reach a hook, an export or a checkpoint, so the last checkpoint stays good.
        const badParam = firstNonFiniteParam(varList, trainable);
        if (badParam) {
          const ck = lastCheckpoint ? `last good checkpoint: ${lastCheckpoint} (step ${savedStep})` : 'no checkpoint was saved';
          throw new TrainError(`training stopped at step ${k + 1}/${total}: the update made parameter '${badParam}' NaN or Inf (loss ${formatNumber(loss)}, gradient norm ${formatNumber(gradNorm)}; learning rate too high?); nothing from this step was saved; ${ck}`);
        }
        info = { step: k + 1, total, epoch: epochOf(k + 1), loss, terms, gradNorm, clipCoef: report.clipCoef, lr: report.lr };
      } finally {
        disposeAll(acc);
      }
      const done = k + 1;
      lastLoss = info.loss;
      progress.update(done, { loss: info.loss, ...info.terms });
      if (opts.onStep) await opts.onStep(info);
      if (opts.onEval && ((opts.evalEvery && done % opts.evalEvery === 0) || done === total)) {
        await opts.onEval({ step: done, epoch: epochOf(done), params, progress });
      }
      if ((every > 0 && done % every === 0) || done === total) await checkpoint(done, lastLoss);
    }
    if (start >= total && resumedFrom !== null) {
      progress.log(`${progress.label}: already complete (${resumedFrom}/${total} steps)`);
    }
  } finally {
    progress.finish();
  }
  return {
    step: Math.max(start, total),
    total,
    epoch: epochOf(Math.max(start, total)),
    resumedFrom,
    checkpoint: lastCheckpoint,
    loss: lastLoss,
    terms: progress.smoothed(),
    elapsedSeconds: elapsed(),
    configHash: hash,
  };
}

// ---- seeded data order for epoch training ----

let permCache: { n: number; seed: number; epoch: number; perm: Uint32Array } | null = null;

/** A permutation of 0..n-1 for `epoch`: a pure function of (n, seed, epoch) (Fisher-Yates). */
export function epochPermutation(n: number, seed: number, epoch: number): Uint32Array {
  if (permCache && permCache.n === n && permCache.seed === seed && permCache.epoch === epoch) return permCache.perm;
  const perm = new Uint32Array(n);
  for (let i = 0; i < n; i++) perm[i] = i;
  const rng = new Rng(mixSeed(seed, PERM_STREAM, epoch));
  for (let i = n - 1; i > 0; i--) {
    const j = rng.int(i + 1);
    const t = perm[i]!;
    perm[i] = perm[j]!;
    perm[j] = t;
  }
  permCache = { n, seed, epoch, perm };
  return perm;
}

/** Batches per epoch over n items (the last partial batch dropped). */
export function batchesPerEpoch(n: number, batchSize: number): number {
  return Math.floor(n / batchSize);
}

/**
 * Item indices of the `index`-th batch of a shuffled-epochs stream over n items: epoch
 * floor(index / batchesPerEpoch), positions taken in order from that epoch's permutation.
 * Stateless, so a resumed run sees the same order. Pass BatchContext.index as `index`.
 */
export function epochBatch(n: number, batchSize: number, seed: number, index: number): { epoch: number; indices: number[] } {
  const per = batchesPerEpoch(n, batchSize);
  if (per < 1) throw new Error(`epochBatch: batch size ${batchSize} is larger than the dataset (${n} items)`);
  const epoch = Math.floor(index / per);
  const pos = (index % per) * batchSize;
  const perm = epochPermutation(n, seed, epoch);
  return { epoch, indices: Array.from(perm.subarray(pos, pos + batchSize)) };
}
