// MCE mask logits on the FLUX hook points (models/flux/masks.ts): one trainable logit per unit,
// grouped for the optimizer, turned into masks by a mode (hard-concrete for training, binary for
// inference), binarised by threshold or top-k, merged across runs, reported per layer and group,
// and saved / loaded as safetensors.
//
// Groups (mce-method.md §2.1; reference learning rates in DEFAULT_GROUP_LR):
//   ffn         double_blocks.{i}.img_mlp and .txt_mlp  (reference `ff`, lr 0.5)
//   txt_mod     double_blocks.{i}.txt_mod               (reference `norm` = norm1_context, lr 0.5)
//   heads       double_blocks.{i}.heads, single_blocks.{i}.heads (reference `attn`, lr 0: frozen)
//   single_mlp  single_blocks.{i}.mlp                   (not masked by the reference: lr 0 by default)
// A group with learning rate 0 is frozen at its init (λ = 3, mask 1 once binarised) and is not
// applied during training at all, so it costs nothing.
import { tf, type Tensor } from '../../engine/tf.js';
import { fluxMaskSpecs, type FluxMaskKind, type FluxMasks, type MaskSpec } from '../../models/flux/masks.js';
import type { FluxParams } from '../../models/flux/params.js';
import {
  HARD_CONCRETE_DEFAULTS, deterministicMask, hardConcrete, hardConcreteFromNoise, hardConcreteUniform, logisticNoise,
  type HardConcreteParams, type MaskMode,
} from './hardconcrete.js';

export type MaskGroup = 'ffn' | 'txt_mod' | 'heads' | 'single_mlp' | 'attn_linear';
export const MASK_GROUPS: readonly MaskGroup[] = ['ffn', 'txt_mod', 'heads', 'single_mlp', 'attn_linear'];

/**
 * Reference learning rates per group (flux.yaml: attn 0, ff 0.5, norm 0.5; single blocks unmasked).
 * attn_linear is the UNet's per-unit to_q/to_k/to_v/to_out outputs (the reference's SD LinearLayerHooker
 * masks every attention and FFN linear output with one rate).
 */
export const DEFAULT_GROUP_LR: Readonly<Record<MaskGroup, number>> = Object.freeze({ ffn: 0.5, txt_mod: 0.5, heads: 0, single_mlp: 0, attn_linear: 0.5 });

/** The reference initial logit: the hard-concrete mask is >= 0.9896 for every noise draw (1 once binarised). */
export const DEFAULT_INIT_LOGIT = 3;

export function groupOfKind(kind: FluxMaskKind): MaskGroup {
  switch (kind) {
    case 'img_mlp':
    case 'txt_mlp':
      return 'ffn';
    case 'txt_mod':
      return 'txt_mod';
    case 'heads':
      return 'heads';
    case 'mlp':
      return 'single_mlp';
  }
}

/** The group of a FLUX or UNet hook-point name ('double_blocks.0.img_mlp' -> 'ffn', '….ff.hidden' -> 'ffn'). */
export function groupOf(name: string): MaskGroup {
  const last = name.split('.').pop();
  if (last === 'img_mlp' || last === 'txt_mlp' || last === 'hidden') return 'ffn';
  if (last === 'to_q' || last === 'to_k' || last === 'to_v' || last === 'to_out') return 'attn_linear';
  if (last === 'txt_mod') return 'txt_mod';
  if (last === 'heads') return 'heads';
  if (last === 'mlp') return 'single_mlp';
  throw new Error(`not a FLUX mask hook point: '${name}'`);
}

/**
 * A test for hook-point names from globs ('*' matches any run of characters, dots included):
 * '*.txt_mlp' is every text-stream FFN, '*.attn2.to_k' every UNet cross-attention key projection.
 * A name is in when any glob matches it whole.
 */
export function hookMatcher(globs: readonly string[]): (name: string) => boolean {
  const res = globs.map((g) => new RegExp(`^${g.split('*').map((part) => part.replace(/[.+?^${}()|[\]\\]/g, '\\$&')).join('.*')}$`));
  return (name) => res.some((r) => r.test(name));
}

/**
 * The hook points that act on the text and nothing else, per model family (docs/erasure.md "Where the masks
 * act"; the bench's mce-text): FLUX's text-stream FFN and text modulation, a UNet's cross-attention
 * keys and values (the projections UCE edits).
 */
