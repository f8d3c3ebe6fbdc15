// MCE mask files (masks.safetensors): per hook point `logits.<name>` (the trained λ, F32) and
// `keep.<name>` (the binary keep-mask, F32 0/1), plus metadata: format, the model's config (`flux`
// for FLUX hook points, `unet` for UNet ones), the binarisation rule. Masks from separate runs merge
// with mergeMasks (AND of keep-masks).
import { SafetensorsFile, writeSafetensors, type WriteTensor } from '../../io/safetensors.js';
import type { FluxParams } from '../../models/flux/params.js';
import { fluxMaskSpecs } from '../../models/flux/masks.js';
import type { UnetParams } from '../../models/unet/params.js';
import { unetMaskSpecs } from '../../models/unet/masks.js';
import type { HostMasks } from './masks.js';

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

/** Read a mask file; with `cfg` (a FLUX config, or { unet }), every hook point is checked against it (name and size). */
export async function loadMasks(path: string, cfg?: FluxParams | { unet: UnetParams }): Promise<MaskFile> {
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
