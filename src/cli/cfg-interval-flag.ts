// `--cfg-interval LO,HI` as mce generate and mce eval quality take it: guidance only while the
// sampler's time (1 = noise; DDIM: timestep / 1000) is in [LO, HI] (sampling/guidance.ts).
import { guidanceInterval, type GuidanceInterval } from '../sampling/guidance.js';
import { UsageError, type FlagValues } from './command.js';

export const CFG_INTERVAL_HELP =
  "guide only while the sampler's time (1 = noise; DDIM: timestep / 1000) is in LO,HI, e.g. 0.3,1: the last steps then use the conditional prediction alone (guidance interval, Kynkäänniemi et al. 2024; default: every step, as mce erase samples)";

/** The --cfg-interval, or undefined when the flag is absent. */
export function cfgIntervalFlag(command: string, flags: FlagValues): GuidanceInterval | undefined {
  const raw = flags['cfg-interval'];
  if (raw === undefined) return undefined;
  const parts = String(raw).split(',');
  const [lo, hi] = parts.map((p) => (p.trim() === '' ? NaN : Number(p)));
  try {
    if (parts.length !== 2) throw new Error(`expected LO,HI, got '${String(raw)}'`);
    return guidanceInterval(lo!, hi!);
  } catch (e) {
    throw new UsageError(`${command}: --cfg-interval: ${(e as Error).message}`);
  }
}
