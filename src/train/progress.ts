// Progress for long jobs: step/total, named loss terms (smoothed), it/s, elapsed time and ETA.
// On a terminal it is one line redrawn in place (on stderr); elsewhere (CI logs, files) it prints
// a plain line every `interval` and at the end. The writer and the clock are injectable for tests.
//
//   train 120/400 30% | loss 0.0412 mse 0.0398 l1 0.00140 | 5.21 it/s | 0:23 elapsed | ETA 0:54

export interface ProgressOptions {
  /** Total steps. */
  total: number;
  /** Prefix of every line (default 'train'). */
  label?: string;
  /** Steps already done when this reporter starts (a resumed run); rates count only new steps. */
  start?: number;
  /** Training time of earlier sessions in seconds, added to 'elapsed'. */
  elapsedOffset?: number;
  /** Where output goes (default: process.stderr). */
  write?: (s: string) => void;
  /** Redraw one line in place (default: whether stderr is a TTY, when writing to stderr). */
  tty?: boolean;
  /** Clock in milliseconds (default Date.now). */
  now?: () => number;
  /** Print nothing at all. */
  quiet?: boolean;
  /** Milliseconds between plain lines (default 10 s). */
  interval?: number;
  /** Milliseconds between TTY redraws (default 100). */
  ttyInterval?: number;
  /** Exponential smoothing of the loss terms: weight of the history (default 0.9; 0 = raw values). */
  smoothing?: number;
  /** Number of recent updates the it/s estimate is taken over (default 50). */
  window?: number;
  /**
   * Estimated cost of each step, when steps differ (a benchmark's units): the ETA is then the
   * estimated cost left over the cost done per second, not steps left over steps per second.
   */
  work?: readonly number[];
}

/** '1:02:03', '2:03', '0:05'. */
export function formatDuration(seconds: number): string {
  if (!Number.isFinite(seconds) || seconds < 0) return '?';
  const s = Math.round(seconds);
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const r = s % 60;
  const mm = h > 0 ? String(m).padStart(2, '0') : String(m);
  return `${h > 0 ? `${h}:` : ''}${mm}:${String(r).padStart(2, '0')}`;
}

/** A loss value in 4 significant digits, exponent form when very large or small. */
export function formatNumber(x: number): string {
  if (Number.isNaN(x)) return 'NaN';
  if (!Number.isFinite(x)) return x > 0 ? 'Inf' : '-Inf';
  if (x === 0) return '0';
  const a = Math.abs(x);
  if (a >= 1e5 || a < 1e-3) return x.toExponential(2);
  if (Number.isInteger(x) && a < 1e5) return String(x);
  return x.toPrecision(4);
}

export class Progress {
  readonly total: number;
  readonly label: string;
  private readonly write: (s: string) => void;
  private readonly tty: boolean;
  private readonly now: () => number;
  private readonly quiet: boolean;
  private readonly interval: number;
  private readonly ttyInterval: number;
  private readonly beta: number;
  private readonly window: number;
  private readonly startStep: number;
  private readonly elapsedOffset: number;
  /** Cumulative estimated cost before step k (work[0..k)); null: every step costs the same. */
  private readonly done: number[] | null;
  private readonly t0: number;
  private step: number;
  private readonly ema = new Map<string, { s: number; n: number }>();
  private extra: Record<string, string | number> = {};
  private samples: { t: number; step: number }[] = [];
  private lastPrint = -Infinity;
  private onScreen = false;
  private finished = false;

  constructor(opts: ProgressOptions) {
    this.total = opts.total;
    this.label = opts.label ?? 'train';
    this.write = opts.write ?? ((s) => { process.stderr.write(s); });
    this.tty = opts.tty ?? (opts.write ? false : process.stderr.isTTY === true);
    this.now = opts.now ?? Date.now;
    this.quiet = opts.quiet ?? false;
    this.interval = opts.interval ?? 10_000;
    this.ttyInterval = opts.ttyInterval ?? 100;
    this.beta = opts.smoothing ?? 0.9;
    this.window = Math.max(2, opts.window ?? 50);
    this.startStep = opts.start ?? 0;
    this.elapsedOffset = opts.elapsedOffset ?? 0;
    this.step = this.startStep;
    this.done = opts.work ? opts.work.reduce((acc, w) => (acc.push(acc[acc.length - 1]! + w), acc), [0]) : null;
    this.t0 = this.now();
    this.samples.push({ t: this.t0, step: this.startStep });
  }

