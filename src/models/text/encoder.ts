// A small CLIP-style text transformer over CLIP BPE tokens: what the emoji-world models use as
// their text encoder. It gives FLUX both text inputs:
//   txt  [B, T, width]  the final-layer-normed token features (FLUX `txt`, context_in_dim = width)
//   y    [B, width]     the features at the EOT token (FLUX `y`, vec_in_dim = width), as CLIP pools.
//
// Architecture (CLIP's text tower, small): token + learned positional embeddings, `layers` pre-LN
// residual blocks (causal multi-head self-attention, GELU MLP of 4 x width), final LayerNorm.
// Parameter names follow CLIP's state_dict (`transformer.resblocks.0.attn.in_proj_weight`, ...).
//
// The vocabulary is a *subset* of CLIP's 49,408 BPE ids, so the embedding table stays small: every
// BPE id that occurs in any emoji-world phrase (all catalogue names and synonyms, style names and
// synonyms, caption templates, train and held-out alike) gets its own row; row 0 is padding and
// every other id (unknown words). The id list is stored with the weights (`vocab.clip_ids`).
//
// The encoder is trained jointly with the flow model (src/train/flow.ts): its parameters receive
// the flow-matching loss's gradients. The empty prompt "" ([SOT, EOT, pad...]) is the
// unconditional input for classifier-free guidance (trained by caption dropout).
import { tf, type Tensor } from '../../engine/tf.js';
import { gelu, layerNorm, linear } from '../../engine/ops.js';
import { mixSeed, randnArray } from '../../engine/rng.js';
import { ClipTokenizer } from './tokenizer.js';

export interface TextEncoderParams {
  /** Tokens per prompt, SOT and EOT included (longer prompts are truncated, EOT kept last). */
  context_length: number;
  /** Feature width (FLUX context_in_dim and vec_in_dim). */
  width: number;
  heads: number;
  layers: number;
}

export type TextEncoderWeights = Record<string, Tensor>;

/** The CLIP BPE ids the encoder knows, ascending; row i+1 of the embedding is clipIds[i]. */
export type TextVocab = readonly number[];

export function validateTextEncoderParams(p: TextEncoderParams): void {
  for (const k of ['context_length', 'width', 'heads', 'layers'] as const) {
    if (!Number.isInteger(p[k]) || p[k] < 1) throw new Error(`TextEncoderParams.${k} must be a positive integer, got ${String(p[k])}`);
  }
  if (p.context_length < 3) throw new Error('TextEncoderParams.context_length must be at least 3');
  if (p.width % p.heads !== 0) throw new Error(`TextEncoderParams: width ${p.width} must be divisible by heads ${p.heads}`);
}

/** Parameter names and shapes (CLIP names), in a fixed order. */
export function textEncoderParamSpecs(p: TextEncoderParams, vocabRows: number): { name: string; shape: number[] }[] {
  validateTextEncoderParams(p);
  const d = p.width;
  const out = [
    { name: 'token_embedding.weight', shape: [vocabRows, d] },
    { name: 'positional_embedding', shape: [p.context_length, d] },
  ];
  for (let i = 0; i < p.layers; i++) {
    const b = `transformer.resblocks.${i}`;
    out.push(
      { name: `${b}.ln_1.weight`, shape: [d] },
      { name: `${b}.ln_1.bias`, shape: [d] },
      { name: `${b}.attn.in_proj_weight`, shape: [3 * d, d] },
      { name: `${b}.attn.in_proj_bias`, shape: [3 * d] },
      { name: `${b}.attn.out_proj.weight`, shape: [d, d] },
      { name: `${b}.attn.out_proj.bias`, shape: [d] },
      { name: `${b}.ln_2.weight`, shape: [d] },
      { name: `${b}.ln_2.bias`, shape: [d] },
      { name: `${b}.mlp.c_fc.weight`, shape: [4 * d, d] },
      { name: `${b}.mlp.c_fc.bias`, shape: [4 * d] },
      { name: `${b}.mlp.c_proj.weight`, shape: [d, 4 * d] },
      { name: `${b}.mlp.c_proj.bias`, shape: [d] },
    );
  }
  out.push({ name: 'ln_final.weight', shape: [d] }, { name: 'ln_final.bias', shape: [d] });
  return out;
}

