// MCE mask files (masks.safetensors): per hook point `logits.<name>` (the trained λ, F32) and
// `keep.<name>` (the binary keep-mask, F32 0/1), plus metadata: format, the FLUX config, the
// binarisation rule. Masks from separate runs merge with mergeMasks (AND of keep-masks).
import { SafetensorsFile, writeSafetensors, type WriteTensor } from '../../io/safetensors.js';
import type { FluxParams } from '../../models/flux/params.js';
import { fluxMaskSpecs } from '../../models/flux/masks.js';
import type { HostMasks } from './masks.js';

export const MASK_FORMAT = 'mce-masks/1';

export class MaskFileError extends Error {}

export interface MaskFile {
  logits: HostMasks;
  keep: HostMasks;
  cfg: FluxParams | null;
  metadata: Record<string, string>;
}

export async function saveMasks(path: string, m: { logits?: HostMasks; keep: HostMasks; cfg?: FluxParams; metadata?: Record<string, string> }): Promise<void> {
  const tensors: Record<string, WriteTensor> = {};
  for (const [n, v] of Object.entries(m.logits ?? {})) tensors[`logits.${n}`] = { dtype: 'F32', shape: [v.length], data: v };
  for (const [n, v] of Object.entries(m.keep)) tensors[`keep.${n}`] = { dtype: 'F32', shape: [v.length], data: v };
  await writeSafetensors(path, tensors, {
    format: MASK_FORMAT,
    ...(m.cfg ? { flux: JSON.stringify(m.cfg) } : {}),
    ...(m.metadata ?? {}),
  });
}

/** Read a mask file; with `cfg`, every hook point is checked against the config (name and size). */
export async function loadMasks(path: string, cfg?: FluxParams): Promise<MaskFile> {
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
      const data = await f.readFloat32(name);
      if (name.startsWith('logits.')) logits[name.slice(7)] = data;
      else if (name.startsWith('keep.')) keep[name.slice(5)] = data;
    }
    const fileCfg = f.metadata['flux'] ? (JSON.parse(f.metadata['flux']) as FluxParams) : null;
    if (cfg) {
      const specs = new Map(fluxMaskSpecs(cfg).map((s) => [s.name, s.size]));
      for (const [n, v] of [...Object.entries(keep), ...Object.entries(logits)]) {
        const size = specs.get(n);
        if (size === undefined) throw new MaskFileError(`${path}: mask '${n}' is not a hook point of this model (hidden ${cfg.hidden_size}, ${cfg.depth} double + ${cfg.depth_single_blocks} single blocks)`);
        if (size !== v.length) throw new MaskFileError(`${path}: mask '${n}' has ${v.length} units, the model has ${size}`);
      }
    }
    return { logits, keep, cfg: fileCfg, metadata: { ...f.metadata } };
  } finally {
    await f.close();
  }
}
