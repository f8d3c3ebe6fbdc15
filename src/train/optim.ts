// AdamW over tfjs variables: decoupled weight decay, bias correction, per-group learning rates
// and weight decay (MCE gives each mask group its own rate; a rate of 0 freezes the group), an
// optional learning-rate schedule, and optional clipping of the gradients by their global norm.
//
// The update is PyTorch's torch.optim.AdamW (amsgrad off, one shared step count):
//   p <- p * (1 - lr * wd)
//   m <- b1 * m + (1 - b1) * g
//   v <- b2 * v + (1 - b2) * g^2
//   p <- p - (lr / (1 - b1^t)) * m / (sqrt(v) / sqrt(1 - b2^t) + eps)
// and clipping is torch.nn.utils.clip_grad_norm_: g <- g * min(1, maxNorm / (||g|| + 1e-6)).
//
// With `ema` set it also keeps an exponential moving average of every trained parameter, updated
// after each step with diffusers' EMAModel warm-up, decay_t = min(ema, (1 + t) / (10 + t)), so early
// steps do not leave the average stuck at the initial weights. Diffusion and flow models are
// usually sampled from such an average (DDPM, LDM, SD, EDM): it smooths the last steps' noise.
//
// The state (step count, m and v per parameter) is exposed as plain named tensors, so a
// checkpoint can save and restore it exactly; the update is a pure function of (params, state,
// grads), so a resumed run matches an uninterrupted one bit for bit.
import { tf, type Tensor } from '../engine/tf.js';

/** Trainable parameters by name. Names are the caller's (checkpoint names), not tfjs's. */
export type Params = Record<string, tf.Variable>;

/** Gradients by parameter name. A missing name means "no gradient this step" (that parameter is skipped). */
export type Grads = Record<string, Tensor>;

/** A tensor held in host memory (what a checkpoint stores). */
export interface HostTensor {
  shape: number[];
  data: Float32Array;
}

/** A parameter group: the parameters it matches get its own learning rate and weight decay. */
export interface ParamGroup {
  /** Shown in progress and errors, e.g. 'ffn', 'heads'. */
  name: string;
  /** Which parameters: a name pattern, a list of names, or a predicate. The first matching group wins. */
  match: RegExp | readonly string[] | ((name: string) => boolean);
  /** Learning rate for this group (default: the optimizer's). 0 freezes the group. */
  lr?: number;
  /** Weight decay for this group (default: the optimizer's). */
  weightDecay?: number;
}

export interface AdamWOptions {
  /** Base learning rate (default 1e-3). */
  lr?: number;
  /** (beta1, beta2), default (0.9, 0.999). */
  betas?: readonly [number, number];
  /** Default 1e-8. */
  eps?: number;
  /** Decoupled weight decay, default 0.01 (PyTorch's default). */
  weightDecay?: number;
  /** The value weight decay pulls parameters toward (default 0, as PyTorch). */
  decayTo?: number;
  /** Parameter groups; parameters matching none use the base settings (group 'default'). */
  groups?: readonly ParamGroup[];
  /**
   * Multiplier on every group's learning rate, as a function of the number of optimizer steps
   * already taken (0 for the first step). It must be a pure function of its argument.
   */
  schedule?: (step: number) => number;
  /** Clip gradients to this global L2 norm (over all trainable parameters) before the update. */
  maxGradNorm?: number;
  /** Keep an exponential moving average of the parameters with this decay (e.g. 0.999); off by default. */
  ema?: number;
}

/** The optimizer's state: plain named tensors plus the step count. */
export interface AdamWState {
  /** Optimizer steps taken so far. */
  step: number;
  /** 'm.<param>' and 'v.<param>' for every trainable parameter ('ema.<param>' too with `ema` set). */
  tensors: Record<string, Tensor | HostTensor>;
}

/** What one `step` did. */
export interface StepReport {
  /** Global L2 norm of the gradients before clipping. */
  gradNorm: number;
  /** The factor the gradients were multiplied by (1 when not clipped). */
  clipCoef: number;
  /** The learning rate each group used, by group name. */
  lr: Record<string, number>;
}