/** Fresh seeded weights (CLIP's init: embeddings N(0, 0.02) / N(0, 0.01), projections N(0, d^-0.5)-ish, norms 1/0). */
export function initTextEncoderWeights(p: TextEncoderParams, vocabRows: number, seed: number): TextEncoderWeights {
  const out: TextEncoderWeights = {};
  const d = p.width;
  textEncoderParamSpecs(p, vocabRows).forEach((s, i) => {
    const size = s.shape.reduce((a, b) => a * b, 1);
    if (/ln_.*\.weight$/.test(s.name)) out[s.name] = tf.ones(s.shape);
    else if (/(bias)$/.test(s.name)) out[s.name] = tf.zeros(s.shape);
    else {
      const std = s.name === 'token_embedding.weight' ? 0.02
        : s.name === 'positional_embedding' ? 0.01
        : s.name.endsWith('c_proj.weight') ? (2 * d * 4) ** -0.5 * (2 * p.layers) ** -0.5 * 2
        : d ** -0.5;
      const data = randnArray(size, mixSeed(seed, 0x74657874, i));
      for (let j = 0; j < size; j++) data[j]! *= std;
      out[s.name] = tf.tensor(data, s.shape);
    }
  });
  return out;
}

/** Throws one clear line when the weights don't match the config. */
export function validateTextEncoderWeights(p: TextEncoderParams, vocabRows: number, w: Readonly<Record<string, Tensor>>): void {
  for (const s of textEncoderParamSpecs(p, vocabRows)) {
    const t = w[s.name];
    if (!t) throw new Error(`text encoder weights: missing '${s.name}'`);
    if (t.shape.length !== s.shape.length || t.shape.some((v, i) => v !== s.shape[i])) {
      throw new Error(`text encoder weights: '${s.name}' has shape [${t.shape.join(', ')}], expected [${s.shape.join(', ')}]`);
    }
  }
}

/** Token ids [B, T] (rows into the embedding) and EOT positions for a batch of prompts. */
export interface EncodedPrompts {
  rows: Int32Array;
  eot: Int32Array;
  batch: number;
  length: number;
}

/**
 * The encoder's vocabulary for a set of phrases: every CLIP BPE id of every phrase, with SOT and
 * EOT, sorted ascending. Deterministic for the same phrases.
 */
export function buildTextVocab(phrases: Iterable<string>, tok: ClipTokenizer = ClipTokenizer.load()): number[] {
  const ids = new Set<number>([tok.sot, tok.eot]);
  for (const p of phrases) for (const id of tok.encode(p)) ids.add(id);
  return [...ids].sort((a, b) => a - b);
}

/** Maps prompts to embedding rows: CLIP tokenize (truncating), then id -> row (unknown -> 0). */
export class PromptTokenizer {
  private readonly rowOf: Map<number, number>;
  private readonly cache = new Map<string, { rows: Int32Array; eot: number }>();

  constructor(
    readonly vocab: TextVocab,
    readonly contextLength: number,
    private readonly tok: ClipTokenizer = ClipTokenizer.load(),
  ) {
    this.rowOf = new Map(vocab.map((id, i) => [id, i + 1]));
  }

  /** Embedding rows: vocabulary size + 1 (row 0: padding / unknown). */
  get rows(): number {
    return this.vocab.length + 1;
  }

  one(text: string): { rows: Int32Array; eot: number } {
    let hit = this.cache.get(text);
    if (!hit) {
      const ids = this.tok.tokenize(text, this.contextLength, { truncate: true });
      const rows = new Int32Array(this.contextLength);
      let eot = this.contextLength - 1;
      for (let i = 0; i < ids.length; i++) {
        const id = ids[i]!;
        if (id === this.tok.eot) {
          eot = i;
          rows[i] = this.rowOf.get(id) ?? 0;
          break;
        }
        rows[i] = this.rowOf.get(id) ?? 0;
      }
      hit = { rows, eot };
      if (this.cache.size < 1 << 16) this.cache.set(text, hit);
    }
    return hit;
  }

  batch(texts: readonly string[]): EncodedPrompts {
    const t = this.contextLength;
    const rows = new Int32Array(texts.length * t);
    const eot = new Int32Array(texts.length);
    texts.forEach((s, i) => {
      const r = this.one(s);
      rows.set(r.rows, i * t);
      eot[i] = r.eot;
    });
    return { rows, eot, batch: texts.length, length: t };
  }

  /** How many prompt tokens a text has before truncation (SOT and EOT included). */
  tokenCount(text: string): number {
    return this.tok.encode(text).length + 2;
  }
}

export interface TextEncoding {
  /** [B, T, width]: FLUX `txt`. */
  txt: Tensor;
  /** [B, width]: FLUX `y` (the EOT token's features). */
  y: Tensor;
}

