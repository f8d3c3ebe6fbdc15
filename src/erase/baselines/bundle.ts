// Writing what a baseline produces as a model bundle that `mce generate --model DIR` and
// `mce eval quality --model DIR` load:
//   erased bundle   a copy of the base bundle whose denoiser file (transformer.safetensors or
//                   unet.safetensors) has the method's weights, each tensor in its original dtype;
//   wrapper bundle  an unchanged copy whose manifest has a `wrapper` entry (generate/wrapped.ts
//                   samples with it, e.g. SLD's safe guidance).
// Both manifests get an `erasure` record: the method, its settings, the base model's name and
// file hashes, and what changed (tensors, parameters, stored bytes).
import { mkdirSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { copyFileAtomicSync, writeFileAtomic } from '../../io/atomic.js';
import { encodeTensor, SafetensorsFile, writeSafetensors, type WriteTensor } from '../../io/safetensors.js';
import { sha256 } from '../../world/util.js';
import type { Family } from './family.js';

export interface ChangeStats {
  tensors: number;
  /** Parameters whose stored value changed. */
  params: number;
  totalParams: number;
  /** Stored bytes that differ from the base file's. */
  bytes: number;
  totalBytes: number;
}

export interface ErasureRecord {
  method: string;
  concept: string;
  settings: Record<string, unknown>;
  [k: string]: unknown;
}

/** The denoiser file of a family's bundle. */
export function denoiserFile(family: Family): string {
  return family === 'flow' ? 'transformer.safetensors' : 'unet.safetensors';
}

function fileInfo(path: string): { sha256: string; bytes: number } {
  const b = readFileSync(path);
  return { sha256: sha256(b), bytes: b.byteLength };
}

/** Copy every regular file of the base bundle except `skip` into out (created). */
function copyBundle(baseDir: string, outDir: string, skip: readonly string[]): void {
  mkdirSync(outDir, { recursive: true });
  for (const f of readdirSync(baseDir)) {
    if (skip.includes(f) || f === 'manifest.json' || !statSync(join(baseDir, f)).isFile()) continue;
    copyFileAtomicSync(join(baseDir, f), join(outDir, f));
  }
}

function baseRecord(manifest: Record<string, unknown>): Record<string, unknown> {
  return { name: manifest['name'], files: manifest['files'] };
}

async function writeManifest(outDir: string, manifest: Record<string, unknown>): Promise<void> {
  await writeFileAtomic(join(outDir, 'manifest.json'), `${JSON.stringify(manifest, null, 2)}\n`);
}

/**
 * Write an erased bundle: the base bundle with `weights` (host float32, by name) replacing those
 * tensors of the denoiser file. Returns what changed.
 */
export async function writeErasedBundle(opts: {
  baseDir: string;
  baseManifest: Record<string, unknown>;
  family: Family;
  outDir: string;
  weights: Record<string, Float32Array>;
  record: ErasureRecord;
}): Promise<ChangeStats> {
  const file = denoiserFile(opts.family);
  copyBundle(opts.baseDir, opts.outDir, [file]);
  const src = await SafetensorsFile.open(join(opts.baseDir, file));
  const stats: ChangeStats = { tensors: 0, params: 0, totalParams: 0, bytes: 0, totalBytes: 0 };
  const out = new Map<string, WriteTensor>();
  try {
    for (const name of src.names) {
      const e = src.entry(name);
      const raw = await src.readRaw(name);
      const n = e.shape.reduce((a, b) => a * b, 1);
      stats.totalParams += n;
      stats.totalBytes += raw.byteLength;
      const w = opts.weights[name];
      if (!w) {
        out.set(name, { dtype: e.dtype, shape: e.shape, data: raw });
        continue;
      }
      if (w.length !== n) throw new Error(`${name}: ${w.length} values for a tensor of ${n}`);
      const enc = encodeTensor(e.dtype, w, raw.byteLength, name);
      const size = raw.byteLength / n;
      let changed = 0;
      for (let i = 0; i < n; i++) {
        let diff = false;
        for (let b = 0; b < size; b++) if (enc[i * size + b] !== raw[i * size + b]) diff = true;
        if (diff) changed++;
      }
      for (let i = 0; i < raw.byteLength; i++) if (enc[i] !== raw[i]) stats.bytes++;
      if (changed > 0) stats.tensors++;
      stats.params += changed;
      out.set(name, { dtype: e.dtype, shape: e.shape, data: enc });
    }
    await writeSafetensors(join(opts.outDir, file), out, src.metadata);
  } finally {
    await src.close();
  }
  const files = { ...(opts.baseManifest['files'] as Record<string, unknown>), [file]: fileInfo(join(opts.outDir, file)) };
  await writeManifest(opts.outDir, { ...opts.baseManifest, files, erasure: { ...opts.record, base: baseRecord(opts.baseManifest), changed: stats } });
  return stats;
}

/** Write a wrapper bundle: the base bundle unchanged, its manifest saying how to wrap sampling. */
export async function writeWrapperBundle(opts: {
  baseDir: string;
  baseManifest: Record<string, unknown>;
  outDir: string;
  wrapper: Record<string, unknown>;
  record: ErasureRecord;
}): Promise<void> {
  copyBundle(opts.baseDir, opts.outDir, []);
  const changed: ChangeStats = { tensors: 0, params: 0, totalParams: 0, bytes: 0, totalBytes: 0 };
  await writeManifest(opts.outDir, { ...opts.baseManifest, wrapper: opts.wrapper, erasure: { ...opts.record, base: baseRecord(opts.baseManifest), changed } });
}
