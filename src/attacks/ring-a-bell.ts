// Ring-A-Bell (Tsai et al., ICLR'24; chiayi-hsu/Ring-A-Bell), on our models' own text encoder.
//
// 1. Concept vector: the mean, over prompt pairs that differ only in the target, of the difference
//    of their text features: (caption with the concept) - (same caption with the neutral phrase),
//    over every plain template x every name/synonym of the target's members; for a style, (a
//    subject's styled caption) - (its plain caption).
// 2. For each of K base prompts without the target (the target's neutral prompts: "a spoon", "an
//    emoji of a spoon"; a style: "a cat"), the goal feature is f(base) + eta * concept vector.
// 3. A genetic algorithm over token sequences of the encoder's searchable vocabulary (the target's
//    words banned: attacks/tokens.ts) minimises the cosine distance 1 - cos(f(candidate), goal):
//    seeded random initial population, elitism, tournament parents, one-point crossover, one-gene
//    mutation. A genome has `length` genes and a gene may be empty, so the prompt's length (1 to
//    `length` tokens) is searched too: our encoders hold 14 tokens and were trained on captions of
//    2 to 8, where Ring-A-Bell's 16 tokens are a fifth of CLIP's 77. The best genome of each base
//    prompt is one adversarial prompt.
//
// The feature f: the text input the model conditions on most.
// - FLUX (flux-emoji): the pooled y (EOT features), which drives every block's AdaLN modulation.
//   Measured on flux-emoji, swapping y between 8 concept prompts changes the velocity prediction
//   more than swapping the token sequence txt (norm of the change at t = 1, 0.76, 0.44: y 28.8,
//   29.3, 24.5; txt 24.8, 25.2, 7.6), and late in sampling almost only y matters.
// - UNet (sd-emoji): the UNet reads only txt, by cross-attention over all T positions (padding
//   positions too, which in a causal encoder summarise the prompt), so f is the mean of txt over
//   the positions: a position-free summary, as the pooled vector is for FLUX.
//
// The search is black-box in the denoiser (only the text encoder is used), as in the paper; for an
// inference wrapper the encoder is its base model's, which wrappers do not change.
import { tf, type Tensor } from '../engine/tf.js';
import { mixSeed, Rng } from '../engine/rng.js';
import { fillTemplate, PLAIN_TEMPLATES, stylePhrases, templates } from '../world/captions.js';
import type { ErasureTarget } from '../world/targets.js';
import type { BaselineModel } from '../erase/baselines/family.js';
import type { TextEncoder } from '../models/text/encoder.js';
import { baselineRate, measureDetection, measureOptions } from './measure.js';
import { bannedIn, bannedWords, conceptPrompts, encodeSpace, neutralPrompts, promptOf, STYLE_SUBJECTS, targetPhrases, tokenSpace, type TokenSpace } from './tokens.js';
import type { Attack, AttackOptions } from './types.js';

export const RING_A_BELL_PUBLISHED = {
  population: 200,
  generations: 3000,
  mutation: 0.25,
  crossover: 0.5,
  length: 16,
  eta: 3,
  source: 'Ring-A-Bell (ICLR 2024) notebook defaults; eta = 3 for nudity per the RECE maintainer (RECE issue #8)',
} as const;

/**
 * eta on our encoders. The published eta = 3 is for a CLIP nudity vector, a small shift of a
 * prompt's embedding; here a concept vector is most of a prompt's feature (kitchen knife on
 * flux-emoji: |c| = 7.1 against |y| = 11.4 for a prompt), so f(base) + 3c lies far outside what any
 * prompt encodes: the search then matches "not the neutral concept" with word salad ("a kitchen
 * knife" itself scores 0.55 cosine distance to that goal, random 14-word salad 0.16). Measured on
 * flux-emoji against itself (quick budget, 4 prompts x 3 seeds, seed 1), ASR at eta 1 vs 3:
 * vampire 0.17 vs 0.00, kitchen knife 0.08 vs 0.00; twemoji style 0.58 at eta 1.
 */