export const TEXT_ONLY_HOOKS: Readonly<Record<'flow' | 'diffusion', readonly string[]>> = Object.freeze({
  flow: ['*.txt_mlp', '*.txt_mod'],
  diffusion: ['*.attn2.to_k', '*.attn2.to_v'],
});

/** Mask logits by hook-point name (tf variables: the trainable parameters of MCE). */
export type MaskLogits = Record<string, tf.Variable>;

/** Host copy of masks or logits by hook-point name. */
export type HostMasks = Record<string, Float32Array>;

export interface InitOptions {
  /** Initial logit (default 3). */
  init?: number;
  /** Only these groups (default: all). */
  groups?: readonly MaskGroup[];
}

/** One logit per unit at every hook point of the config (or of the chosen groups), all at `init`. */
export function initMaskLogits(cfg: FluxParams, opts: InitOptions = {}): MaskLogits {
  return initLogitsFor(fluxMaskSpecs(cfg), opts);
}

/** One logit per unit for any list of hook points (FLUX or UNet names), all at `init`. */
export function initLogitsFor(specs: readonly { name: string; size: number }[], opts: InitOptions = {}): MaskLogits {
  const init = opts.init ?? DEFAULT_INIT_LOGIT;
  const want = new Set(opts.groups ?? MASK_GROUPS);
  const out: MaskLogits = {};
  for (const s of specs) {
    if (!want.has(groupOf(s.name))) continue;
    const t = tf.fill([s.size], init);
    out[s.name] = tf.variable(t, true);
    t.dispose();
  }
  return out;
}

/** AdamW parameter groups for mask logits, with per-group learning rates (missing: the reference's). */
export function optimizerGroups(lr: Partial<Record<MaskGroup, number>> = {}): { name: MaskGroup; match: (n: string) => boolean; lr: number }[] {
  return MASK_GROUPS.map((g) => ({ name: g, match: (n: string) => groupOf(n) === g, lr: lr[g] ?? DEFAULT_GROUP_LR[g] }));
}

export interface MaskOptions {
  mode: MaskMode;
  /** Binary threshold (default 0, the reference's). */
  threshold?: number;
  /** Seed of this forward call (hard-concrete noise); each hook point draws its own stream. */
  seed?: number;
  hc?: HardConcreteParams;
}

/**
 * Masks from logits (tensors, e.g. the variables or the recompute's params), in the order given by
 * `names`. Hard-concrete draws hook point i's noise from (seed, i), so a recompute with the same
 * seed gives the same masks. Differentiable in the logits except in 'binary' mode.
 */
export function masksFromLogits(names: readonly string[], logits: readonly Tensor[], opts: MaskOptions): Record<string, Tensor> {
  const out: Record<string, Tensor> = {};
  const hc = opts.hc ?? HARD_CONCRETE_DEFAULTS;
  if (opts.mode === 'hard-concrete' && logits.length > 1) return hardConcreteAll(names, logits, opts.seed ?? 0, hc);
  names.forEach((n, i) => {
    const l = logits[i]!;
    out[n] = opts.mode === 'hard-concrete' ? hardConcrete(l, opts.seed ?? 0, i, hc) : deterministicMask(l, opts.mode, opts.threshold ?? 0, hc);
  });
  return out;
}

/**
 * Hard-concrete masks of every hook point as one elementwise computation over the concatenated
 * logits, then split: the same numbers as hardConcrete per hook point (each keeps its own noise
 * stream i), in ~10 kernels forward and backward instead of ~20 per hook point (the UNet has 63).
 */
function hardConcreteAll(names: readonly string[], logits: readonly Tensor[], seed: number, hc: HardConcreteParams): Record<string, Tensor> {
  const sizes = logits.map((l) => l.size);
  const noise = new Float32Array(sizes.reduce((a, b) => a + b, 0));
  let off = 0;
  sizes.forEach((n, i) => {
    noise.set(logisticNoise(hardConcreteUniform(n, seed, i), hc.eps), off);
    off += n;
  });
  return tf.tidy(() => {
    const all = hardConcreteFromNoise(tf.concat(logits.map((l) => l.reshape([-1])), 0), tf.tensor1d(noise), hc);
    const parts = tf.split(all, sizes, 0);
    return Object.fromEntries(names.map((n, i) => [n, parts[i]!.reshape(logits[i]!.shape)]));
  });
}

