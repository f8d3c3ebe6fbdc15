// FLUX checkpoints: recognise, validate, load (either naming -> reference names, any float dtype ->
// F32) and save (either naming, F32 / F16 / BF16). Also the FLUX autoencoder in either naming.
//
// Every error a user can cause is one line starting with the file's path: unreadable or truncated
// file, not a FLUX checkpoint, missing / unexpected tensors (the first few listed), wrong shapes.
// Loading streams: the header first, then one tensor at a time; a diffusers tensor is copied into its
// rows of the reference tensor as soon as it is read, so the peak is the output plus one tensor.
import { tf, type Tensor } from '../engine/tf.js';
import { SafetensorsError, SafetensorsFile, SafetensorsWriter, type Dtype, type TensorEntry } from './safetensors.js';
import {
  aeDiffusersToReference,
  aeReferenceToDiffusers,
  detectAeNaming,
  detectFluxNaming,
  fluxNameMap,
  fluxPrefix,
  fluxSpecs,
  inferFluxLayout,
  type FluxLayout,
  type Naming,
} from './names.js';

/** A checkpoint that cannot be used, as one line starting with its path. */
export class CheckpointError extends Error {
  constructor(message: string) {
    super(message.split('\n')[0]);
    this.name = 'CheckpointError';
  }
}

/** A tensor in memory as float32 with its shape. */
export interface F32Tensor {
  shape: number[];
  data: Float32Array;
}

const FLOAT_DTYPES: ReadonlySet<Dtype> = new Set(['F32', 'F16', 'BF16', 'F64']);

function firstFew(xs: readonly string[], n = 5): string {
  return xs.slice(0, n).join(', ') + (xs.length > n ? `, ... (${xs.length - n} more)` : '');
}

const fmt = (s: readonly number[]): string => `[${s.join(', ')}]`;

async function openChecked(path: string): Promise<SafetensorsFile> {
  try {
    return await SafetensorsFile.open(path);
  } catch (e) {
    throw new CheckpointError((e as Error).message);
  }
}

/** Recognise, or fail in one line (a LoRA file gets its own message). */
function recognizeOrFail(path: string, f: SafetensorsFile, presets?: Readonly<Record<string, FluxLayout>>): FluxRecognition {
  if (f.names.some((n) => /\.(lora_A|lora_B|lora\.down|lora\.up|lora_down|lora_up)(\.default)?\.weight$/.test(n))) {
    throw new CheckpointError(`${path}: is a LoRA (lora_A / lora_B tensors), not a full checkpoint: apply it to a model instead`);
  }
  let r: FluxRecognition | null;
  try {
    r = recognizeFlux(f.entries, presets);
  } catch (e) {
    throw new CheckpointError(`${path}: ${(e as Error).message}`);
  }
  if (!r) throw new CheckpointError(`${path}: not a FLUX transformer checkpoint (no reference or diffusers FLUX tensor names among its ${f.entries.size} tensors, e.g. ${firstFew(f.names, 3)})`);
  return r;
}

/** The layout fields that identify a preset. */
const LAYOUT_KEYS = [
  'in_channels', 'out_channels', 'vec_in_dim', 'context_in_dim', 'hidden_size', 'mlp_ratio', 'num_heads', 'depth',
  'depth_single_blocks', 'qkv_bias', 'guidance_embed',
] as const;

function sameLayout(a: FluxLayout, b: FluxLayout): boolean {
  return LAYOUT_KEYS.every((k) => a[k] === b[k]);
}

/** What a header says about a FLUX transformer checkpoint. */
export interface FluxRecognition {
  naming: Naming;
  /** Prefix in front of the transformer names ('' when none), e.g. 'model.diffusion_model.'. */
  prefix: string;
  /** The config the names and shapes describe. */
  layout: FluxLayout;
  /** The name of the matching preset from the table passed in, or null. */
  preset: string | null;
  /** Transformer tensors, by stored (prefixed) name. */
  tensors: number;
  /** Tensors per stored dtype. */
  dtypes: Partial<Record<Dtype, number>>;
}

/**
 * Recognise a FLUX transformer from a header's names and shapes (no data read). Returns null when
 * the names are neither reference nor diffusers FLUX names. Throws one line when they are FLUX
 * names but the config cannot be read off them.
 */