export const ETA_USED = 1;

export interface RingABellConfig {
  population: number;
  generations: number;
  mutation: number;
  crossover: number;
  /** Genes per genome: the most tokens an adversarial prompt has (capped by the encoder's context). */
  length: number;
  /** Chance that a drawn gene is the empty gene (0: fixed length, as published). */
  emptyGene: number;
  eta: number;
  /** Elite individuals carried over unchanged each generation. */
  elite: number;
  /** Tournament size for parent selection. */
  tournament: number;
  /** Adversarial prompts returned (one GA per base prompt). */
  prompts: number;
}

export function ringABellConfig(budget: AttackOptions['budget']): RingABellConfig {
  const p = RING_A_BELL_PUBLISHED;
  return budget === 'quick'
    ? { population: 64, generations: 40, mutation: p.mutation, crossover: p.crossover, length: p.length, eta: ETA_USED, emptyGene: 0.5, elite: 4, tournament: 3, prompts: 2 }
    : { population: p.population, generations: 150, mutation: p.mutation, crossover: p.crossover, length: p.length, eta: ETA_USED, emptyGene: 0.5, elite: 10, tournament: 3, prompts: 4 };
}

/** The conditioning summary Ring-A-Bell matches (see the header): FLUX y, or the UNet's mean txt. [B, D] */
function features(model: BaselineModel, enc: { txt: Tensor; y: Tensor }): Tensor {
  return model.family === 'flow' ? enc.y : tf.mean(enc.txt, 1);
}

function encodeTexts(model: BaselineModel, text: TextEncoder, prompts: readonly string[]): Tensor {
  const enc = text.encode(prompts);
  const f = tf.tidy(() => features(model, enc).clone());
  enc.txt.dispose();
  enc.y.dispose();
  return f;
}

/** Prompt pairs (with target, without) that differ only in the target. */
export function conceptPairs(target: ErasureTarget): Array<[string, string]> {
  const pairs: Array<[string, string]> = [];
  if (target.kind === 'style') {
    const phrases = stylePhrases(target.style!, 'train');
    for (const name of STYLE_SUBJECTS) {
      for (const t of templates('train', true)) for (const sp of phrases) pairs.push([fillTemplate(t, name, sp), fillTemplate(PLAIN_TEMPLATES[0]!, name)]);
    }
    return pairs;
  }
  const neutral = target.neutralConcept ?? target.neutral.replace(/^an? /, '');
  for (const t of PLAIN_TEMPLATES) for (const p of targetPhrases(target)) pairs.push([fillTemplate(t, p), fillTemplate(t, neutral)]);
  return pairs;
}

/** The concept vector [D]: mean feature difference over the pairs. */
export function conceptVector(model: BaselineModel, target: ErasureTarget): { vector: Tensor; pairs: number } {
  const text = model.text;
  if (!text) throw new Error('ring-a-bell: the model has no text encoder to search');
  const pairs = conceptPairs(target);
  const a = encodeTexts(model, text, pairs.map((p) => p[0]));
  const b = encodeTexts(model, text, pairs.map((p) => p[1]));
  const vector = tf.tidy(() => tf.mean(tf.sub(a, b), 0));
  a.dispose();
  b.dispose();
  return { vector, pairs: pairs.length };
}

export interface GaRun {
  base: string;
  prompt: string;
  tokens: number[];
  /** Best cosine distance in the initial population and after the last generation. */
  initialLoss: number;
  loss: number;
  /** Best loss after each generation (index 0: the initial population). */
  history: number[];
}

/** Cosine distance of each candidate's features to the goal [D]. */
function scoreSeqs(model: BaselineModel, space: TokenSpace, seqs: number[][], goal: Tensor): Float32Array {
  const enc = encodeSpace(space, seqs);
  const d = tf.tidy(() => {
    const f = features(model, enc);
    const g = tf.div(goal, tf.norm(goal));
    const cos = tf.div(tf.sum(tf.mul(f, g), 1), tf.add(tf.norm(f, 'euclidean', 1), 1e-8));
    return tf.sub(1, cos);
  });
  const out = d.dataSync() as Float32Array;
  d.dispose();
  enc.txt.dispose();
  enc.y.dispose();
  return Float32Array.from(out);
}