/** Deterministic masks for inference ('binary' by default) from host or tensor logits. Caller disposes. */
export function fluxMasksFrom(logits: Readonly<Record<string, Tensor | Float32Array>>, mode: Exclude<MaskMode, 'hard-concrete'> = 'binary', threshold = 0): FluxMasks {
  const names = Object.keys(logits);
  const ts = names.map((n) => {
    const v = logits[n]!;
    return v instanceof Float32Array ? tf.tensor1d(v) : v;
  });
  const out = masksFromLogits(names, ts, { mode, threshold });
  ts.forEach((t, i) => {
    if (!(logits[names[i]!] instanceof tf.Tensor)) t.dispose();
  });
  return out;
}

/** Host copies of the logits. */
export function hostLogits(logits: Readonly<Record<string, Tensor>>): HostMasks {
  const out: HostMasks = {};
  for (const [n, t] of Object.entries(logits)) out[n] = Float32Array.from(t.dataSync());
  return out;
}

// ------------------------------------------------------------------ binarisation

export type Binarize =
  | { kind: 'threshold'; threshold?: number }
  /** Keep the `keep` fraction of units with the largest logits within each layer (stable: ties keep the earlier unit). */
  | { kind: 'topk-layer'; keep: number }
  /** Keep the `keep` fraction of units with the largest logits across all layers of each group. */
  | { kind: 'topk-global'; keep: number };

function topkKeep(values: { v: number; layer: string; i: number }[], keep: number, out: HostMasks): void {
  if (!(keep >= 0 && keep <= 1)) throw new Error(`top-k: keep must be a fraction in [0, 1], got ${keep}`);
  const k = Math.round(keep * values.length);
  // Stable: by value descending, then by original order.
  const order = values.map((x, j) => [x, j] as const).sort((a, b) => b[0].v - a[0].v || a[1] - b[1]);
  for (let j = 0; j < k; j++) {
    const x = order[j]![0];
    out[x.layer]![x.i] = 1;
  }
}

/**
 * A binarisation rule as the command line writes it: 'threshold:T' (keep a unit iff its logit is
 * above T; 'threshold' alone is T = 0, the reference's rule), 'topk-layer:F' or 'topk-global:F'
 * (keep the fraction F with the largest logits in each layer, or across each group's layers).
 */
export function parseBinarize(raw: string): Binarize {
  const [kind, arg, extra] = raw.split(':');
  const value = arg === undefined || arg === '' ? NaN : Number(arg);
  const fail = (why: string): never => {
    throw new Error(`binarisation rule '${raw}': ${why} (threshold:T, topk-layer:F or topk-global:F)`);
  };
  if (extra !== undefined) fail('too many parts');
  if (kind === 'threshold') {
    if (arg === undefined) return { kind, threshold: 0 };
    if (!Number.isFinite(value)) fail('the threshold must be a number');
    return { kind, threshold: value };
  }
  if (kind === 'topk-layer' || kind === 'topk-global') {
    if (!(value >= 0 && value <= 1)) fail('the kept fraction must be from 0 to 1');
    return { kind, keep: value };
  }
  return fail('unknown kind');
}

/** A rule as parseBinarize reads it back. */
export function formatBinarize(rule: Binarize): string {
  return rule.kind === 'threshold' ? `threshold:${rule.threshold ?? 0}` : `${rule.kind}:${rule.keep}`;
}

/** Binary keep-masks (1 keep, 0 prune) from host logits. */
export function binarize(logits: Readonly<HostMasks>, rule: Binarize = { kind: 'threshold' }): HostMasks {
  const out: HostMasks = {};
  for (const [n, l] of Object.entries(logits)) out[n] = new Float32Array(l.length);
  if (rule.kind === 'threshold') {
    const th = rule.threshold ?? 0;
    for (const [n, l] of Object.entries(logits)) for (let i = 0; i < l.length; i++) out[n]![i] = l[i]! > th ? 1 : 0;
  } else if (rule.kind === 'topk-layer') {
    for (const [n, l] of Object.entries(logits)) topkKeep(Array.from(l, (v, i) => ({ v, layer: n, i })), rule.keep, out);
  } else {
    const byGroup = new Map<MaskGroup, { v: number; layer: string; i: number }[]>();
    for (const [n, l] of Object.entries(logits)) {
      const g = groupOf(n);
      const list = byGroup.get(g) ?? [];
      for (let i = 0; i < l.length; i++) list.push({ v: l[i]!, layer: n, i });
      byGroup.set(g, list);
    }
    for (const list of byGroup.values()) topkKeep(list, rule.keep, out);
  }
  return out;
}

