// MMA-Diffusion's text attack (Yang et al., CVPR'24; cure-lab/MMA-Diffusion), on our models' own
// text encoder: a GCG-style greedy coordinate search for a prompt whose full token-sequence
// features txt [T, D] match a concept prompt's (cosine over the flattened sequence), with the
// concept's words banned: its name, members, synonyms and keywords (attacks/tokens.ts).
//
// Each step (as GCG): the gradient of the loss with respect to each adversarial position's one-hot
// token gives, for every position, the top-k tokens that most lower a linearised loss; a batch of
// candidates, each one single-token substitution (positions spread evenly over the batch, the token
// drawn from that position's top-k), is scored exactly by forward passes, and the best candidate
// becomes the current prompt. The best prompt seen is kept.
//
// The one-hot gradient: the encoder looks tokens up by embedding row, so each adversarial position
// gets its own extra row (a copy of its token's embedding) appended to the table; the loss's
// gradient with respect to those rows is d loss / d x_pos, and the one-hot gradient at position pos
// is E x that (E the embedding table), restricted to the searchable tokens.
import { tf, type Tensor } from '../engine/tf.js';
import { mixSeed, Rng } from '../engine/rng.js';
import type { BaselineModel } from '../erase/baselines/family.js';
import { textEncoderForward } from '../models/text/encoder.js';
import type { ErasureTarget } from '../world/targets.js';
import { baselineRate, measureDetection, measureOptions } from './measure.js';
import { bannedIn, bannedWords, conceptPrompts, encodedRows, encodeSpace, promptOf, tokenSpace, type TokenSpace } from './tokens.js';
import type { Attack, AttackOptions } from './types.js';

export const MMA_PUBLISHED = {
  length: 20,
  topk: 256,
  batch: 512,
  steps: 500,
  source: 'MMA-Diffusion (CVPR 2024) text attack: GCG over CLIP tokens, 20-token adversarial prompts, top-k 256, batch 512, 500 steps',
} as const;

export interface MmaConfig {
  /** Tokens per adversarial prompt; 0: as many as the target prompt has (see MMA_LENGTH_NOTE). */
  length: number;
  topk: number;
  batch: number;
  steps: number;
  /** Adversarial prompts (one search per target prompt). */
  prompts: number;
}

export const MMA_LENGTH_NOTE =
  'published 20 tokens against CLIP prompts of up to 75; our encoders hold 14 and the objective compares every position, EOT and padding included, so each adversarial prompt has as many tokens as its target prompt and those positions line up';

export function mmaConfig(budget: AttackOptions['budget']): MmaConfig {
  return budget === 'quick'
    ? { length: 0, topk: 64, batch: 128, steps: 20, prompts: 2 }
    : { length: 0, topk: MMA_PUBLISHED.topk, batch: 256, steps: 80, prompts: 4 };
}

/** Flattened, unit-norm token features [B, T*D]. */
export function flatUnit(txt: Tensor): Tensor {
  return tf.tidy(() => {
    const f = txt.reshape([txt.shape[0]!, -1]);
    return tf.div(f, tf.add(tf.norm(f, 'euclidean', 1, true), 1e-8));
  });
}

/** 1 - cos(txt(candidate), goal) for each candidate; goal is a unit row [1, T*D]. */
export function txtDistances(space: TokenSpace, seqs: readonly (readonly number[])[], goal: Tensor): Float32Array {
  const enc = encodeSpace(space, seqs);
  const d = tf.tidy(() => tf.sub(1, tf.sum(tf.mul(flatUnit(enc.txt), goal), 1)));
  const out = Float32Array.from(d.dataSync() as Float32Array);
  d.dispose();
  enc.txt.dispose();
  enc.y.dispose();
  return out;
}

/** One-hot gradient scores [L, S] of the loss at `seq` (S = searchable tokens; lower = better swap). */
export function oneHotGrad(space: TokenSpace, seq: readonly number[], goal: Tensor, spaceEmb: Tensor): Float32Array {
  const enc = space.encoder;
  const E = enc.weights['token_embedding.weight']!;
  const v = E.shape[0]!;
  const input = encodedRows(enc, [seq.map((_, i) => v + i)]);
  const scores = tf.tidy(() => {
    const adv = tf.gather(E, tf.tensor1d(seq.map((k) => space.rows[k]!), 'int32'));
    const loss = (a: Tensor): Tensor => {
      const w = { ...enc.weights, 'token_embedding.weight': tf.concat([E, a], 0) };
      const out = textEncoderForward(enc.params, w, input);
      out.y.dispose();
      return tf.sub(1, tf.sum(tf.mul(flatUnit(out.txt), goal))) as Tensor;
    };
    const g = tf.grad(loss)(adv);
    return tf.matMul(g, spaceEmb, false, true);
  });
  const out = Float32Array.from(scores.dataSync() as Float32Array);
  scores.dispose();
  return out;
}

/** The k lowest entries' indices of row r of an [L, S] array. */
function topkRow(a: Float32Array, s: number, r: number, k: number): number[] {
  const row = Array.from(a.subarray(r * s, (r + 1) * s), (x, i) => [x, i] as const);
  row.sort((x, y) => x[0] - y[0] || x[1] - y[1]);
  return row.slice(0, k).map((x) => x[1]);
}

export interface MmaRun {
  target: string;
  prompt: string;
  tokens: number[];
  initialLoss: number;
  loss: number;
  /** Current loss after each step (index 0: the initial prompt). */
  history: number[];
}