  /** Record that `step` steps are done, with this step's loss terms and any extra fields. */
  update(step: number, terms: Record<string, number> = {}, extra: Record<string, string | number> = {}): void {
    this.step = step;
    for (const [k, x] of Object.entries(terms)) {
      const e = this.ema.get(k) ?? { s: 0, n: 0 };
      e.s = this.beta * e.s + (1 - this.beta) * x;
      e.n += 1;
      this.ema.set(k, e);
    }
    this.extra = extra;
    const t = this.now();
    this.samples.push({ t, step });
    if (this.samples.length > this.window) this.samples.shift();
    if (this.quiet) return;
    const last = step >= this.total;
    if (this.tty) {
      if (last || t - this.lastPrint >= this.ttyInterval) {
        this.write(`\r${this.line()}\x1b[K`);
        this.onScreen = true;
        this.lastPrint = t;
      }
    } else if (last || this.lastPrint === -Infinity || t - this.lastPrint >= this.interval) {
      this.write(`${this.line()}\n`);
      this.lastPrint = t;
    }
  }

  /** A message (resumed from..., eval results) printed without garbling the progress line. */
  log(message: string): void {
    if (this.quiet) return;
    if (this.tty && this.onScreen) {
      this.write(`\r\x1b[K${message}\n${this.line()}\x1b[K`);
    } else {
      this.write(`${message}\n`);
    }
  }

  /** End the progress line (TTY: move to the next line). Safe to call twice. */
  finish(): void {
    if (this.finished) return;
    this.finished = true;
    if (this.quiet) return;
    if (this.tty && this.onScreen) this.write('\n');
    this.onScreen = false;
  }

  /** Smoothed loss terms (bias-corrected exponential moving average). */
  smoothed(): Record<string, number> {
    const out: Record<string, number> = {};
    for (const [k, e] of this.ema) out[k] = this.beta === 0 ? e.s : e.s / (1 - this.beta ** e.n);
    return out;
  }

  /** Steps per second over the recent window (NaN before any step). */
  rate(): number {
    const a = this.samples[0]!;
    const b = this.samples[this.samples.length - 1]!;
    const dt = (b.t - a.t) / 1000;
    const ds = b.step - a.step;
    if (ds <= 0) return NaN;
    return dt > 0 ? ds / dt : Infinity;
  }

  /** Seconds of this session plus earlier ones. */
  elapsed(): number {
    return (this.now() - this.t0) / 1000 + this.elapsedOffset;
  }

  /** Estimated seconds left (NaN when unknown): work left over work done per second in the recent window. */
  eta(): number {
    // Work done by `step`: the step count, or the steps' estimated cost when they differ.
    const work = (step: number): number => (this.done ? this.done[Math.min(Math.max(step, 0), this.done.length - 1)]! : step);
    const a = this.samples[0]!;
    const b = this.samples[this.samples.length - 1]!;
    const dw = work(b.step) - work(a.step);
    if (!(dw > 0)) return NaN;
    const dt = (b.t - a.t) / 1000;
    return dt > 0 ? (work(this.total) - work(this.step)) / (dw / dt) : 0;
  }

  /** The current progress line (no newline). */
  line(): string {
    const pct = this.total > 0 ? Math.floor((100 * this.step) / this.total) : 100;
    const parts = [`${this.label} ${this.step}/${this.total} ${pct}%`];
    const sm = this.smoothed();
    const terms = Object.entries(sm).map(([k, v]) => `${k} ${formatNumber(v)}`);
    const extra = Object.entries(this.extra).map(([k, v]) => `${k} ${typeof v === 'number' ? formatNumber(v) : v}`);
    if (terms.length + extra.length > 0) parts.push([...terms, ...extra].join(' '));
    const r = this.rate();
    if (Number.isFinite(r)) parts.push(r >= 1 || r === 0 ? `${r.toFixed(2)} it/s` : `${(1 / r).toFixed(2)} s/it`);
    else parts.push('? it/s');
    parts.push(`${formatDuration(this.elapsed())} elapsed`);
    parts.push(`ETA ${formatDuration(this.eta())}`);
    return parts.join(' | ');
  }
}
