// An MCE erasure as an ordinary model bundle: binary keep-masks folded into a copy of the base
// model's denoiser (apply.ts, streaming), written with the baselines' bundle writer so the manifest
// carries the same `erasure` record (method, settings, base hashes, what changed) and
// `mce generate --model DIR`, `mce eval` and the attacks load it like any other erased model.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SafetensorsFile } from '../../io/safetensors.js';
import { denoiserFile, writeErasedBundle, type ChangeStats, type ErasureRecord } from '../baselines/bundle.js';
import type { Family } from '../baselines/family.js';
import { applyMasksToFile } from './apply.js';
import type { HostMasks } from './masks.js';

export async function writeMceBundle(opts: {
  baseDir: string;
  baseManifest: Record<string, unknown>;
  family: Family;
  outDir: string;
  keep: Readonly<HostMasks>;
  record: ErasureRecord;
}): Promise<ChangeStats & { maskedUnits: number; units: number }> {
  const file = denoiserFile(opts.family);
  const tmp = mkdtempSync(join(tmpdir(), 'mce-fold-'));
  try {
    const folded = join(tmp, file);
    await applyMasksToFile(join(opts.baseDir, file), opts.keep, folded);
    // Hand the folded tensors to the bundle writer, which re-encodes them in the base dtypes and counts changes.
    const f = await SafetensorsFile.open(folded);
    const weights: Record<string, Float32Array> = {};
    try {
      for (const name of f.names) weights[name] = await f.readFloat32(name);
    } finally {
      await f.close();
    }
    let units = 0;
    let masked = 0;
    for (const m of Object.values(opts.keep)) for (const v of m) { units++; if (v === 0) masked++; }
    const changed = await writeErasedBundle({ ...opts, weights, record: { ...opts.record, masked_units: masked, units } });
    return { ...changed, maskedUnits: masked, units };
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
}
