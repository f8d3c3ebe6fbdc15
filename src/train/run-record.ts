// The training record a base model's manifest reports (flow, diffusion): the loss curve (mean loss
// over windows of steps), the first step's loss and the training time over every session. It lives
// in the checkpoints (train/loop.ts ExtraState), so a resumed run keeps one curve and one clock.
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { loadFloat32 } from '../io/safetensors.js';
import { copyFileAtomicSync, writeFileAtomic } from '../io/atomic.js';
import { captionWords, templates } from '../world/captions.js';
import type { Dataset } from '../world/dataset.js';
import type { TrainCaptions } from './world-data.js';
import type { Params } from './optim.js';
import { loadCheckpoint, restoreParams, type HostTensor } from './state.js';
import { sha256 } from '../world/util.js';

/** Round a loss for a manifest. */
export const r6 = (x: number): number => Number(x.toPrecision(6));

/** sha256 and size of a shipped file, for a manifest's `files`. */
export function fileInfo(path: string): { sha256: string; bytes: number } {
  const b = readFileSync(path);
  return { sha256: sha256(b), bytes: b.byteLength };
}

/**
 * Put the autoencoder a latent model decodes with into its bundle (a copy of `aePath`, unless it
 * is already there), list it in `files`, and return its training record (the ae.json beside it).
 */
export function bundleAutoencoder(aePath: string, outDir: string, files: Record<string, { sha256: string; bytes: number }>): unknown {
  const dst = join(outDir, 'ae.safetensors');
  if (resolve(aePath) !== resolve(dst)) copyFileAtomicSync(aePath, dst);
  files['ae.safetensors'] = fileInfo(dst);
  const aeJson = join(dirname(aePath), 'ae.json');
  return existsSync(aeJson) ? JSON.parse(readFileSync(aeJson, 'utf8')) : null;
}

export class RunRecord {
  curve: [number, number][] = [];
  firstLoss: number | null = null;
  private win = 0;
  private winN = 0;
  private secondsBefore = 0;
  private readonly sessionStart = Date.now();
  /** Steps per curve point: up to 50, about 20 points over the run. */
  readonly window: number;

  constructor(totalSteps: number) {
    this.window = Math.max(1, Math.min(50, Math.floor(totalSteps / 20)));
  }

  /** Training seconds, earlier sessions included. */
  seconds(): number {
    return this.secondsBefore + (Date.now() - this.sessionStart) / 1000;
  }

  /** Record the loss of step `step` (1-based). */
  add(step: number, loss: number): void {
    if (this.firstLoss === null) this.firstLoss = loss;
    this.win += loss;
    this.winN++;
    if (this.winN === this.window) {
      this.curve.push([step, r6(this.win / this.winN)]);
      this.win = 0;
      this.winN = 0;
    }
  }

  /** Checkpoint state (JSON). */
  save(): unknown {
    return { curve: this.curve, win: this.win, winN: this.winN, firstLoss: this.firstLoss, seconds: this.seconds() };
  }

  load(saved: unknown): void {
    const v = (saved ?? {}) as { curve?: [number, number][]; win?: number; winN?: number; firstLoss?: number | null; seconds?: number };
    this.secondsBefore = v.seconds ?? 0;
    this.curve = v.curve ?? [];
    this.win = v.win ?? 0;
    this.winN = v.winN ?? 0;
    this.firstLoss = v.firstLoss ?? null;
  }
}

/**
 * Write a model's manifest.json atomically, keeping the `quality` numbers of the one it replaces
 * (measured by other tools after training) across re-exports.
 */
export async function writeManifest(path: string, manifest: { quality: Record<string, unknown> }): Promise<void> {
  if (existsSync(path)) {
    try {
      const old = JSON.parse(readFileSync(path, 'utf8')) as { quality?: Record<string, unknown> };
      if (old.quality) manifest.quality = old.quality;
    } catch {
      // a broken old manifest is simply replaced
    }
  }
  await writeFileAtomic(path, JSON.stringify(manifest, null, 2) + '\n');
}

/**
 * Every word of the TRAIN captions a model is trained with (world-data.ts trainCaptionLists), sorted:
 * what its text encoder has read. `mce generate` names the prompt words outside it (cli/generate.ts
 * noteUnreadWords).
 */
export function trainCaptionWords({ styled, plain }: TrainCaptions): string[] {
  const words = new Set<string>();
  // Records of one concept and style share one list: read each list once.
  for (const list of new Set([...styled, ...plain])) for (const caption of list) for (const w of captionWords(caption)) words.add(w);
  return [...words].sort();
}

/** The manifest's `dataset` section of a base model trained on emoji-world with TRAIN captions. */
export function datasetRecord(config: object, data: { ds: Dataset } & TrainCaptions): Record<string, unknown> {
  const { ds } = data;
  return {
    ...config,
    hash: ds.hash,
    images: ds.n,
    concepts: ds.concepts.length,
    styles: ds.vendors,
    captions: `TRAIN templates and synonyms only (world/captions.ts split seed); ${templates('train', false).length} plain + ${templates('train', true).length} styled train templates`,
    caption_words: trainCaptionWords(data),
  };
}

/** The end of an earlier training stage that this run starts from (its last checkpoint). */
export interface StageInfo {
  path: string;
  step: number;
  seconds: number;
  curve: [number, number][];
  firstLoss: number | null;
  /** A model folder's whole chain, from its manifest: every step before this run, and the command that trained them. */
  chain?: { totalSteps?: number; command?: string };
}

