// Training checkpoints: parameters + optimizer state + counters + data-order state + config hash.
//
// Layout of a run folder:
//   DIR/ckpt-00000012/state.safetensors   tensors: 'params.<name>', 'optim.<m|v>.<name>' (F32)
//   DIR/ckpt-00000012/state.json          counters, optimizer step, rng/data state, config hash,
//                                         config, user metadata, sha256 of the tensors file
//
// A checkpoint is written into a hidden temporary folder (both files fsynced), then the folder is
// renamed to its final name in one step, and only then are older checkpoints removed. A kill at
// any moment therefore leaves the previous checkpoint intact and never a half-written one under a
// final name. Loading takes the highest-numbered ckpt-* folder, checks the config hash (a
// different config is refused with one clear line) and the tensors' sha256.
import { createHash, randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, readdir, readFile, rename, rm, open } from 'node:fs/promises';
import { join } from 'node:path';
import { tf, type Tensor } from '../engine/tf.js';
import { writeFileAtomic } from '../io/atomic.js';
import { loadFloat32, writeSafetensors, type WriteTensor } from '../io/safetensors.js';
import type { AdamWState, HostTensor } from './optim.js';

export type { HostTensor } from './optim.js';

/** A training problem a user can cause or must know about (bad checkpoint, config mismatch, NaN). One line. */
export class TrainError extends Error {
  constructor(message: string) {
    super(message.split('\n')[0]);
    this.name = 'TrainError';
  }
}

/** What a checkpoint holds. */
export interface CheckpointState {
  /** Optimizer steps completed. */
  step: number;
  /** Epochs completed (or the current epoch index; the loop stores floor(step / stepsPerEpoch)). */
  epoch?: number;
  /** Parameters by name (float32). */
  params: Record<string, Tensor | HostTensor>;
  /** Optimizer state (see AdamW.state()). */
  optimizer?: AdamWState;
  /** RNG / data-order state: any JSON value. */
  rng?: unknown;
  /** Hash of the run's configuration (see configHash); a resume with another hash is refused. */
  configHash: string;
  /** The configuration itself (JSON), so a mismatch can say what changed. */
  config?: unknown;
  /** Training time so far, summed over resumed sessions. */
  elapsedSeconds?: number;
  /** Anything else (JSON): loss history, user state. */
  metadata?: Record<string, unknown>;
}

/** A checkpoint read back: everything in host memory. */
export interface LoadedCheckpoint {
  /** The checkpoint folder. */
  path: string;
  step: number;
  epoch: number;
  params: Record<string, HostTensor>;
  optimizer?: { step: number; tensors: Record<string, HostTensor> };
  rng?: unknown;
  configHash: string;
  config?: unknown;
  elapsedSeconds: number;
  metadata: Record<string, unknown>;
}

const FORMAT = 'mce-train-checkpoint';
const VERSION = 1;
const TENSORS = 'state.safetensors';
const JSON_FILE = 'state.json';
const CKPT_RE = /^ckpt-(\d{8,})$/;
const TMP_RE = /^\.ckpt-\d+\.(\d+)\.[0-9a-f]+\.tmp$/;

/** Folder name of the checkpoint after `step` steps. */
export function checkpointName(step: number): string {
  return `ckpt-${String(step).padStart(8, '0')}`;
}

/** JSON with object keys sorted at every level (undefined members dropped), for hashing. */
export function canonicalJson(value: unknown): string {
  const walk = (v: unknown): unknown => {
    if (v === null || typeof v !== 'object') {
      if (typeof v === 'number' && !Number.isFinite(v)) return String(v);
      if (typeof v === 'function' || typeof v === 'symbol') return undefined;
      return v;
    }
    if (Array.isArray(v)) return v.map((x) => walk(x) ?? null);
    if (v instanceof RegExp) return v.toString();
    const out: Record<string, unknown> = {};
    for (const k of Object.keys(v as object).sort()) {
      const w = walk((v as Record<string, unknown>)[k]);
      if (w !== undefined) out[k] = w;
    }
    return out;
  };
  return JSON.stringify(walk(value)) ?? 'null';
}

/** A short stable hash of a JSON-able configuration (sha256 of its canonical JSON, 16 hex digits). */
export function configHash(config: unknown): string {
  return createHash('sha256').update(canonicalJson(config)).digest('hex').slice(0, 16);
}

/** The first few leaf paths where two JSON configs differ, as 'a.b (x -> y)'. */
export function configDiff(before: unknown, after: unknown, limit = 3): string[] {
  const out: string[] = [];
  const short = (v: unknown): string => {
    const s = v === undefined ? 'absent' : canonicalJson(v);
    return s.length > 40 ? `${s.slice(0, 37)}...` : s;
  };
  const walk = (a: unknown, b: unknown, path: string): void => {
    if (out.length >= limit) return;
    const obj = (x: unknown): x is Record<string, unknown> => x !== null && typeof x === 'object' && !Array.isArray(x);
    if (obj(a) && obj(b)) {
      for (const k of [...new Set([...Object.keys(a), ...Object.keys(b)])].sort()) walk(a[k], b[k], path ? `${path}.${k}` : k);
      return;
    }
    if (canonicalJson(a) !== canonicalJson(b)) out.push(`${path || '(root)'} (${short(a)} -> ${short(b)})`);
  };
  walk(JSON.parse(canonicalJson(before ?? null)), JSON.parse(canonicalJson(after ?? null)), '');
  return out;
}