export function recognizeFlux(
  entries: ReadonlyMap<string, Pick<TensorEntry, 'shape' | 'dtype'>>,
  presets: Readonly<Record<string, FluxLayout>> = {},
): FluxRecognition | null {
  const prefix = fluxPrefix(entries.keys());
  const shapes = new Map<string, readonly number[]>();
  const dtypes: Partial<Record<Dtype, number>> = {};
  for (const [n, e] of entries) {
    if (prefix && !n.startsWith(prefix)) continue;
    shapes.set(n.slice(prefix.length), e.shape);
    dtypes[e.dtype] = (dtypes[e.dtype] ?? 0) + 1;
  }
  const naming = detectFluxNaming(shapes.keys());
  if (!naming) return null;
  const layout = inferFluxLayout(shapes, naming);
  const preset = Object.entries(presets).find(([, p]) => sameLayout(p, layout))?.[0] ?? null;
  return { naming, prefix, layout, preset, tensors: shapes.size, dtypes };
}

/** Header-only look at a FLUX checkpoint file (for `mce inspect`). Throws CheckpointError when it is not one. */
export async function inspectFluxCheckpoint(path: string, presets: Readonly<Record<string, FluxLayout>> = {}): Promise<FluxRecognition> {
  const f = await openChecked(path);
  try {
    return recognizeOrFail(path, f, presets);
  } finally {
    await f.close();
  }
}

export interface LoadFluxOptions {
  /**
   * The config the file must match (a FluxParams works). Without it the config is read off the
   * file, and the file must then be complete and consistent for that config.
   */
  layout?: FluxLayout;
  /** Presets to name in the result. */
  presets?: Readonly<Record<string, FluxLayout>>;
}

export interface LoadedFluxCheckpoint extends FluxRecognition {
  path: string;
  /** Reference-named float32 weights, torch layouts. */
  weights: Record<string, F32Tensor>;
  metadata: Record<string, string>;
}

/** Compare a name -> shape record with the expected specs; a one-line reason or null. */
export function checkNamesAndShapes(
  got: ReadonlyMap<string, readonly number[]>,
  want: ReadonlyMap<string, readonly number[]>,
): string | null {
  const missing = [...want.keys()].filter((n) => !got.has(n));
  const unexpected = [...got.keys()].filter((n) => !want.has(n));
  const parts: string[] = [];
  if (missing.length) parts.push(`missing ${missing.length} tensor(s): ${firstFew(missing)}`);
  if (unexpected.length) parts.push(`unexpected ${unexpected.length} tensor(s): ${firstFew(unexpected)}`);
  if (parts.length) return parts.join('; ');
  const wrong: string[] = [];
  for (const [n, s] of want) {
    const g = got.get(n)!;
    if (g.length !== s.length || g.some((d, i) => d !== s[i])) wrong.push(`'${n}' has shape ${fmt(g)}, expected ${fmt(s)}`);
  }
  if (wrong.length) return `${wrong.length} tensor(s) with the wrong shape: ${firstFew(wrong, 3)}`;
  return null;
}

function describe(l: FluxLayout): string {
  return `hidden ${l.hidden_size}, ${l.depth} double + ${l.depth_single_blocks} single blocks${l.guidance_embed ? ', guidance' : ''}`;
}

/**
 * Load a FLUX transformer checkpoint in reference or diffusers naming (optionally behind a
 * `model.diffusion_model.` / `diffusion_model.` / `transformer.` prefix; other tensors of a
 * bundled file are ignored), any float dtype, into reference-named F32 weights.
 */