interface Slot {
  name: string;
  group: string;
  param: tf.Variable;
  m: tf.Variable;
  v: tf.Variable;
  /** The moving average of the parameter (with `ema` set). */
  ema?: tf.Variable;
}

function matches(g: ParamGroup, name: string): boolean {
  const m = g.match;
  if (m instanceof RegExp) {
    m.lastIndex = 0;
    return m.test(name);
  }
  if (typeof m === 'function') return m(name);
  return m.includes(name);
}

function shapeStr(s: readonly number[]): string {
  return `[${s.join(', ')}]`;
}

/** Global L2 norm of a set of gradients (one host sync). */
export function globalNorm(grads: Grads | readonly Tensor[]): number {
  const list = Array.isArray(grads) ? (grads as readonly Tensor[]) : Object.values(grads as Grads);
  if (list.length === 0) return 0;
  const sq = tf.tidy(() => tf.addN(list.map((g) => tf.sum(tf.square(g.toFloat())))));
  const v = sq.dataSync()[0]!;
  sq.dispose();
  return Math.sqrt(v);
}

/** A non-trainable variable of zeros shaped like `p` (no stray tensor left behind). */
function zerosVariable(p: Tensor): tf.Variable {
  const z = tf.zerosLike(p);
  const v = tf.variable(z, false);
  z.dispose();
  return v;
}

function copyVariable(p: Tensor): tf.Variable {
  const c = p.clone();
  const v = tf.variable(c, false);
  c.dispose();
  return v;
}

/** torch.nn.utils.clip_grad_norm_'s factor for a gradient of global norm `norm`. */
export function clipCoefficient(norm: number, maxNorm: number): number {
  return Math.min(1, maxNorm / (norm + 1e-6));
}

/** AdamW. The parameters are updated in place (Variable.assign). */
export class AdamW {
  readonly lr: number;
  readonly betas: readonly [number, number];
  readonly eps: number;
  readonly weightDecay: number;
  readonly decayTo: number;
  readonly maxGradNorm: number | undefined;
  readonly ema: number | undefined;
  private readonly groups: readonly ParamGroup[];
  private readonly schedule: ((step: number) => number) | undefined;
  private readonly slots = new Map<string, Slot>();
  private readonly frozen: string[] = [];
  private readonly groupOf = new Map<string, string>();
  private steps = 0;
  private disposed = false;

  constructor(readonly params: Params, opts: AdamWOptions = {}) {
    this.lr = opts.lr ?? 1e-3;
    this.betas = opts.betas ?? [0.9, 0.999];
    this.eps = opts.eps ?? 1e-8;
    this.weightDecay = opts.weightDecay ?? 0.01;
    this.decayTo = opts.decayTo ?? 0;
    this.maxGradNorm = opts.maxGradNorm;
    this.ema = opts.ema;
    this.groups = opts.groups ?? [];
    this.schedule = opts.schedule;
    const [b1, b2] = this.betas;
    if (!(this.lr >= 0)) throw new Error(`AdamW: lr must be >= 0, got ${this.lr}`);
    if (!(b1 >= 0 && b1 < 1 && b2 >= 0 && b2 < 1)) throw new Error(`AdamW: betas must be in [0, 1), got (${b1}, ${b2})`);
    if (!(this.eps >= 0)) throw new Error(`AdamW: eps must be >= 0, got ${this.eps}`);
    if (this.maxGradNorm !== undefined && !(this.maxGradNorm > 0)) throw new Error(`AdamW: maxGradNorm must be > 0, got ${this.maxGradNorm}`);
    if (this.ema !== undefined && !(this.ema > 0 && this.ema < 1)) throw new Error(`AdamW: ema must be in (0, 1), got ${this.ema}`);
    const names = new Set<string>();
    for (const g of this.groups) {
      if (g.name === 'default' || names.has(g.name)) throw new Error(`AdamW: group name '${g.name}' is reserved or repeated`);
      names.add(g.name);
      if (g.lr !== undefined && !(g.lr >= 0)) throw new Error(`AdamW: group '${g.name}' lr must be >= 0, got ${g.lr}`);
    }
    for (const name of Object.keys(params).sort()) {
      const p = params[name]!;
      if (p.dtype !== 'float32') throw new Error(`AdamW: parameter '${name}' is ${p.dtype}; only float32 parameters can be trained`);
      const group = this.groups.find((g) => matches(g, name));
      const gname = group?.name ?? 'default';
      this.groupOf.set(name, gname);
      if ((group?.lr ?? this.lr) === 0) {
        this.frozen.push(name);
        continue;
      }
      this.slots.set(name, {
        name,
        group: gname,
        param: p,
        m: zerosVariable(p),
        v: zerosVariable(p),
        ...(this.ema !== undefined ? { ema: copyVariable(p) } : {}),
      });
    }
  }

