// Reading a model bundle folder (models/<name>/): its manifest.json checked against a format, and
// the parts every emoji-world family ships beside its image model: the text encoder (with its
// vocabulary) and the autoencoder. Errors are ModelLoadError lines naming the file.
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { tf, type Tensor } from '../engine/tf.js';
import { loadFloat32 } from '../io/safetensors.js';
import { AutoEncoder, type AutoEncoderParams } from '../models/flux/autoencoder.js';
import { TextEncoder, type TextEncoderParams } from '../models/text/encoder.js';

export class ModelLoadError extends Error {}

/** Every shipped model folder under models/. */
export const SHIPPED_MODEL_NAMES = ['flux-emoji', 'sd-emoji'] as const;

/** The package root (two levels above this file, from src/ and from dist/). */
function packageRoot(): string {
  return resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
}

/** A model name ('flux-emoji', 'sd-emoji') or a bundle folder / its manifest.json -> the bundle folder. */
export function resolveModelDir(nameOrPath: string): string {
  if ((SHIPPED_MODEL_NAMES as readonly string[]).includes(nameOrPath)) return join(packageRoot(), 'models', nameOrPath);
  const p = resolve(nameOrPath);
  if (p.endsWith('.json')) return dirname(p);
  return p;
}

/**
 * The words of a model's training captions, when its manifest records them (`dataset.caption_words`,
 * written by `mce train flow|diffusion`): what its text encoder, trained from scratch, has read.
 */
export function manifestCaptionWords(manifest: Record<string, unknown>): readonly string[] | undefined {
  return (manifest['dataset'] as { caption_words?: string[] } | undefined)?.caption_words;
}

/** Read a bundle's manifest.json (one clear line when missing or not JSON). */
export function readManifest(nameOrPath: string): { dir: string; manifest: Record<string, unknown> } {
  const dir = resolveModelDir(nameOrPath);
  const path = join(dir, 'manifest.json');
  if (!existsSync(path)) throw new ModelLoadError(`no model at ${nameOrPath}: ${path} not found`);
  try {
    return { dir, manifest: JSON.parse(readFileSync(path, 'utf8')) as Record<string, unknown> };
  } catch (e) {
    throw new ModelLoadError(`${path}: not valid JSON (${(e as Error).message.split('\n')[0]})`);
  }
}

/** The bundle folder of a name or path, its manifest (which must have `format`), and its files by name. */
export function readBundle<M>(nameOrPath: string, format: string): { dir: string; manifest: M; file: (f: string) => string } {
  const { dir, manifest } = readManifest(nameOrPath);
  if (manifest['format'] !== format) throw new ModelLoadError(`${join(dir, 'manifest.json')}: format '${String(manifest['format'])}', expected '${format}'`);
  const file = (f: string): string => {
    const p = join(dir, f);
    if (!existsSync(p)) throw new ModelLoadError(`${dir}: missing ${f}`);
    return p;
  };
  return { dir, manifest: manifest as M, file };
}

/** Every tensor of a safetensors file as float32 tensors (except those named in `skip`). */
export async function loadTensors(path: string, skip: readonly string[] = []): Promise<{ tensors: Record<string, Tensor>; metadata: Record<string, string>; raw: Awaited<ReturnType<typeof loadFloat32>>['tensors'] }> {
  const f = await loadFloat32(path);
  const tensors: Record<string, Tensor> = {};
  try {
    for (const [n, t] of Object.entries(f.tensors)) if (!skip.includes(n)) tensors[n] = tf.tensor(t.data, t.shape, 'float32');
  } catch (e) {
    tf.dispose(Object.values(tensors));
    throw e;
  }
  return { tensors, metadata: f.metadata, raw: f.tensors };
}

/** A text_encoder.safetensors (CLIP names + 'vocab.clip_ids') as a TextEncoder. */
export async function loadTextEncoderFile(path: string, params: TextEncoderParams): Promise<TextEncoder> {
  const { tensors, raw } = await loadTensors(path, ['vocab.clip_ids']);
  try {
    const vocabT = raw['vocab.clip_ids'];
    if (!vocabT) throw new Error('text_encoder.safetensors has no vocab.clip_ids');
    return new TextEncoder(params, tensors, Array.from(vocabT.data, (v) => Math.round(v)));
  } catch (e) {
    tf.dispose(Object.values(tensors));
    throw e;
  }
}

/** An ae.safetensors (reference names, params in its metadata) as an AutoEncoder. */
export async function loadAutoEncoderFile(path: string): Promise<AutoEncoder> {
  const a = await loadFloat32(path);
  const params = JSON.parse(a.metadata['params'] ?? 'null') as AutoEncoderParams | null;
  if (!params) throw new Error('ae.safetensors has no params metadata');
  return AutoEncoder.fromWeights(params, a.tensors);
}

/** The denoiser's weights, text encoder and autoencoder of a bundle, loaded together. */
export interface BundleParts {
  weights: Record<string, Tensor>;
  text: TextEncoder;
  ae: AutoEncoder | null;
  dispose(): void;
}

/**
 * Load what every family's bundle holds: its denoiser (`weightsFile`, checked by `validate`), the
 * text encoder and, for an 'ae' latent, the autoencoder. On any failure what was loaded is freed and
 * one ModelLoadError line names the folder.
 */
export async function loadBundleParts(
  dir: string,
  file: (f: string) => string,
  manifest: { text_encoder: { params: TextEncoderParams }; latent: { kind: string } },
  weightsFile: string,
  validate: (weights: Record<string, Tensor>) => void,
): Promise<BundleParts> {
  let weights: Record<string, Tensor> = {};
  let text: TextEncoder | null = null;
  try {
    weights = (await loadTensors(file(weightsFile))).tensors;
    validate(weights);
    text = await loadTextEncoderFile(file('text_encoder.safetensors'), manifest.text_encoder.params);
    const ae = manifest.latent.kind === 'ae' ? await loadAutoEncoderFile(file('ae.safetensors')) : null;
    const te = text;
    return {
      weights,
      text: te,
      ae,
      dispose: () => {
        tf.dispose(Object.values(weights));
        te.dispose();
        ae?.dispose();
      },
    };
  } catch (e) {
    tf.dispose(Object.values(weights));
    text?.dispose();
    if (e instanceof ModelLoadError) throw e;
    throw new ModelLoadError(`${dir}: ${(e as Error).message.split('\n')[0]}`);
  }
}