export async function loadFluxCheckpoint(path: string, opts: LoadFluxOptions = {}): Promise<LoadedFluxCheckpoint> {
  const f = await openChecked(path);
  try {
    const rec = recognizeOrFail(path, f, opts.presets);
    const layout = opts.layout ?? rec.layout;
    const { naming, prefix } = rec;
    const stored = new Map<string, readonly number[]>();
    for (const [n, e] of f.entries) if (!prefix || n.startsWith(prefix)) stored.set(n.slice(prefix.length), e.shape);
    const map = fluxNameMap(layout);
    const why = checkNamesAndShapes(stored, map.specs(naming));
    if (why) {
      const what = opts.layout ? `the expected FLUX config (${describe(layout)})` : `a complete FLUX checkpoint (${describe(layout)}, read off the file)`;
      throw new CheckpointError(`${path}: does not match ${what}, ${naming} names: ${why}`);
    }
    const nonFloat = [...stored.keys()].filter((n) => !FLOAT_DTYPES.has(f.entry(prefix + n).dtype));
    if (nonFloat.length) throw new CheckpointError(`${path}: ${nonFloat.length} tensor(s) are not floating point, e.g. '${prefix + nonFloat[0]}' is ${f.entry(prefix + nonFloat[0]).dtype}`);

    const weights: Record<string, F32Tensor> = {};
    for (const s of map.reference) weights[s.name] = { shape: [...s.shape], data: new Float32Array(s.shape.reduce((a, b) => a * b, 1)) };
    // Read in file order (sequential I/O), placing each tensor's rows.
    for (const full of f.names) {
      if (prefix && !full.startsWith(prefix)) continue;
      const name = full.slice(prefix.length);
      let data: Float32Array;
      try {
        data = await f.readFloat32(full);
      } catch (e) {
        throw new CheckpointError(e instanceof SafetensorsError ? e.message : `${path}: reading '${full}': ${(e as Error).message}`);
      }
      if (naming === 'reference') {
        weights[name]!.data.set(data);
        continue;
      }
      for (const k of map.byDiffusers.get(name)!) {
        const w = weights[k.reference]!;
        const rs = w.shape.slice(1).reduce((a, b) => a * b, 1);
        w.data.set(data.subarray(k.diffRows[0] * rs, k.diffRows[1] * rs), k.refRows[0] * rs);
      }
    }
    return { ...rec, layout, path, weights, metadata: { ...f.metadata } };
  } finally {
    await f.close();
  }
}

export interface SaveOptions {
  naming?: Naming;
  dtype?: 'F32' | 'F16' | 'BF16';
  metadata?: Record<string, string>;
  /** Prefix to put in front of every name (e.g. 'model.diffusion_model.'). */
  prefix?: string;
}

async function hostData(t: F32Tensor | Tensor): Promise<Float32Array> {
  if (t instanceof tf.Tensor) return (await t.data()) as Float32Array;
  return t.data;
}

/**
 * Save reference-named FLUX weights (host arrays or tensors) in either naming, atomically, one
 * tensor at a time. The weights must be exactly the layout's parameters.
 */
export async function saveFluxCheckpoint(
  path: string,
  weights: Readonly<Record<string, F32Tensor | Tensor>>,
  layout: FluxLayout,
  opts: SaveOptions = {},
): Promise<void> {
  const naming = opts.naming ?? 'reference';
  const dtype = opts.dtype ?? 'F32';
  const prefix = opts.prefix ?? '';
  const map = fluxNameMap(layout);
  const why = checkNamesAndShapes(new Map(Object.entries(weights).map(([n, t]) => [n, t.shape])), map.specs('reference'));
  if (why) throw new CheckpointError(`${path}: the weights to save do not match the FLUX config (${describe(layout)}): ${why}`);
  const specs = fluxSpecs(layout, naming);
  const w = await SafetensorsWriter.create(
    path,
    specs.map((s) => ({ name: prefix + s.name, dtype, shape: s.shape })),
    { format: 'pt', ...(opts.metadata ?? {}) },
  );
  try {
    if (naming === 'reference') {
      for (const s of specs) await w.write(prefix + s.name, await hostData(weights[s.name]!));
    } else {
      // Each diffusers tensor is row ranges of reference tensors; keep the current source's data.
      let cacheName = '';
      let cache: Float32Array = new Float32Array(0);
      for (const s of specs) {
        const out = new Float32Array(s.shape.reduce((a, b) => a * b, 1));
        const rs = s.shape.slice(1).reduce((a, b) => a * b, 1);
        for (const k of map.byDiffusers.get(s.name)!) {
          if (k.reference !== cacheName) {
            cache = await hostData(weights[k.reference]!);
            cacheName = k.reference;
          }
          out.set(cache.subarray(k.refRows[0] * rs, k.refRows[1] * rs), k.diffRows[0] * rs);
        }
        await w.write(prefix + s.name, out);
      }
    }
  } catch (e) {
    await w.abort();
    throw e;
  }
  await w.finish();
}

// ------------------------------------------------------------------ autoencoder

export interface LoadedAeCheckpoint {
  path: string;
  naming: Naming;
  prefix: string;
  weights: Record<string, F32Tensor>;
  dtypes: Partial<Record<Dtype, number>>;
}

