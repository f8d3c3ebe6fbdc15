// One training run of a base model (flow, diffusion): an optional init stage, AdamW with the shared
// schedule, the seeded resumable loop, the run record in every checkpoint, and exports every
// `exportEvery` steps and at the end. The trainers supply only their batches, loss and export.
import type { Tensor } from '../engine/tf.js';
import { tf } from '../engine/tf.js';
import { AdamW, type Params } from './optim.js';
import { train, type BatchContext, type LossOutput, type TrainResult } from './loop.js';
import { warmupCosine } from './common.js';
import type { Rng } from '../engine/rng.js';
import { loadInitStage, RunRecord, withStage0, type RunInfo, type StageInfo } from './run-record.js';

export interface BaseRunSettings {
  steps: number;
  lr: number;
  warmup: number;
  weightDecay: number;
  seed: number;
  checkpointEvery: number;
  exportEvery: number;
  /** A run folder (its last checkpoint) or a shipped model folder to start from (a later stage). */
  init?: string;
  /** Export the parameters' moving average with this decay (e.g. 0.999) instead of the last step's. */
  ema?: number;
}

/** What a caller of a base-model trainer (trainFlow, trainDiffusion) may set. */
export interface TrainRunOptions {
  /** Stop at this step (a later run resumes). */
  maxSteps?: number;
  progress?: boolean;
  log?: (s: string) => void;
}

export interface BaseRunOptions<B> {
  /** 'flow' | 'diffusion': the prefix of log lines and the progress label. */
  kind: string;
  train: BaseRunSettings;
  params: Params;
  /** The run folder (checkpoints). */
  dir: string;
  configPath: string;
  /** What a checkpoint must match to be resumed. */
  config: Record<string, unknown>;
  batchFn: (ctx: BatchContext, rng: Rng) => B;
  lossFn: (params: Params, batch: B) => LossOutput;
  /** Write the shipped files from `weights`: the moving average with `train.ema`, else the parameters. */
  exportModel: (run: RunInfo, weights: Record<string, Tensor>) => Promise<void>;
  outDir: string;
  maxSteps?: number;
  progress?: boolean;
  log: (s: string) => void;
}

export async function runBaseTraining<B>(o: BaseRunOptions<B>): Promise<TrainResult> {
  const t = o.train;
  let stage0: StageInfo | null = null;
  if (t.init) {
    const vocab = o.config['vocab'];
    stage0 = await loadInitStage(t.init, o.params, o.configPath, typeof vocab === 'string' ? vocab : undefined);
    o.log(`${o.kind}: initialised from ${stage0.path} (step ${stage0.step})`);
  }
  const optimizer = new AdamW(o.params, {
    lr: t.lr,
    weightDecay: t.weightDecay,
    maxGradNorm: 1.0,
    schedule: warmupCosine(t.warmup, t.steps),
    groups: [{ name: 'no-decay', match: /\.bias$|norm|ln_|scale$|embedding/, weightDecay: 0 }],
    ...(t.ema !== undefined ? { ema: t.ema } : {}),
  });
  // Loss curve and training time, saved in checkpoints so they survive resumes.
  const rec = new RunRecord(t.steps);
  const runInfo = (step: number): RunInfo => withStage0(stage0, { step, elapsedSeconds: rec.seconds(), curve: rec.curve, firstLoss: rec.firstLoss });
  const exportNow = (step: number): Promise<void> => o.exportModel(runInfo(step), optimizer.averaged());
  try {
    const result = await train<B>({
      params: o.params,
      optimizer,
      steps: o.maxSteps !== undefined ? Math.min(t.steps, o.maxSteps) : t.steps,
      seed: t.seed,
      dir: o.dir,
      checkpointEvery: t.checkpointEvery,
      config: o.config,
      state: { save: () => rec.save(), load: (s) => rec.load(s) },
      batchFn: o.batchFn,
      lossFn: o.lossFn,
      onStep: async (info) => {
        rec.add(info.step, info.loss);
        if (t.exportEvery > 0 && info.step % t.exportEvery === 0) {
          await exportNow(info.step);
          o.log(`${o.kind}: exported step ${info.step} to ${o.outDir}`);
        }
      },
      progress: o.progress === false ? false : { label: `train ${o.kind}`, tty: false, interval: 15_000 },
    });
    await exportNow(result.step);
    o.log(`${o.kind}: done, step ${result.step}, exported to ${o.outDir}`);
    return result;
  } finally {
    optimizer.dispose();
    tf.dispose(Object.values(o.params) as Tensor[]);
  }
}