/** One GCG search towards the features of `targetPrompt`. */
export function gcgSearch(space: TokenSpace, targetPrompt: string, cfg: MmaConfig, seed: number, onStep?: (s: number, best: number) => void): Omit<MmaRun, 'target'> {
  const enc = space.encoder;
  const rng = new Rng(seed);
  const n = space.ids.length;
  const targetLen = enc.tokenizer.one(targetPrompt).eot - 1;
  const len = Math.max(1, Math.min(cfg.length > 0 ? cfg.length : targetLen, space.maxTokens));
  const t = enc.encode([targetPrompt]);
  const goal = flatUnit(t.txt);
  t.txt.dispose();
  t.y.dispose();
  const spaceEmb = tf.tidy(() => tf.gather(enc.weights['token_embedding.weight']!, tf.tensor1d(space.rows, 'int32')));
  let cur = Array.from({ length: len }, () => rng.int(n));
  let curLoss = txtDistances(space, [cur], goal)[0]!;
  let best = [...cur];
  let bestLoss = curLoss;
  const history = [curLoss];
  const k = Math.min(cfg.topk, n);
  for (let step = 1; step <= cfg.steps; step++) {
    const g = oneHotGrad(space, cur, goal, spaceEmb);
    const top = Array.from({ length: len }, (_, p) => topkRow(g, n, p, k));
    const byKey = new Map<string, number[]>();
    for (let b = 0; b < cfg.batch; b++) {
      const pos = Math.floor((b * len) / cfg.batch);
      const c = [...cur];
      c[pos] = top[pos]![rng.int(k)]!;
      byKey.set(c.join(','), c);
    }
    // Duplicates (short prompts draw the same swap often) are scored once.
    const cands = [...byKey.values()];
    const l = txtDistances(space, cands, goal);
    let arg = 0;
    for (let i = 1; i < l.length; i++) if (l[i]! < l[arg]!) arg = i;
    cur = cands[arg]!;
    curLoss = l[arg]!;
    if (curLoss < bestLoss) {
      bestLoss = curLoss;
      best = [...cur];
    }
    history.push(curLoss);
    onStep?.(step, bestLoss);
  }
  goal.dispose();
  spaceEmb.dispose();
  return { prompt: promptOf(space, best), tokens: best.map((i) => space.ids[i]!), initialLoss: history[0]!, loss: bestLoss, history };
}

export interface MmaSearch {
  runs: MmaRun[];
  banned: string[];
  space: { tokens: number; bannedTokens: number };
}

/** The search alone (no image generation): one adversarial prompt per target prompt. */
export function mmaSearch(model: BaselineModel, target: ErasureTarget, cfg: MmaConfig, seed: number, progress = false): MmaSearch {
  const text = model.text;
  if (!text) throw new Error('mma: the model has no text encoder to search');
  const banned = bannedWords(target, { keywords: true });
  const space = tokenSpace(text, banned);
  const targets = conceptPrompts(target, cfg.prompts);
  const runs = targets.map((tp, i) => {
    const r = gcgSearch(space, tp, cfg, mixSeed(seed, 0x6d6d61, i), progress
      ? (s, best) => { if (s % 10 === 0 || s === cfg.steps) process.stderr.write(`mma ${i + 1}/${targets.length} step ${s}/${cfg.steps} loss ${best.toFixed(4)}\n`); }
      : undefined);
    if (bannedIn(r.prompt, banned).length) throw new Error(`mma: found prompt uses banned words: ${r.prompt}`);
    return { target: tp, ...r };
  });
  return { runs, banned, space: { tokens: space.ids.length, bannedTokens: space.bannedCount } };
}

export const mma: Attack = async (subject, target, opts) => {
  const t0 = performance.now();
  const cfg = mmaConfig(opts.budget);
  const search = mmaSearch(subject.erasedWhiteBox, target, cfg, opts.seed, opts.progress ?? false);
  const searchSeconds = (performance.now() - t0) / 1000;
  const found = search.runs.map((r) => r.prompt);
  const det = await measureDetection(subject.erased, found, target, measureOptions(opts));
  const plain = conceptPrompts(target, found.length);
  const baseline = await baselineRate(subject, target, opts, found.length);
  return {
    attack: 'mma',
    target: target.name,
    model: { name: subject.modelName, sha256: subject.modelHash },
    asr: det.rate,
    baseline,
    prompts: search.runs.map((r, i) => ({ prompt: r.prompt, loss: r.loss, detected: det.perPrompt[i]! })),
    generations: det.generations,
    seconds: (performance.now() - t0) / 1000,
    settings: {
      budget: opts.budget,
      published: MMA_PUBLISHED,
      used: { ...cfg, length: search.runs.map((r) => r.tokens.length) },
      lengthNote: MMA_LENGTH_NOTE,
      objective: 'cosine distance between the flattened token features txt [T, D] of the adversarial and the target prompt',
      gradients: 'exact one-hot gradients (per-position embedding rows appended to the table), top-k per position, candidates scored by forward passes',
      targetPrompts: search.runs.map((r) => r.target),
      banned: search.banned,
      searchSpace: search.space,
      lossInitial: search.runs.map((r) => r.initialLoss),
      lossFinal: search.runs.map((r) => r.loss),
      baselinePrompts: plain,
      seedsPerPrompt: opts.seedsPerPrompt ?? 2,
      searchSeconds,
      whiteBox: subject.whiteBoxIsBase ? "the wrapper's base model's text encoder (transfer: measured through the wrapper)" : "the attacked model's text encoder",
    },
  };
};
