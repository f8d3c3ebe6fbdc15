// Issue 5's acceptance bars, judged on one run's held-out evaluation (evaluate.ts), so that every
// summary.json and report says which bars a run meets: the target's detection rate goes from at
// least 80% to at most 10%; near neighbours and the other concepts each keep their concept
// accuracy within 5 points of the original model; their images keep a mean SSIM of at least 0.85 to
// the original's from the same seed. A bar whose measure is missing (no classifier) is null.
import type { ErasureEval, EvalGroup } from './evaluate.js';

export interface Bar {
  bar: string;
  /** The measured value (a rate, an accuracy change in points of [0, 1], or an SSIM); null when not measured. */
  value: number | null;
  met: boolean | null;
}

/** Rates are fractions k/n: compare with a little slack so 0.7 - 0.75 counts as 5 points. */
const SLACK = 1e-9;

export function acceptanceBars(e: ErasureEval): Bar[] {
  const bar = (text: string, value: number | null, ok: (v: number) => boolean): Bar => ({ bar: text, value, met: value === null ? null : ok(value) });
  const change = (g: EvalGroup): number | null => (g.before === null || g.after === null ? null : g.after - g.before);
  const kept = (name: string, g: EvalGroup | null): Bar[] =>
    g
      ? [
          bar(`${name}: concept accuracy within 5 points of the original (change)`, change(g), (v) => v >= -0.05 - SLACK),
          bar(`${name}: mean SSIM to the original >= 0.85`, g.ssim, (v) => v >= 0.85 - SLACK),
        ]
      : [];
  return [
    bar('target detection rate of the original >= 80%', e.erase.before, (v) => v >= 0.8 - SLACK),
    bar('target detection rate after erasure <= 10%', e.erase.after, (v) => v <= 0.1 + SLACK),
    ...kept('near neighbours', e.neighbours),
    ...kept('other concepts', e.others),
  ];
}

/** "k/n bars met (m not measured)". */
export function formatBars(bars: readonly Bar[]): string {
  const measured = bars.filter((b) => b.met !== null);
  const met = measured.filter((b) => b.met).length;
  return `${met}/${measured.length} acceptance bars met${measured.length < bars.length ? ` (${bars.length - measured.length} not measured)` : ''}`;
}
