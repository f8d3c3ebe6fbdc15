// `mce merge-masks A.safetensors B.safetensors ... --out M.safetensors`: one mask file from the mask
// files of separate runs, AND of their keep-masks (a unit stays only if every run kept it), so that
// concepts erased one run at a time come off the model together. The merged file works wherever a
// run's does: `mce generate --masks`, `mce eval erasure --masks`, `mce apply-masks`.
import { mkdirSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { UsageError, UserError, type Command } from './command.js';

export const mergeMasksCommand: Command = {
  name: 'merge-masks',
  summary: 'merge the mask files of separate mce erase runs into one (a unit is kept only if every run kept it)',
  args: 'MASKS MASKS... (mask files or erase run folders)',
  flags: {
    out: { type: 'string', help: 'output .safetensors', required: true },
  },
  async run(args, flags) {
    if (args.length < 2) throw new UsageError(`mce merge-masks: give two or more mask files or erase run folders, got ${args.length}`);
    const out = flags['out'] as string;
    if (!out.endsWith('.safetensors')) throw new UsageError(`mce merge-masks: --out must name a .safetensors file, got '${out}'`);
    const { mergeMaskFiles, saveMasks, MaskFileError } = await import('../erase/mce/maskfile.js');
    const { sparsityReport } = await import('../erase/mce/masks.js');
    let merged;
    try {
      merged = await mergeMaskFiles(args);
    } catch (e) {
      if (e instanceof MaskFileError) throw new UserError((e as Error).message);
      throw e;
    }
    const concepts = [...new Set(merged.sources.flatMap((s) => s.concepts))];
    try {
      mkdirSync(dirname(resolve(out)), { recursive: true });
      await saveMasks(out, {
        keep: merged.keep,
        ...(merged.cfg ? { cfg: merged.cfg } : {}),
        ...(merged.unet ? { unet: merged.unet } : {}),
        metadata: { concepts: JSON.stringify(concepts), binarize: 'merged: AND of the keep-masks of merged_from', merged_from: JSON.stringify(merged.sources) },
      });
    } catch (e) {
      throw new UserError(`cannot write ${out}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message.split('\n')[0]}`);
    }
    const masked = (keep: (typeof merged.parts)[number]): string => `${(100 * sparsityReport(keep).total.fraction).toFixed(1)}% of units masked`;
    merged.sources.forEach((s, i) => process.stderr.write(`mce merge-masks: ${s.file} (${s.concepts.join(', ') || 'no concepts recorded'}): ${masked(merged.parts[i]!)}\n`));
    process.stderr.write(`mce merge-masks: merged (${concepts.join(', ')}): ${masked(merged.keep)} -> ${out}\n`);
    return 0;
  },
};