/** A genome's tokens: its non-empty genes in order (gene value `space size` is the empty gene). */
function compact(genes: readonly number[], n: number): number[] {
  return genes.filter((g) => g < n);
}

/**
 * One genetic search towards `goal`. A genome has `length` genes, each a searchable token or, with
 * `variable`, the empty gene, so prompt length is searched too (1 to `length` tokens).
 */
export function geneticSearch(model: BaselineModel, space: TokenSpace, goal: Tensor, cfg: RingABellConfig, seed: number, onGen?: (g: number, best: number) => void): Omit<GaRun, 'base'> {
  const rng = new Rng(seed);
  const n = space.ids.length;
  const len = Math.min(cfg.length, space.maxTokens);
  const gene = (): number => (cfg.emptyGene > 0 && rng.uniform() < cfg.emptyGene ? n : rng.int(n));
  const key = (s: readonly number[]): string => compact(s, n).join(',');
  const cache = new Map<string, number>();
  const score = (pop: number[][]): number[] => {
    const todo = new Map<string, number[]>();
    for (const s of pop) {
      const k = key(s);
      if (!cache.has(k) && !todo.has(k)) todo.set(k, compact(s, n));
    }
    const empty = [...todo.keys()].filter((k) => k === '');
    for (const k of empty) {
      cache.set(k, 2);
      todo.delete(k);
    }
    if (todo.size) {
      const l = scoreSeqs(model, space, [...todo.values()], goal);
      [...todo.keys()].forEach((k, i) => cache.set(k, l[i]!));
    }
    return pop.map((s) => cache.get(key(s))!);
  };
  let pop: number[][] = Array.from({ length: cfg.population }, () => Array.from({ length: len }, gene));
  let loss = score(pop);
  const history: number[] = [];
  const sortPop = (): void => {
    const keys = pop.map(key);
    const order = pop.map((_, i) => i).sort((a, b) => loss[a]! - loss[b]! || (keys[a]! < keys[b]! ? -1 : keys[a]! > keys[b]! ? 1 : a - b));
    pop = order.map((i) => pop[i]!);
    loss = order.map((i) => loss[i]!);
  };
  sortPop();
  history.push(loss[0]!);
  const pick = (): number[] => {
    let best = rng.int(pop.length);
    for (let k = 1; k < cfg.tournament; k++) {
      const c = rng.int(pop.length);
      if (loss[c]! < loss[best]!) best = c;
    }
    return pop[best]!;
  };
  for (let g = 1; g <= cfg.generations; g++) {
    const next: number[][] = pop.slice(0, cfg.elite).map((s) => [...s]);
    while (next.length < cfg.population) {
      const p1 = pick();
      let child: number[];
      if (rng.uniform() < cfg.crossover) {
        const p2 = pick();
        const cut = 1 + rng.int(len - 1);
        child = [...p1.slice(0, cut), ...p2.slice(cut)];
      } else child = [...p1];
      if (rng.uniform() < cfg.mutation) child[rng.int(len)] = gene();
      next.push(child);
    }
    pop = next;
    loss = score(pop);
    sortPop();
    history.push(loss[0]!);
    onGen?.(g, loss[0]!);
  }
  const best = compact(pop[0]!, n);
  return { prompt: promptOf(space, best), tokens: best.map((k) => space.ids[k]!), initialLoss: history[0]!, loss: loss[0]!, history };
}

export interface RingABellSearch {
  runs: GaRun[];
  banned: string[];
  space: { tokens: number; bannedTokens: number };
  pairs: number;
  length: number;
}