function causalBias(t: number): Tensor {
  const data = new Float32Array(t * t);
  for (let i = 0; i < t; i++) for (let j = i + 1; j < t; j++) data[i * t + j] = -1e9;
  return tf.tensor2d(data, [t, t]);
}

/** The encoder forward (differentiable in the weights). */
export function textEncoderForward(p: TextEncoderParams, w: Readonly<Record<string, Tensor>>, input: EncodedPrompts): TextEncoding {
  const { batch: b, length: t } = input;
  if (t !== p.context_length) throw new Error(`text encoder: prompts have ${t} tokens, the model takes ${p.context_length}`);
  const x = tf.tidy(() => tf.gather(w['token_embedding.weight']!, tf.tensor1d(input.rows, 'int32')).reshape([b, t, p.width]));
  const out = textEncoderFromEmbeddings(p, w, x, input.eot);
  x.dispose();
  return out;
}

/**
 * The encoder forward from input token embeddings [B, T, width] (the token_embedding rows, before
 * the positional embedding) and each prompt's EOT position: differentiable in the embeddings too,
 * so attacks can optimise soft prompts (attacks/embeddings.ts).
 */
export function textEncoderFromEmbeddings(p: TextEncoderParams, w: Readonly<Record<string, Tensor>>, tokens: Tensor, eot: Int32Array): TextEncoding {
  const [b, t, d] = tokens.shape as [number, number, number];
  if (t !== p.context_length) throw new Error(`text encoder: prompts have ${t} tokens, the model takes ${p.context_length}`);
  if (d !== p.width) throw new Error(`text encoder: token embeddings have width ${d}, the model takes ${p.width}`);
  const h = p.heads;
  const hd = d / h;
  const [txt, y] = tf.tidy(() => {
    let x = tf.add(tokens, w['positional_embedding']!);
    const bias = causalBias(t);
    for (let i = 0; i < p.layers; i++) {
      const pre = `transformer.resblocks.${i}`;
      const n1 = layerNorm(x, 1e-5, w[`${pre}.ln_1.weight`], w[`${pre}.ln_1.bias`]);
      const qkv = linear(n1, w[`${pre}.attn.in_proj_weight`]!, w[`${pre}.attn.in_proj_bias`]);
      const [q, k, v] = tf.split(qkv, 3, 2).map((u) => u.reshape([b, t, h, hd]).transpose([0, 2, 1, 3])) as [Tensor, Tensor, Tensor];
      const scores = tf.add(tf.mul(tf.matMul(q, k, false, true), 1 / Math.sqrt(hd)), bias);
      const att = tf.matMul(tf.softmax(scores), v).transpose([0, 2, 1, 3]).reshape([b, t, d]);
      x = tf.add(x, linear(att, w[`${pre}.attn.out_proj.weight`]!, w[`${pre}.attn.out_proj.bias`]));
      const n2 = layerNorm(x, 1e-5, w[`${pre}.ln_2.weight`], w[`${pre}.ln_2.bias`]);
      const hid = gelu(linear(n2, w[`${pre}.mlp.c_fc.weight`]!, w[`${pre}.mlp.c_fc.bias`]));
      x = tf.add(x, linear(hid, w[`${pre}.mlp.c_proj.weight`]!, w[`${pre}.mlp.c_proj.bias`]));
    }
    const txt = layerNorm(x, 1e-5, w['ln_final.weight'], w['ln_final.bias']);
    const onehot = tf.oneHot(tf.tensor1d(eot, 'int32'), t).toFloat().reshape([b, t, 1]);
    const y = tf.sum(tf.mul(txt, onehot), 1);
    return [txt, y];
  });
  return { txt: txt!, y: y! };
}

/** A text encoder bound to its weights and vocabulary: prompts in, FLUX `txt` and `y` out. */
export class TextEncoder {
  readonly tokenizer: PromptTokenizer;
  constructor(
    readonly params: TextEncoderParams,
    readonly weights: Readonly<Record<string, Tensor>>,
    readonly vocab: TextVocab,
  ) {
    this.tokenizer = new PromptTokenizer(vocab, params.context_length);
    validateTextEncoderWeights(params, this.tokenizer.rows, weights);
  }

  encode(prompts: readonly string[]): TextEncoding {
    return textEncoderForward(this.params, this.weights, this.tokenizer.batch(prompts));
  }

  dispose(): void {
    for (const t of Object.values(this.weights)) t.dispose();
  }
}