function toHost(t: Tensor | HostTensor, what: string): HostTensor {
  if (t instanceof tf.Tensor) {
    if (t.dtype !== 'float32') throw new Error(`${what} is ${t.dtype}; checkpoints hold float32 tensors`);
    return { shape: [...t.shape], data: t.dataSync() as Float32Array };
  }
  return t;
}

async function sha256File(path: string): Promise<string> {
  return createHash('sha256').update(await readFile(path)).digest('hex');
}

function pidAlive(pid: number): boolean {
  if (pid === process.pid) return true;
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

async function fsyncDir(dir: string): Promise<void> {
  try {
    const d = await open(dir, 'r');
    try { await d.sync(); } finally { await d.close(); }
  } catch { /* best effort */ }
}

/** Checkpoint folders in `dir`, newest (highest step) first. */
export async function listCheckpoints(dir: string): Promise<{ step: number; path: string }[]> {
  let names: string[];
  try {
    names = await readdir(dir);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw new TrainError(`${dir}: cannot read checkpoint folder: ${(e as Error).message}`);
  }
  return names
    .map((n) => ({ n, m: CKPT_RE.exec(n) }))
    .filter((x) => x.m !== null)
    .map((x) => ({ step: Number(x.m![1]), path: join(dir, x.n) }))
    .sort((a, b) => b.step - a.step);
}

/** Remove temporary folders left by killed writers (never one of a live process). */
async function removeStaleTemps(dir: string): Promise<void> {
  let names: string[];
  try {
    names = await readdir(dir);
  } catch {
    return;
  }
  for (const n of names) {
    const m = TMP_RE.exec(n);
    if (m && !pidAlive(Number(m[1]))) {
      await rm(join(dir, n), { recursive: true, force: true });
    }
  }
}

export interface SaveOptions {
  /** How many checkpoints to keep (newest first); default 1. Older ones go only after the new one is in place. */
  keep?: number;
}

/** Save a checkpoint into `dir` atomically; returns its folder. */
export async function saveCheckpoint(dir: string, state: CheckpointState, opts: SaveOptions = {}): Promise<string> {
  const keep = Math.max(1, opts.keep ?? 1);
  if (!Number.isSafeInteger(state.step) || state.step < 0) throw new Error(`saveCheckpoint: invalid step ${state.step}`);
  await mkdir(dir, { recursive: true });
  await removeStaleTemps(dir);

  const tensors: Record<string, WriteTensor> = {};
  const add = (key: string, t: Tensor | HostTensor): void => {
    const h = toHost(t, `'${key}'`);
    tensors[key] = { dtype: 'F32', shape: h.shape, data: h.data };
  };
  for (const [name, t] of Object.entries(state.params)) add(`params.${name}`, t);
  if (state.optimizer) for (const [name, t] of Object.entries(state.optimizer.tensors)) add(`optim.${name}`, t);

  const final = join(dir, checkpointName(state.step));
  const tmp = join(dir, `.${checkpointName(state.step)}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`);
  await mkdir(tmp);
  try {
    const tensorPath = join(tmp, TENSORS);
    await writeSafetensors(tensorPath, tensors, { format: FORMAT, step: String(state.step) });
    const json = {
      format: FORMAT,
      version: VERSION,
      step: state.step,
      epoch: state.epoch ?? 0,
      configHash: state.configHash,
      config: state.config ?? null,
      optimizer: state.optimizer ? { step: state.optimizer.step } : null,
      rng: state.rng ?? null,
      elapsedSeconds: state.elapsedSeconds ?? 0,
      metadata: state.metadata ?? {},
      tensors: { file: TENSORS, sha256: await sha256File(tensorPath), names: Object.keys(tensors).sort() },
    };
    await writeFileAtomic(join(tmp, JSON_FILE), `${JSON.stringify(json, null, 2)}\n`);
    if (existsSync(final)) {
      // Re-saving the same step: move the old one aside first (a rename cannot replace a folder).
      const old = join(dir, `.${checkpointName(state.step)}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`);
      await rename(final, old);
      await rename(tmp, final);
      await rm(old, { recursive: true, force: true });
    } else {
      await rename(tmp, final);
    }
    await fsyncDir(dir);
  } catch (e) {
    await rm(tmp, { recursive: true, force: true });
    throw new TrainError(`${final}: cannot save checkpoint: ${(e as Error).message}`);
  }
  const all = await listCheckpoints(dir);
  for (const c of all.slice(keep)) await rm(c.path, { recursive: true, force: true });
  return final;
}

export interface LoadOptions {
  /** Refuse (TrainError) a checkpoint made with another config hash. */
  configHash?: string;
  /** The current config, to name what changed in the refusal. */
  config?: unknown;
}

interface StateJson {
  format: string;
  version: number;
  step: number;
  epoch: number;
  configHash: string;
  config: unknown;
  optimizer: { step: number } | null;
  rng: unknown;
  elapsedSeconds: number;
  metadata: Record<string, unknown>;
  tensors: { file: string; sha256: string; names: string[] };
}

/** Read one checkpoint folder. */
export async function readCheckpoint(path: string, opts: LoadOptions = {}): Promise<LoadedCheckpoint> {
  let meta: StateJson;
  try {
    meta = JSON.parse(await readFile(join(path, JSON_FILE), 'utf8')) as StateJson;
  } catch (e) {
    throw new TrainError(`${path}: unreadable checkpoint (${JSON_FILE}: ${(e as Error).message.split('\n')[0]})`);
  }
  if (meta.format !== FORMAT || meta.version !== VERSION) {
    throw new TrainError(`${path}: not an mce training checkpoint (format ${JSON.stringify(meta.format)} version ${JSON.stringify(meta.version)})`);
  }
  if (opts.configHash !== undefined && meta.configHash !== opts.configHash) {
    const diff = opts.config !== undefined && meta.config !== null ? configDiff(meta.config, opts.config) : [];
    throw new TrainError(
      `${path}: refusing to resume: the checkpoint was made with a different config (hash ${meta.configHash}, now ${opts.configHash}` +
      `${diff.length ? `; changed: ${diff.join(', ')}` : ''}); use another output folder or delete this one to start over`,
    );
  }
  const tensorPath = join(path, meta.tensors.file);
  let digest: string;
  try {
    digest = await sha256File(tensorPath);
  } catch (e) {
    throw new TrainError(`${path}: unreadable checkpoint (${(e as Error).message.split('\n')[0]})`);
  }
  if (digest !== meta.tensors.sha256) throw new TrainError(`${tensorPath}: checksum mismatch, the checkpoint is corrupt`);
  const { tensors } = await loadFloat32(tensorPath);
  const params: Record<string, HostTensor> = {};
  const optim: Record<string, HostTensor> = {};
  for (const [key, t] of Object.entries(tensors)) {
    const h = { shape: t.shape, data: t.data };
    if (key.startsWith('params.')) params[key.slice('params.'.length)] = h;
    else if (key.startsWith('optim.')) optim[key.slice('optim.'.length)] = h;
    else throw new TrainError(`${tensorPath}: unexpected tensor '${key}'`);
  }
  return {
    path,
    step: meta.step,
    epoch: meta.epoch,
    params,
    ...(meta.optimizer ? { optimizer: { step: meta.optimizer.step, tensors: optim } } : {}),
    rng: meta.rng ?? undefined,
    configHash: meta.configHash,
    config: meta.config ?? undefined,
    elapsedSeconds: meta.elapsedSeconds,
    metadata: meta.metadata ?? {},
  };
}

/** The newest checkpoint in `dir`, or null when there is none. Stale temporary folders are cleaned up. */
export async function loadCheckpoint(dir: string, opts: LoadOptions = {}): Promise<LoadedCheckpoint | null> {
  await removeStaleTemps(dir);
  const [newest] = await listCheckpoints(dir);
  return newest ? readCheckpoint(newest.path, opts) : null;
}

/** Copy host tensors into variables (same names and shapes, else TrainError). */
export function restoreParams(params: Record<string, tf.Variable>, saved: Record<string, HostTensor>, where = 'checkpoint'): void {
  const want = Object.keys(params).sort();
  const have = Object.keys(saved).sort();
  const missing = want.filter((n) => !(n in saved));
  const extra = have.filter((n) => !(n in params));
  if (missing.length || extra.length) {
    throw new TrainError(`${where}: parameters do not match the model (${[
      missing.length ? `missing ${missing.slice(0, 3).join(', ')}${missing.length > 3 ? ', ...' : ''}` : '',
      extra.length ? `unexpected ${extra.slice(0, 3).join(', ')}${extra.length > 3 ? ', ...' : ''}` : '',
    ].filter(Boolean).join('; ')})`);
  }
  for (const n of want) {
    const v = params[n]!;
    const s = saved[n]!;
    if (!tf.util.arraysEqual(v.shape, s.shape)) {
      throw new TrainError(`${where}: parameter '${n}' has shape [${s.shape.join(', ')}], the model has [${v.shape.join(', ')}]`);
    }
  }
  for (const n of want) {
    const s = saved[n]!;
    tf.tidy(() => params[n]!.assign(tf.tensor(s.data, s.shape, 'float32')));
  }
}

/** Write parameters as one F32 safetensors file (atomic, deterministic bytes). */
export async function writeParams(path: string, params: Record<string, Tensor | HostTensor>, metadata: Record<string, string> = {}): Promise<void> {
  const tensors: Record<string, WriteTensor> = {};
  for (const [name, t] of Object.entries(params)) {
    const h = toHost(t, `parameter '${name}'`);
    tensors[name] = { dtype: 'F32', shape: h.shape, data: h.data };
  }
  await writeSafetensors(path, tensors, metadata);
}
