// `--binarize RULE` as the commands that read mask logits take it (mce eval erasure, mce generate
// --masks): threshold:T, topk-layer:F or topk-global:F. Parsed lazily: masks.ts loads the engine.
import type { Binarize } from '../erase/mce/masks.js';
import { UsageError, type FlagValues } from './command.js';

export const BINARIZE_HELP = "binarise the mask file's logits by this rule instead of using its stored keep-masks (the logits at 0): threshold:T, topk-layer:F or topk-global:F";

/** The --binarize rule, or undefined when the flag is absent. */
export async function binarizeFlag(command: string, flags: FlagValues): Promise<Binarize | undefined> {
  const raw = flags['binarize'];
  if (raw === undefined) return undefined;
  const { parseBinarize } = await import('../erase/mce/masks.js');
  try {
    return parseBinarize(String(raw));
  } catch (e) {
    throw new UsageError(`${command}: --binarize: ${(e as Error).message}`);
  }
}