const AE_PREFIXES = ['first_stage_model.', 'vae.', 'ae.'];

/**
 * Load a FLUX autoencoder checkpoint (reference `ae.safetensors` names or diffusers AutoencoderKL
 * names, optionally behind `vae.` / `first_stage_model.`) into reference-named F32 weights, checked
 * against `expected` (models/flux autoEncoderParamShapes). Diffusers attention weights [C, C] become
 * 1x1 conv weights [C, C, 1, 1].
 */
export async function loadAutoEncoderCheckpoint(path: string, expected: readonly (readonly [string, readonly number[]])[]): Promise<LoadedAeCheckpoint> {
  const want = new Map(expected.map(([n, s]) => [n, s]));
  const levels = 1 + Math.max(0, ...[...want.keys()].map((n) => Number(n.match(/^encoder\.down\.(\d+)\./)?.[1] ?? 0)));
  const f = await openChecked(path);
  try {
    const prefix = AE_PREFIXES.find((p) => f.names.some((n) => n.startsWith(`${p}encoder.`))) ?? '';
    const names = f.names.filter((n) => n.startsWith(prefix)).map((n) => n.slice(prefix.length));
    const naming = detectAeNaming(names);
    if (!naming) throw new CheckpointError(`${path}: not an autoencoder checkpoint (no encoder/decoder tensor names among its ${f.entries.size} tensors)`);
    const toRef = new Map<string, string>();
    const unknown: string[] = [];
    for (const n of names) {
      const r = naming === 'reference' ? n : aeDiffusersToReference(n, levels);
      if (r) toRef.set(n, r);
      else unknown.push(n);
    }
    const got = new Map<string, readonly number[]>();
    for (const [n, r] of toRef) {
      const s = f.entry(prefix + n).shape;
      got.set(r, /\.mid\.attn_1\.(q|k|v|proj_out)\.weight$/.test(r) && s.length === 2 ? [...s, 1, 1] : s);
    }
    for (const u of unknown) got.set(u, f.entry(prefix + u).shape);
    const why = checkNamesAndShapes(got, want);
    if (why) throw new CheckpointError(`${path}: does not match the autoencoder config, ${naming} names: ${why}`);
    const weights: Record<string, F32Tensor> = {};
    const dtypes: Partial<Record<Dtype, number>> = {};
    for (const [n, r] of toRef) {
      const e = f.entry(prefix + n);
      if (!FLOAT_DTYPES.has(e.dtype)) throw new CheckpointError(`${path}: '${prefix + n}' is ${e.dtype}, not floating point`);
      dtypes[e.dtype] = (dtypes[e.dtype] ?? 0) + 1;
      let data: Float32Array;
      try {
        data = await f.readFloat32(prefix + n);
      } catch (e2) {
        throw new CheckpointError((e2 as Error).message);
      }
      weights[r] = { shape: [...want.get(r)!], data };
    }
    return { path, naming, prefix, weights, dtypes };
  } finally {
    await f.close();
  }
}

/** Save reference-named autoencoder weights in either naming (diffusers attention weights as [C, C]). */
export async function saveAutoEncoderCheckpoint(
  path: string,
  weights: Readonly<Record<string, F32Tensor | Tensor>>,
  levels: number,
  opts: SaveOptions = {},
): Promise<void> {
  const naming = opts.naming ?? 'reference';
  const dtype = opts.dtype ?? 'F32';
  const prefix = opts.prefix ?? '';
  const plan: { name: string; ref: string; shape: number[] }[] = [];
  for (const [ref, t] of Object.entries(weights)) {
    const name = naming === 'reference' ? ref : aeReferenceToDiffusers(ref, levels);
    if (!name) throw new CheckpointError(`${path}: '${ref}' is not an autoencoder parameter name`);
    const shape = naming === 'diffusers' && /\.mid\.attn_1\.(q|k|v|proj_out)\.weight$/.test(ref) ? t.shape.slice(0, 2) : [...t.shape];
    plan.push({ name: prefix + name, ref, shape });
  }
  const w = await SafetensorsWriter.create(path, plan.map((p) => ({ name: p.name, dtype, shape: p.shape })), { format: 'pt', ...(opts.metadata ?? {}) });
  try {
    for (const p of plan) await w.write(p.name, await hostData(weights[p.ref]!));
  } catch (e) {
    await w.abort();
    throw e;
  }
  await w.finish();
}