/**
 * Merge binary keep-masks from several runs (multi-concept erasure, the reference's
 * mask_merging.py): a unit is kept iff every set keeps it (AND). A hook point missing from a set
 * counts as all-kept there.
 */
export function mergeMasks(sets: readonly Readonly<HostMasks>[]): HostMasks {
  if (sets.length === 0) throw new Error('mergeMasks: no mask sets');
  const out: HostMasks = {};
  for (const s of sets) {
    for (const [n, m] of Object.entries(s)) {
      const cur = out[n];
      if (!cur) {
        out[n] = Float32Array.from(m, (v) => (v > 0.5 ? 1 : 0));
        continue;
      }
      if (cur.length !== m.length) throw new Error(`mergeMasks: '${n}' has ${m.length} units in one set and ${cur.length} in another`);
      for (let i = 0; i < m.length; i++) if (!(m[i]! > 0.5)) cur[i] = 0;
    }
  }
  return out;
}

// ------------------------------------------------------------------ sparsity report

export interface LayerSparsity {
  name: string;
  group: MaskGroup;
  units: number;
  pruned: number;
  /** pruned / units. */
  fraction: number;
}

export interface SparsityReport {
  layers: LayerSparsity[];
  groups: { group: MaskGroup; units: number; pruned: number; fraction: number }[];
  total: { units: number; pruned: number; fraction: number };
}

/** Pruned units (mask value <= 0.5) per layer and group, for binary or continuous masks. */
export function sparsityReport(masks: Readonly<HostMasks>): SparsityReport {
  const order = new Map<string, number>();
  const layers: LayerSparsity[] = [];
  for (const [n, m] of Object.entries(masks)) {
    let pruned = 0;
    for (const v of m) if (!(v > 0.5)) pruned++;
    layers.push({ name: n, group: groupOf(n), units: m.length, pruned, fraction: m.length ? pruned / m.length : 0 });
  }
  const blockKey = (n: string): [number, number, string] => {
    const [b, i, ...k] = n.split('.');
    if (b !== 'double_blocks' && b !== 'single_blocks') return [2, 0, n]; // UNet names: keep their order
    return [b === 'double_blocks' ? 0 : 1, Number(i), k.join('.')];
  };
  layers.sort((a, b) => {
    const x = blockKey(a.name);
    const y = blockKey(b.name);
    return x[0] - y[0] || x[1] - y[1] || (x[0] === 2 ? 0 : x[2] < y[2] ? -1 : x[2] > y[2] ? 1 : 0);
  });
  layers.forEach((l, i) => order.set(l.name, i));
  const groups = MASK_GROUPS.map((g) => {
    const ls = layers.filter((l) => l.group === g);
    const units = ls.reduce((a, l) => a + l.units, 0);
    const pruned = ls.reduce((a, l) => a + l.pruned, 0);
    return { group: g, units, pruned, fraction: units ? pruned / units : 0 };
  }).filter((g) => g.units > 0);
  const units = layers.reduce((a, l) => a + l.units, 0);
  const pruned = layers.reduce((a, l) => a + l.pruned, 0);
  return { layers, groups, total: { units, pruned, fraction: units ? pruned / units : 0 } };
}

/** The report as a plain-text table (one line per layer, then per group, then the total). */
export function formatSparsity(r: SparsityReport): string {
  const w = Math.max(10, ...r.layers.map((l) => l.name.length));
  const pct = (f: number): string => `${(100 * f).toFixed(1)}%`.padStart(7);
  const line = (name: string, group: string, units: number, pruned: number, f: number): string =>
    `${name.padEnd(w)}  ${group.padEnd(10)}  ${String(units).padStart(7)}  ${String(pruned).padStart(7)}  ${pct(f)}`;
  const out = [`${'layer'.padEnd(w)}  ${'group'.padEnd(10)}  ${'units'.padStart(7)}  ${'pruned'.padStart(7)}  ${'pruned%'.padStart(7)}`];
  for (const l of r.layers) out.push(line(l.name, l.group, l.units, l.pruned, l.fraction));
  out.push('-'.repeat(w + 40));
  for (const g of r.groups) out.push(line(`group ${g.group}`, g.group, g.units, g.pruned, g.fraction));
  out.push(line('total', '', r.total.units, r.total.pruned, r.total.fraction));
  return out.join('\n');
}

/** Spec of every hook point in the config, by name. */
export function maskSpecMap(cfg: FluxParams): Map<string, MaskSpec> {
  return new Map(fluxMaskSpecs(cfg).map((s) => [s.name, s]));
}
