// MCE mask files (masks.safetensors): per hook point `logits.<name>` (the trained λ, F32) and
// `keep.<name>` (the binary keep-mask, F32 0/1), plus metadata: format, the model's config (`flux`
// for FLUX hook points, `unet` for UNet ones), the binarisation rule. Mask files from separate runs
// merge into one (mergeMaskFiles: AND of keep-masks, `mce merge-masks`).
import { existsSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { SafetensorsFile, writeSafetensors, type WriteTensor } from '../../io/safetensors.js';
import { sha256 } from '../../world/util.js';
import type { FluxParams } from '../../models/flux/params.js';
import { fluxMaskSpecs } from '../../models/flux/masks.js';
import type { UnetParams } from '../../models/unet/params.js';
import { unetMaskSpecs } from '../../models/unet/masks.js';
import { binarize, mergeMasks, type HostMasks } from './masks.js';

export const MASK_FORMAT = 'mce-masks/1';

export class MaskFileError extends Error {}

export interface MaskFile {
  logits: HostMasks;
  keep: HostMasks;
  /** The FLUX config the masks were trained on (null for UNet masks or when not recorded). */
  cfg: FluxParams | null;
  /** The UNet config the masks were trained on (null for FLUX masks or when not recorded). */
  unet: UnetParams | null;
  metadata: Record<string, string>;
}

/** Save masks; `cfg` (FLUX) or `unet` records the architecture they belong to. */
export async function saveMasks(path: string, m: { logits?: HostMasks; keep: HostMasks; cfg?: FluxParams; unet?: UnetParams; metadata?: Record<string, string> }): Promise<void> {
  const tensors: Record<string, WriteTensor> = {};
  for (const [n, v] of Object.entries(m.logits ?? {})) tensors[`logits.${n}`] = { dtype: 'F32', shape: [v.length], data: v };
  for (const [n, v] of Object.entries(m.keep)) tensors[`keep.${n}`] = { dtype: 'F32', shape: [v.length], data: v };
  await writeSafetensors(path, tensors, {
    format: MASK_FORMAT,
    ...(m.cfg ? { flux: JSON.stringify(m.cfg) } : {}),
    ...(m.unet ? { unet: JSON.stringify(m.unet) } : {}),
    ...(m.metadata ?? {}),
  });
}

/** The model config recorded in metadata `key` (JSON), null when absent; broken JSON is a MaskFileError. */
function configIn<T>(path: string, metadata: Record<string, string>, key: string): T | null {
  const text = metadata[key];
  if (!text) return null;
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch (e) {
    throw new MaskFileError(`${path}: metadata '${key}' is not valid JSON (${(e as Error).message})`);
  }
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new MaskFileError(`${path}: metadata '${key}' is not a config object`);
  return v as T;
}

/** A mask file's path: the file itself, or an `mce erase` run folder's masks.safetensors. */
export function maskFilePath(path: string): string {
  if (!existsSync(path) || !statSync(path).isDirectory()) return path;
  const inside = join(path, 'masks.safetensors');
  if (!existsSync(inside)) throw new MaskFileError(`${path}: a folder without masks.safetensors (give a mask file or an mce erase run folder)`);
  return inside;
}

/**
 * Read a mask file (or a run folder's); with `cfg` (a FLUX config, or { unet }), every hook point is
 * checked against it (name and size).
 */
export async function loadMasks(pathOrRun: string, cfg?: FluxParams | { unet: UnetParams }): Promise<MaskFile> {
  const path = maskFilePath(pathOrRun);
  let f: SafetensorsFile;
  try {
    f = await SafetensorsFile.open(path);
  } catch (e) {
    throw new MaskFileError((e as Error).message);
  }
  try {
    if (f.metadata['format'] !== MASK_FORMAT) throw new MaskFileError(`${path}: not an mce mask file (format '${f.metadata['format'] ?? 'none'}', expected '${MASK_FORMAT}')`);
    const logits: HostMasks = {};
    const keep: HostMasks = {};
    for (const name of f.names) {
      let data: Float32Array;
      try {
        data = await f.readFloat32(name);
      } catch (e) {
        throw new MaskFileError((e as Error).message); // the reader's line already names the file
      }
      if (name.startsWith('logits.')) logits[name.slice(7)] = data;
      else if (name.startsWith('keep.')) keep[name.slice(5)] = data;
    }
    const fileCfg = configIn<FluxParams>(path, f.metadata, 'flux');
    const fileUnet = configIn<UnetParams>(path, f.metadata, 'unet');
    if (cfg) {
      const unet = 'unet' in cfg ? cfg.unet : null;
      const specs = new Map((unet ? unetMaskSpecs(unet) : fluxMaskSpecs(cfg as FluxParams)).map((s) => [s.name, s.size]));
      const what = unet
        ? `a UNet with channels [${unet.block_out_channels.join(', ')}]`
        : `hidden ${(cfg as FluxParams).hidden_size}, ${(cfg as FluxParams).depth} double + ${(cfg as FluxParams).depth_single_blocks} single blocks`;
      for (const [n, v] of [...Object.entries(keep), ...Object.entries(logits)]) {
        const size = specs.get(n);
        if (size === undefined) throw new MaskFileError(`${path}: mask '${n}' is not a hook point of this model (${what})`);
        if (size !== v.length) throw new MaskFileError(`${path}: mask '${n}' has ${v.length} units, the model has ${size}`);
      }
    }
    return { logits, keep, cfg: fileCfg, unet: fileUnet, metadata: { ...f.metadata } };
  } finally {
    await f.close();
  }
}

/** One input of a merge, as the merged file records it. */
export interface MergeSource {
  file: string;
  sha256: string;
  concepts: string[];
}

/**
 * Merge the mask files of separate runs (multi-concept erasure by parts, the reference's
 * mask_merging.py): a unit is kept iff every file keeps it. Each file gives its stored keep-masks
 * (or, storing none, its logits binarised at 0). All must belong to one architecture. The result
 * has keep-masks only: logits trained in separate runs do not combine.
 */
export async function mergeMaskFiles(paths: readonly string[]): Promise<{ keep: HostMasks; cfg: FluxParams | null; unet: UnetParams | null; sources: MergeSource[]; parts: HostMasks[] }> {
  if (paths.length === 0) throw new MaskFileError('no mask files to merge');
  const resolved = paths.map(maskFilePath);
  const files = await Promise.all(resolved.map((p) => loadMasks(p)));
  const arch = (f: MaskFile): string => JSON.stringify(f.cfg ? { flux: f.cfg } : f.unet ? { unet: f.unet } : null);
  files.forEach((f, i) => {
    if (arch(f) !== arch(files[0]!)) throw new MaskFileError(`${paths[i]}: trained on another model than ${paths[0]} (its recorded architecture differs)`);
  });
  const parts = files.map((f, i) => {
    const keep = Object.keys(f.keep).length ? f.keep : binarize(f.logits, { kind: 'threshold', threshold: 0 });
    if (Object.keys(keep).length === 0) throw new MaskFileError(`${paths[i]}: no masks in the file`);
    return keep;
  });
  const sources = files.map((f, i) => {
    let concepts: string[] = [];
    try {
      concepts = f.metadata['concepts'] ? (JSON.parse(f.metadata['concepts']) as string[]) : [];
    } catch {
      // a file without a readable concept list still merges; the record says so by an empty list
    }
    return { file: resolved[i]!, sha256: sha256(readFileSync(resolved[i]!)), concepts };
  });
  return { keep: mergeMasks(parts), cfg: files[0]!.cfg, unet: files[0]!.unet, sources, parts };
}