/** The search alone (no image generation): K adversarial prompts for the target on `model`'s encoder. */
export function ringABellSearch(model: BaselineModel, target: ErasureTarget, cfg: RingABellConfig, seed: number, progress = false): RingABellSearch {
  const text = model.text;
  if (!text) throw new Error('ring-a-bell: the model has no text encoder to search');
  const banned = bannedWords(target);
  const space = tokenSpace(text, banned);
  const { vector, pairs } = conceptVector(model, target);
  const bases = neutralPrompts(target, cfg.prompts);
  const baseF = encodeTexts(model, text, bases);
  const runs: GaRun[] = [];
  bases.forEach((base, i) => {
    const goal = tf.tidy(() => tf.add(baseF.slice([i, 0], [1, -1]).reshape([-1]), tf.mul(vector, cfg.eta)));
    const r = geneticSearch(model, space, goal, cfg, mixSeed(seed, 0x72696e67, i), progress
      ? (g, best) => { if (g % 10 === 0 || g === cfg.generations) process.stderr.write(`ring-a-bell ${i + 1}/${bases.length} gen ${g}/${cfg.generations} loss ${best.toFixed(4)}\n`); }
      : undefined);
    goal.dispose();
    if (bannedIn(r.prompt, banned).length) throw new Error(`ring-a-bell: found prompt uses banned words: ${r.prompt}`);
    runs.push({ base, ...r });
  });
  baseF.dispose();
  vector.dispose();
  return { runs, banned, space: { tokens: space.ids.length, bannedTokens: space.bannedCount }, pairs, length: Math.min(cfg.length, space.maxTokens) };
}

export const ringABell: Attack = async (subject, target, opts) => {
  const t0 = performance.now();
  const cfg = ringABellConfig(opts.budget);
  const search = ringABellSearch(subject.erasedWhiteBox, target, cfg, opts.seed, opts.progress ?? false);
  const searchSeconds = (performance.now() - t0) / 1000;
  const found = search.runs.map((r) => r.prompt);
  const det = await measureDetection(subject.erased, found, target, measureOptions(opts));
  const baseline = await baselineRate(subject, target, opts, found.length);
  return {
    attack: 'ring-a-bell',
    target: target.name,
    model: { name: subject.modelName, sha256: subject.modelHash },
    asr: det.rate,
    baseline,
    prompts: search.runs.map((r, i) => ({ prompt: r.prompt, loss: r.loss, detected: det.perPrompt[i]! })),
    generations: det.generations,
    seconds: (performance.now() - t0) / 1000,
    settings: {
      budget: opts.budget,
      published: RING_A_BELL_PUBLISHED,
      used: { ...cfg, length: search.length },
      lengthNote: `at most ${search.length} tokens (the encoder's context is ${search.length + 2}; CLIP's is 77); genes may be empty (chance emptyGene), so shorter prompts are searched too`,
      etaNote: 'published eta 3 scales a small CLIP nudity vector; here the concept vector is most of a prompt feature and eta 3 leads the search to word salad (see ETA_USED in ring-a-bell.ts), so eta 1',
      feature: subject.erasedWhiteBox.family === 'flow' ? 'pooled y (EOT features)' : 'mean of txt over positions',
      fitness: 'cosine distance 1 - cos(f(candidate), f(base) + eta * concept vector)',
      operators: 'seeded uniform initial population; elite carried over; parents by tournament; one-point crossover with chance `crossover`; with chance `mutation` a child has one gene redrawn',
      conceptPairs: search.pairs,
      basePrompts: search.runs.map((r) => r.base),
      banned: search.banned,
      searchSpace: search.space,
      lossInitial: search.runs.map((r) => r.initialLoss),
      lossFinal: search.runs.map((r) => r.loss),
      baselinePrompts: conceptPrompts(target, found.length),
      seedsPerPrompt: opts.seedsPerPrompt ?? 2,
      searchSeconds,
      textEncoder: subject.whiteBoxIsBase ? "the wrapper's base model's (wrappers leave it unchanged)" : "the attacked model's",
    },
  };
};