/** A run's record as its manifest reports it (earlier stages folded in by withStage0). */
export interface RunInfo {
  step: number;
  elapsedSeconds: number;
  curve: [number, number][];
  firstLoss: number | null;
  init?: { checkpoint: string; step: number };
  /** The chain before the init stage, when a model folder's manifest records it. */
  chain?: StageInfo['chain'];
}

/**
 * Start from the last checkpoint of another run folder (an earlier stage), or from a shipped model
 * folder (a manifest.json beside its weights): restore its parameters into `params` and return its
 * record (steps, time, loss curve). A model folder holds BF16 weights, so a stage started from it
 * begins from the rounded values; a checkpoint folder gives the exact F32 ones. `vocabHash` (the
 * trainer's sha256 of its vocabulary ids) is checked against a model folder's text encoder.
 */
export async function loadInitStage(dir: string, params: Params, where: string, vocabHash?: string): Promise<StageInfo> {
  if (existsSync(join(dir, 'manifest.json'))) return loadInitBundle(dir, params, where, vocabHash);
  const ck = await loadCheckpoint(dir);
  if (!ck) throw new Error(`${where}: train.init: no checkpoint in ${dir}`);
  restoreParams(params, ck.params, ck.path);
  const user = ((ck.metadata as { user?: unknown }).user ?? {}) as { curve?: [number, number][]; firstLoss?: number | null; seconds?: number };
  return { path: ck.path, step: ck.step, seconds: user.seconds ?? ck.elapsedSeconds, curve: user.curve ?? [], firstLoss: user.firstLoss ?? null };
}

/**
 * A shipped model folder as an init stage: every safetensors file its manifest lists, except the
 * autoencoder (frozen, not a trainer parameter). The text encoder's tensors are the trainer's
 * "text." parameters; its vocabulary must be the one this run's tokenizer builds.
 */
async function loadInitBundle(dir: string, params: Params, where: string, vocabHash?: string): Promise<StageInfo> {
  const manifestPath = join(dir, 'manifest.json');
  const m = JSON.parse(readFileSync(manifestPath, 'utf8')) as {
    files?: Record<string, unknown>;
    training?: { steps?: number; total_steps?: number; command?: string; seconds?: number; loss_curve?: [number, number][]; loss_first_step?: number | null };
  };
  const files = Object.keys(m.files ?? {}).filter((f) => f.endsWith('.safetensors') && f !== 'ae.safetensors');
  if (!files.length) throw new Error(`${where}: train.init: ${manifestPath} lists no weight files`);
  const saved: Record<string, HostTensor> = {};
  for (const f of files) {
    const { tensors } = await loadFloat32(join(dir, f));
    const text = f === 'text_encoder.safetensors';
    for (const [name, t] of Object.entries(tensors)) {
      if (text && name === 'vocab.clip_ids') {
        if (vocabHash !== undefined && sha256(Array.from(t.data).join(',')) !== vocabHash) {
          throw new Error(`${where}: train.init: the text encoder in ${dir} was trained on another vocabulary than this run's tokenizer builds`);
        }
        continue;
      }
      saved[text ? `text.${name}` : name] = { shape: t.shape, data: t.data };
    }
  }
  restoreParams(params, saved, `${where}: train.init ${dir}`);
  const tr = m.training ?? {};
  const chain = { totalSteps: tr.total_steps, command: tr.command };
  return { path: dir, step: tr.steps ?? 0, seconds: tr.seconds ?? 0, curve: tr.loss_curve ?? [], firstLoss: tr.loss_first_step ?? null, chain };
}

/** Fold an earlier stage into this run's record: steps, time and loss curve continue from it. */
export function withStage0(s: StageInfo | null, r: RunInfo): RunInfo {
  if (!s) return r;
  return {
    step: s.step + r.step,
    elapsedSeconds: s.seconds + r.elapsedSeconds,
    curve: [...s.curve, ...r.curve.map(([k, l]): [number, number] => [s.step + k, l])],
    firstLoss: s.firstLoss ?? r.firstLoss,
    init: { checkpoint: s.path, step: s.step },
    chain: s.chain,
  };
}

/** Steps taken in this stage alone (a run's step counts its init checkpoint's steps too). */
export function stageSteps(r: RunInfo): number {
  return r.step - (r.init?.step ?? 0);
}

/**
 * Steps of the whole chain of stages up to this one: an init model folder's manifest counts them
 * (training.total_steps); for a checkpoint folder, whose step may count only its own stage's, a
 * config's `notes.prior_steps` does.
 */
export function totalSteps(r: RunInfo, notes: Record<string, unknown> | undefined): number {
  const prior = notes?.['prior_steps'];
  return (r.chain?.totalSteps ?? (typeof prior === 'number' ? prior : r.init?.step ?? 0)) + stageSteps(r);
}

/**
 * The command line that reproduces an export: the earlier stages' chain (an init model folder's
 * training.command, else the config's `notes.stage1_command`), then this stage, stopped where this
 * export was taken when that is before the planned end.
 */
export function trainingCommand(kind: string, configPath: string, run: RunInfo, plannedSteps: number, notes: Record<string, unknown> | undefined): string {
  const before = run.chain?.command ?? notes?.['stage1_command'];
  const chain = run.init && typeof before === 'string' ? `${before} && ` : '';
  return `${chain}mce train ${kind} --config ${configPath}` + (stageSteps(run) < plannedSteps ? ` --max-steps ${stageSteps(run)}` : '');
}

/** The manifest's record of a run's weight average (null when the last step's weights are shipped). */
export function emaRecord(decay: number | undefined): Record<string, unknown> | null {
  if (decay === undefined) return null;
  return { decay, warmup: 'min(decay, (1 + t) / (10 + t)) at step t', shipped: 'the exponential moving average of this run\'s parameters' };
}
