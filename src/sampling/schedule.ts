// The FLUX flow-matching schedule (reference flux/sampling.py `get_schedule`): linspace(1, 0, N+1),
// optionally time-shifted toward high noise, t' = e^mu / (e^mu + (1/t - 1)^sigma), with mu linear
// in the image token count through (256, base_shift) and (4096, max_shift).
// Values are rounded to float32, as the reference computes them in torch float32.

const f32 = Math.fround;

/** The reference `time_shift(mu, sigma, t)` for one t in [0, 1] (t = 0 -> 0, t = 1 -> 1). */
export function timeShift(mu: number, sigma: number, t: number): number {
  if (t <= 0) return 0;
  return Math.exp(mu) / (Math.exp(mu) + Math.pow(1 / t - 1, sigma));
}

/** The reference `get_lin_function`: the line through (x1, y1) and (x2, y2). */
export function linFunction(x1 = 256, y1 = 0.5, x2 = 4096, y2 = 1.15): (x: number) => number {
  const m = (y2 - y1) / (x2 - x1);
  const b = y1 - m * x1;
  return (x) => m * x + b;
}

/** mu for a given number of image tokens. */
export function shiftMu(imageSeqLen: number, baseShift = 0.5, maxShift = 1.15): number {
  return linFunction(256, baseShift, 4096, maxShift)(imageSeqLen);
}

/** torch.linspace(start, end, steps) in float32 (same formula: the second half counts from the end). */
export function linspace(start: number, end: number, steps: number): number[] {
  if (steps === 1) return [f32(start)];
  const step = f32((end - start) / (steps - 1));
  const half = Math.floor(steps / 2);
  const out: number[] = [];
  for (let i = 0; i < steps; i++) {
    out.push(i < half ? f32(start + f32(step * i)) : f32(end - f32(step * (steps - i - 1))));
  }
  return out;
}

export interface ScheduleOptions {
  /** Image tokens (packed latent length); needed when shift is on. */
  imageSeqLen?: number;
  /** Apply the resolution-dependent time shift (FLUX.1-dev: true; schnell: false). Default true. */
  shift?: boolean;
  baseShift?: number;
  maxShift?: number;
}

/** The FLUX schedule: N+1 timesteps from 1 to 0 (float32 values). */
export function fluxSchedule(numSteps: number, opts: ScheduleOptions = {}): number[] {
  if (!Number.isInteger(numSteps) || numSteps < 1) throw new Error(`schedule: steps must be a positive integer, got ${numSteps}`);
  const ts = linspace(1, 0, numSteps + 1);
  if (opts.shift ?? true) {
    if (opts.imageSeqLen === undefined) throw new Error('schedule: the time shift needs imageSeqLen (the number of image tokens)');
    const mu = shiftMu(opts.imageSeqLen, opts.baseShift ?? 0.5, opts.maxShift ?? 1.15);
    // torch float32 elementwise: a / t is reciprocal(t) * a, python scalars rounded to float32.
    const e = f32(Math.exp(mu));
    return ts.map((t) => (t <= 0 ? 0 : f32(f32(1 / f32(e + f32(f32(1 / t) - 1))) * e)));
  }
  return ts;
}

/** An explicit sigma list as a schedule: checked to be finite and non-increasing, ending at 0 appended if absent. */
export function sigmaSchedule(sigmas: readonly number[]): number[] {
  if (sigmas.length < 1 || sigmas.some((s) => !Number.isFinite(s) || s < 0 || s > 1)) {
    throw new Error('schedule: sigmas must be numbers in [0, 1]');
  }
  for (let i = 1; i < sigmas.length; i++) {
    if (sigmas[i]! > sigmas[i - 1]!) throw new Error('schedule: sigmas must be non-increasing');
  }
  const out = sigmas.map(f32);
  if (out[out.length - 1] !== 0) out.push(0);
  if (out.length < 2) throw new Error('schedule: need at least one step');
  return out;
}
