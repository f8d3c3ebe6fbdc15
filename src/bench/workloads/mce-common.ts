// What the two MCE-iteration workloads (mce-iter on FLUX, unet-mce-iter on the UNet) share: the
// micro-batch, the mask noise handed to PyTorch, the check values and the memory-versus-steps probe.
import { tf, type Tensor } from '../../engine/tf.js';
import { measurePeak } from '../../engine/memory.js';
import { stepSeed } from '../../engine/checkpoint.js';
import { hardConcreteUniform } from '../../erase/mce/hardconcrete.js';
import { groupOf } from '../../erase/mce/masks.js';
import { fro, MiB } from '../util.js';
import type { CheckValues, ExtraOptions, ExtraResult, InputArray } from '../types.js';

/** 2 erase + 2 preserve items (mce erase: --batch 2), prompts p0..p3, then the unconditional "". */
export const ITEMS = ['erase', 'erase', 'preserve', 'preserve'] as const;
export const BETA = 0.1;
/** The run seed of the micro-batch (its step seeds drive the mask noise). */
export const RUN_SEED = 0x6d6365;

/** The uniform noise every hook point draws at every step k of a run of n steps: [n, units], hook points in order. */
export function maskUniforms(specs: readonly { size: number }[], n: number): InputArray {
  const units = specs.reduce((a, m) => a + m.size, 0);
  const data = new Float32Array(n * units);
  for (let k = 0; k < n; k++) {
    let off = k * units;
    specs.forEach((m, i) => {
      data.set(hardConcreteUniform(m.size, stepSeed(RUN_SEED, k), i), off);
      off += m.size;
    });
  }
  return { name: 'u', shape: [n, units], data };
}

interface GradResult {
  loss: number;
  terms: { erase: number; preserve: number };
  grads: Tensor[];
}

/** Loss terms and gradient norms (all, per trained group, first and last hook point); frees the gradients. */
export function mceCheckValues(r: GradResult, names: readonly string[], groups: readonly string[]): CheckValues {
  const byGroup = (g: string): number => Math.sqrt(r.grads.reduce((a, x, i) => a + (groupOf(names[i]!) === g ? fro(x) ** 2 : 0), 0));
  const out: CheckValues = {
    loss: r.loss,
    erase_mse: r.terms.erase,
    preserve_mse: r.terms.preserve,
    grad_all_logits: Math.sqrt(r.grads.reduce((a, x) => a + fro(x) ** 2, 0)),
    ...Object.fromEntries(groups.map((g) => [`grad_${g}`, byGroup(g)])),
    [`grad_${names[0]}`]: fro(r.grads[0]!),
    [`grad_${names[names.length - 1]}`]: fro(r.grads[names.length - 1]!),
  };
  tf.dispose(r.grads);
  return out;
}

/** Our peak tensor memory for a run of `counts` steps each (target: flat), skipped when over the time budget. */
export async function memoryBySteps(
  run: (steps: number) => GradResult,
  counts: readonly [number, number],
  steps: number,
  { oursMs, budgetS, log }: ExtraOptions,
): Promise<ExtraResult> {
  const estimateS = (oursMs * (counts[0] + counts[1])) / steps / 1000;
  if (estimateS > budgetS) {
    const why = `memory-vs-steps probe skipped: ${counts.join(' and ')} steps would take ~${estimateS.toFixed(0)} s (budget ${budgetS} s)`;
    log(why);
    return { fields: { peak_mb_by_steps: null }, notes: [why] };
  }
  const peaks: Record<string, number> = {};
  for (const n of counts) {
    const { result, peakBytes, baseBytes } = await measurePeak(() => run(n));
    tf.dispose(result.grads);
    peaks[String(n)] = (peakBytes - baseBytes) / MiB;
    log(`memory at ${n} steps: ${peaks[String(n)]!.toFixed(1)} MiB`);
  }
  const [lo, hi] = counts.map((n) => peaks[String(n)]!) as [number, number];
  return {
    fields: { peak_mb_by_steps: peaks },
    notes: [`our peak tensor memory at ${counts[0]} steps: ${lo.toFixed(1)} MiB, ${counts[1]} steps: ${hi.toFixed(1)} MiB (${hi >= lo ? '+' : ''}${((hi / lo - 1) * 100).toFixed(1)}%)`],
  };
}