  /** Optimizer steps taken so far. */
  get stepCount(): number {
    return this.steps;
  }

  /** Names of the parameters this optimizer updates (sorted); frozen groups are left out. */
  trainableNames(): string[] {
    return [...this.slots.keys()];
  }

  /** Names of parameters in a group with learning rate 0. */
  frozenNames(): string[] {
    return [...this.frozen];
  }

  /** The group a parameter belongs to ('default' when it matches none). */
  groupFor(name: string): string {
    const g = this.groupOf.get(name);
    if (g === undefined) throw new Error(`AdamW: no parameter named '${name}'`);
    return g;
  }

  /** The learning rate each group uses for the next step (schedule applied). */
  currentLr(): Record<string, number> {
    const f = this.schedule ? this.schedule(this.steps) : 1;
    const out: Record<string, number> = { default: this.lr * f };
    for (const g of this.groups) out[g.name] = (g.lr ?? this.lr) * f;
    return out;
  }

  /** A JSON description of the settings (for a run's config hash). The schedule is opaque. */
  describe(): Record<string, unknown> {
    return {
      type: 'AdamW',
      lr: this.lr,
      betas: [...this.betas],
      eps: this.eps,
      weightDecay: this.weightDecay,
      ...(this.decayTo !== 0 ? { decayTo: this.decayTo } : {}),
      ...(this.ema !== undefined ? { ema: this.ema } : {}),
      maxGradNorm: this.maxGradNorm ?? null,
      groups: this.groups.map((g) => ({ name: g.name, lr: g.lr ?? null, weightDecay: g.weightDecay ?? null })),
      paramGroups: Object.fromEntries([...this.groupOf.entries()]),
    };
  }

  /**
   * One update. `grads` are by parameter name; gradients of frozen or unknown names are ignored,
   * and a trainable parameter without a gradient is left as it is (PyTorch skips params whose
   * grad is None). Pass `gradNorm` when it is already known, to save a host sync. The gradients
   * remain the caller's to dispose.
   */
  step(grads: Grads, opts: { gradNorm?: number } = {}): StepReport {
    if (this.disposed) throw new Error('AdamW: step after dispose');
    const used = [...this.slots.values()].filter((s) => grads[s.name] !== undefined);
    for (const s of used) {
      const g = grads[s.name]!;
      if (!tf.util.arraysEqual(g.shape, s.param.shape)) {
        throw new Error(`AdamW: gradient of '${s.name}' has shape ${shapeStr(g.shape)}, the parameter has ${shapeStr(s.param.shape)}`);
      }
    }
    const gradNorm = opts.gradNorm ?? globalNorm(used.map((s) => grads[s.name]!));
    const clipCoef = this.maxGradNorm !== undefined ? clipCoefficient(gradNorm, this.maxGradNorm) : 1;
    const lr = this.currentLr();
    const t = this.steps + 1;
    const [b1, b2] = this.betas;
    const bc1 = 1 - b1 ** t;
    const bc2Sqrt = Math.sqrt(1 - b2 ** t);
    for (const s of used) {
      const glr = lr[s.group]!;
      const wd = this.groups.find((g) => g.name === s.group)?.weightDecay ?? this.weightDecay;
      tf.tidy(() => {
        let g = grads[s.name]!;
        if (clipCoef < 1) g = tf.mul(g, clipCoef);
        const m = tf.add(tf.mul(s.m, b1), tf.mul(g, 1 - b1));
        const v = tf.add(tf.mul(s.v, b2), tf.mul(tf.square(g), 1 - b2));
        const denom = tf.add(tf.div(tf.sqrt(v), bc2Sqrt), this.eps);
        // Toward 0 keeps PyTorch's single multiply, so existing runs stay bit for bit.
        const decayed = wd === 0 || glr === 0 ? s.param
          : this.decayTo === 0 ? tf.mul(s.param, 1 - glr * wd)
          : tf.add(tf.mul(tf.sub(s.param, this.decayTo), 1 - glr * wd), this.decayTo);
        const p = tf.sub(decayed, tf.mul(tf.div(m, denom), glr / bc1));
        s.m.assign(m);
        s.v.assign(v);
        s.param.assign(p);
      });
    }
    if (this.ema !== undefined) {
      const d = Math.min(this.ema, (1 + t) / (10 + t));
      for (const s of this.slots.values()) tf.tidy(() => s.ema!.assign(tf.add(tf.mul(s.ema!, d), tf.mul(s.param, 1 - d))));
    }
    this.steps = t;
    return { gradNorm, clipCoef, lr };
  }

