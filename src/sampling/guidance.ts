// Classifier-free guidance in a limited interval (Kynkäänniemi et al., "Applying Guidance in a
// Limited Interval Improves Sample and Distribution Quality in Diffusion Models", NeurIPS 2024):
// the guided prediction u + cfg (c - u) only while the sampler's time lies in [lo, hi], and the
// conditional prediction alone (scale 1) outside it. Time is scaled to [0, 1] with 1 = noise: FLUX's
// t as it is, a DDIM timestep divided by 1000.

/** [lo, hi] in sampler time (1 = noise); guidance applies where lo <= t <= hi. */
export type GuidanceInterval = readonly [number, number];

/** The guidance scale at time t: cfg inside the interval (or with none), 1 outside it. */
export function guidanceScale(cfg: number, t: number, interval?: GuidanceInterval | null): number {
  return !interval || (t >= interval[0] && t <= interval[1]) ? cfg : 1;
}

/** How logs and tables say an interval: " for t in [0.3, 1]", or "" for guidance at every step. */
export function formatGuidanceInterval(interval?: GuidanceInterval | null): string {
  return interval ? ` for t in [${interval.join(', ')}]` : '';
}

/** A checked interval: two numbers in [0, 1], lo <= hi; throws a one-line Error otherwise. */
export function guidanceInterval(lo: number, hi: number): GuidanceInterval {
  if (!(lo >= 0 && hi <= 1 && lo <= hi)) throw new Error(`guidance interval must be LO,HI with 0 <= LO <= HI <= 1, got ${lo},${hi}`);
  return [lo, hi];
}