  /** The state as named tensors ('m.<param>', 'v.<param>'); the tensors are the optimizer's own (do not dispose). */
  state(): AdamWState {
    const tensors: Record<string, Tensor> = {};
    for (const s of this.slots.values()) {
      tensors[`m.${s.name}`] = s.m;
      tensors[`v.${s.name}`] = s.v;
      if (s.ema) tensors[`ema.${s.name}`] = s.ema;
    }
    return { step: this.steps, tensors };
  }

  /**
   * The weights to sample from: every parameter's moving average, or the parameter itself when
   * it is frozen or `ema` is off. The tensors are the optimizer's and the caller's (do not dispose).
   */
  averaged(): Record<string, Tensor> {
    return Object.fromEntries(Object.entries(this.params).map(([n, p]) => [n, this.slots.get(n)?.ema ?? p]));
  }

  /** Restore a state saved by `state()` (exactly: same names, same shapes). */
  loadState(state: AdamWState): void {
    if (!Number.isSafeInteger(state.step) || state.step < 0) throw new Error(`AdamW: invalid step count ${state.step}`);
    const want = new Set<string>();
    for (const s of this.slots.values()) {
      want.add(`m.${s.name}`);
      want.add(`v.${s.name}`);
      if (s.ema) want.add(`ema.${s.name}`);
    }
    const have = Object.keys(state.tensors);
    const missing = [...want].filter((k) => !(k in state.tensors));
    const extra = have.filter((k) => !want.has(k));
    if (missing.length > 0 || extra.length > 0) {
      const what = [
        missing.length ? `missing ${missing.slice(0, 3).join(', ')}${missing.length > 3 ? ', ...' : ''}` : '',
        extra.length ? `unexpected ${extra.slice(0, 3).join(', ')}${extra.length > 3 ? ', ...' : ''}` : '',
      ].filter(Boolean).join('; ');
      throw new Error(`AdamW: saved optimizer state does not match the parameters (${what})`);
    }
    for (const s of this.slots.values()) {
      const slots: [string, tf.Variable][] = [[`m.${s.name}`, s.m], [`v.${s.name}`, s.v]];
      if (s.ema) slots.push([`ema.${s.name}`, s.ema]);
      for (const [key, slot] of slots) {
        const src = state.tensors[key]!;
        if (!tf.util.arraysEqual(src.shape, slot.shape)) {
          throw new Error(`AdamW: saved '${key}' has shape ${shapeStr(src.shape)}, the parameter has ${shapeStr(slot.shape)}`);
        }
        if (src instanceof tf.Tensor) slot.assign(src);
        else tf.tidy(() => slot.assign(tf.tensor(src.data, src.shape, 'float32')));
      }
    }
    this.steps = state.step;
  }

  /** Free m and v (the parameters are the caller's). */
  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    for (const s of this.slots.values()) {
      s.m.dispose();
      s.v.dispose();
      s.ema?.dispose();
    }
  }
}
