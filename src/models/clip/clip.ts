// The emoji CLIP: a small CLIP-style dual encoder for emoji-world, for the "CLIP score (emoji dual
// encoder)". Not OpenAI's CLIP: trained by mce on real emoji renders paired with TRAIN-split
// captions only, with CLIP's recipe at toy scale.
//
//   image tower: the classifier backbone (models/classifier/backbone.ts) -> linear -> L2-normalise
//   text tower:  CLIP BPE ids -> compact vocabulary -> token + position embeddings -> pre-LN
//                transformer with a causal mask (as CLIP's) -> final LayerNorm -> the features at
//                the EOT token -> linear -> L2-normalise
//   loss:        symmetric InfoNCE over the batch with a learned temperature (logit_scale, CLIP's
//                init ln(1/0.07), clamped at ln 100)
//
// Vocabulary: the real CLIP BPE tokenizer (models/text/tokenizer.ts) gives the ids; only the ids
// that the world's captions can produce get an embedding row (`vocab`, stored in the weights file as
// an I32 tensor), every other id maps to one UNK row. This keeps the tower small (a few thousand
// rows instead of 49408).
import { tf, type Tensor } from '../../engine/tf.js';
import { gelu, layerNorm, linear } from '../../engine/ops.js';
import { Rng, mixSeed } from '../../engine/rng.js';
import { loadFloat32, SafetensorsFile, writeSafetensors, type WriteTensor } from '../../io/safetensors.js';
import type { FloatDtype } from '../../io/dtypes.js';
import { ClipTokenizer } from '../text/tokenizer.js';
import { backboneForward, backboneSpecs, featureDim, initBackbone, validateBackbone, type BackboneConfig, type Weights } from '../classifier/backbone.js';

export const CLIP_FORMAT = 'mce-emoji-clip/1';

export interface TextTowerConfig {
  /** Tokens per caption, SOT and EOT included (longer captions are truncated, CLIP-style). */
  context: number;
  width: number;
  layers: number;
  heads: number;
  mlpRatio: number;
}

export interface ClipConfig {
  image: BackboneConfig;
  text: TextTowerConfig;
  /** Joint embedding width. */
  embedDim: number;
  /** CLIP BPE ids with an embedding row; row 0 is padding, row 1 UNK, row k + 2 is vocab[k]. */
  vocab: number[];
}

/** Parameter names and shapes in a fixed order. */
export function clipSpecs(cfg: ClipConfig): [string, number[]][] {
  const W = cfg.text.width;
  const H = Math.round(W * cfg.text.mlpRatio);
  const out: [string, number[]][] = [
    ...backboneSpecs(cfg.image, 'visual.'),
    ['visual.proj.weight', [cfg.embedDim, featureDim(cfg.image)]],
    ['text.token_embedding', [cfg.vocab.length + 2, W]],
    ['text.positional_embedding', [cfg.text.context, W]],
  ];
  for (let i = 0; i < cfg.text.layers; i++) {
    const p = `text.layers.${i}.`;
    out.push(
      [`${p}ln1.weight`, [W]], [`${p}ln1.bias`, [W]],
      [`${p}attn.qkv.weight`, [3 * W, W]], [`${p}attn.qkv.bias`, [3 * W]],
      [`${p}attn.out.weight`, [W, W]], [`${p}attn.out.bias`, [W]],
      [`${p}ln2.weight`, [W]], [`${p}ln2.bias`, [W]],
      [`${p}mlp.fc1.weight`, [H, W]], [`${p}mlp.fc1.bias`, [H]],
      [`${p}mlp.fc2.weight`, [W, H]], [`${p}mlp.fc2.bias`, [W]],
    );
  }
  out.push(['text.ln_final.weight', [W]], ['text.ln_final.bias', [W]], ['text.proj.weight', [cfg.embedDim, W]], ['logit_scale', [1]]);
  return out;
}

export function validateClipConfig(cfg: ClipConfig): void {
  validateBackbone(cfg.image);
  const t = cfg.text;
  if (!t || !(t.width > 0) || t.width % t.heads !== 0) throw new Error('clip: text.width must be a positive multiple of text.heads');
  if (!Number.isInteger(t.context) || t.context < 3) throw new Error('clip: text.context must be an integer >= 3');
  if (!(cfg.embedDim > 0)) throw new Error('clip: embedDim must be positive');
}

/** Seeded initial parameters (host arrays), CLIP's init scales. */
export function initClip(cfg: ClipConfig, seed: number): Record<string, { shape: number[]; data: Float32Array }> {
  const out = initBackbone(cfg.image, seed, 'visual.');
  const W = cfg.text.width;
  const L = cfg.text.layers;
  const normal = (name: string, shape: number[], std: number, i: number): void => {
    const n = shape.reduce((a, b) => a * b, 1);
    const data = new Float32Array(n);
    const rng = new Rng(mixSeed(seed, 0x636c6970, i));
    for (let k = 0; k < n; k++) data[k] = std * rng.normal();
    out[name] = { shape, data };
  };
  clipSpecs(cfg).forEach(([name, shape], i) => {
    if (name.startsWith('visual.') && name !== 'visual.proj.weight') return;
    const n = shape.reduce((a, b) => a * b, 1);
    if (name === 'logit_scale') out[name] = { shape, data: Float32Array.of(Math.log(1 / 0.07)) };
    else if (name === 'visual.proj.weight') normal(name, shape, featureDim(cfg.image) ** -0.5, i);
    else if (name === 'text.token_embedding') normal(name, shape, 0.02, i);
    else if (name === 'text.positional_embedding') normal(name, shape, 0.01, i);
    else if (name === 'text.proj.weight') normal(name, shape, W ** -0.5, i);
    else if (/ln.*\.weight$/.test(name)) out[name] = { shape, data: new Float32Array(n).fill(1) };
    else if (name.endsWith('.bias')) out[name] = { shape, data: new Float32Array(n) };
    else if (name.endsWith('attn.qkv.weight')) normal(name, shape, W ** -0.5, i);
    else if (name.endsWith('attn.out.weight') || name.endsWith('mlp.fc2.weight')) normal(name, shape, W ** -0.5 * (2 * L) ** -0.5, i);
    else if (name.endsWith('mlp.fc1.weight')) normal(name, shape, (2 * W) ** -0.5, i);
    else throw new Error(`initClip: no init for ${name}`);
  });
  return out;
}

/** CLIP BPE ids -> rows of the compact vocabulary. */
export class ClipVocab {
  private readonly row = new Map<number, number>();
  readonly eotRow: number;

  constructor(readonly ids: readonly number[], private readonly tokenizer: ClipTokenizer = ClipTokenizer.load()) {
    ids.forEach((id, k) => this.row.set(id, k + 2));
    const eot = this.row.get(tokenizer.eot);
    if (eot === undefined || !this.row.has(tokenizer.sot)) throw new Error('clip vocab: must include SOT and EOT');
    this.eotRow = eot;
  }

  /** The vocabulary covering a set of texts (sorted CLIP ids, SOT and EOT included). */
  static covering(texts: Iterable<string>, tokenizer: ClipTokenizer = ClipTokenizer.load()): number[] {
    const ids = new Set<number>([tokenizer.sot, tokenizer.eot]);
    for (const t of texts) for (const id of tokenizer.encode(t)) ids.add(id);
    return [...ids].sort((a, b) => a - b);
  }

  /**
   * Rows [n, context] (Int32) and the EOT position of each text. Unknown ids become UNK (row 1);
   * positions after EOT are padding (row 0). Every tokenized row ends its text with EOT (truncation
   * keeps EOT), so the loop always finds it.
   */
  encode(texts: readonly string[], context: number): { rows: Int32Array; eot: Int32Array; unknown: number } {
    const rows = new Int32Array(texts.length * context);
    const eot = new Int32Array(texts.length);
    let unknown = 0;
    texts.forEach((t, i) => {
      const ids = this.tokenizer.tokenize(t, context, { truncate: true });
      let end = context - 1;
      for (let j = 0; j < context; j++) {
        const id = ids[j]!;
        const r = this.row.get(id);
        if (r === undefined) unknown++;
        rows[i * context + j] = r ?? 1;
        if (id === this.tokenizer.eot) {
          end = j;
          break;
        }
      }
      eot[i] = end;
    });
    return { rows, eot, unknown };
  }
}

/** Image embeddings [B, D] (L2-normalised) of NHWC images in [-1, 1]. */
export function encodeImageWith(cfg: ClipConfig, p: Weights, x: Tensor): Tensor {
  return tf.tidy(() => {
    const f = backboneForward(cfg.image, p, x, 'visual.');
    return l2normalize(linear(f, p['visual.proj.weight']!));
  });
}

function l2normalize(x: Tensor): Tensor {
  return tf.tidy(() => tf.div(x, tf.sqrt(tf.add(tf.sum(tf.square(x), -1, true), 1e-12))));
}

/** Text embeddings [B, D] (L2-normalised) of encoded rows [B, context] with their EOT positions. */
export function encodeTextWith(cfg: ClipConfig, p: Weights, rows: Tensor, eot: Int32Array): Tensor {
  return tf.tidy(() => {
    const { context: T, width: W, heads: nh, layers } = cfg.text;
    const B = rows.shape[0]!;
    const dh = W / nh;
    let h = tf.add(tf.gather(p['text.token_embedding']!, rows.reshape([-1])).reshape([B, T, W]), p['text.positional_embedding']!);
    const mask = causalMask(T);
    for (let i = 0; i < layers; i++) {
      const q = `text.layers.${i}.`;
      const a = layerNorm(h, 1e-5, p[`${q}ln1.weight`], p[`${q}ln1.bias`]);
      const qkv = linear(a, p[`${q}attn.qkv.weight`]!, p[`${q}attn.qkv.bias`]).reshape([B, T, 3, nh, dh]).transpose([2, 0, 3, 1, 4]);
      const [qq, kk, vv] = tf.unstack(qkv, 0) as [Tensor, Tensor, Tensor];
      const scores = tf.add(tf.mul(tf.matMul(qq, kk, false, true), 1 / Math.sqrt(dh)), mask);
      const att = tf.matMul(tf.softmax(scores), vv).transpose([0, 2, 1, 3]).reshape([B, T, W]);
      h = tf.add(h, linear(att, p[`${q}attn.out.weight`]!, p[`${q}attn.out.bias`]));
      const m = layerNorm(h, 1e-5, p[`${q}ln2.weight`], p[`${q}ln2.bias`]);
      h = tf.add(h, linear(gelu(linear(m, p[`${q}mlp.fc1.weight`]!, p[`${q}mlp.fc1.bias`])), p[`${q}mlp.fc2.weight`]!, p[`${q}mlp.fc2.bias`]));
    }
    h = layerNorm(h, 1e-5, p['text.ln_final.weight'], p['text.ln_final.bias']);
    // The EOT token's features, picked with a one-hot mask (no gather gradient needed).
    const pickData = new Float32Array(B * T);
    for (let b = 0; b < B; b++) pickData[b * T + eot[b]!] = 1;
    const pooled = tf.sum(tf.mul(h, tf.tensor3d(pickData, [B, T, 1])), 1);
    return l2normalize(linear(pooled, p['text.proj.weight']!));
  });
}

const maskCache = new Map<number, Float32Array>();
function causalMask(T: number): Tensor {
  let m = maskCache.get(T);
  if (!m) {
    m = new Float32Array(T * T);
    for (let i = 0; i < T; i++) for (let j = i + 1; j < T; j++) m[i * T + j] = -1e9;
    maskCache.set(T, m);
  }
  return tf.tensor2d(m, [T, T]);
}

/** The temperature-scaled logit factor exp(logit_scale), clamped at 100 as CLIP does. */
export function logitScale(p: Weights): Tensor {
  return tf.tidy(() => tf.exp(tf.minimum(p['logit_scale']!, Math.log(100))).reshape([]));
}

/** A loaded dual encoder for inference. */
export class EmojiClip {
  readonly vocab: ClipVocab;
  private disposed = false;

  constructor(readonly config: ClipConfig, readonly weights: Weights, readonly metadata: Record<string, string> = {}) {
    this.vocab = new ClipVocab(config.vocab);
  }

  get size(): number {
    return this.config.image.size;
  }

  static async load(path: string): Promise<EmojiClip> {
    const { tensors, metadata } = await loadFloat32(path);
    if (metadata['format'] !== CLIP_FORMAT) {
      throw new Error(`${path}: not an emoji CLIP model (format ${JSON.stringify(metadata['format'] ?? null)}, expected ${CLIP_FORMAT})`);
    }
    let config: ClipConfig;
    try {
      const c = JSON.parse(metadata['config']!) as Omit<ClipConfig, 'vocab'>;
      const vt = tensors['text.vocab'];
      if (!vt) throw new Error('missing text.vocab');
      config = { ...c, vocab: Array.from(vt.data, (v) => Math.round(v)) };
      validateClipConfig(config);
    } catch (e) {
      throw new Error(`${path}: bad emoji CLIP metadata (${(e as Error).message.split('\n')[0]})`);
    }
    const weights: Weights = {};
    for (const [name, shape] of clipSpecs(config)) {
      const t = tensors[name];
      if (!t) throw new Error(`${path}: missing tensor ${name}`);
      if (t.shape.join(',') !== shape.join(',')) throw new Error(`${path}: ${name} has shape [${t.shape}], expected [${shape}]`);
      weights[name] = tf.tensor(t.data, shape, 'float32');
    }
    return new EmojiClip(config, weights, metadata);
  }

  /** Image embeddings [N, D] (unit norm) of NHWC input in [-1, 1] at the model's size. */
  encodeImages(x: Tensor, batch = 256): Tensor {
    this.check();
    const n = x.shape[0]!;
    const parts: Tensor[] = [];
    for (let i = 0; i < n; i += batch) {
      parts.push(tf.tidy(() => encodeImageWith(this.config, this.weights, n <= batch ? x : x.slice([i, 0, 0, 0], [Math.min(batch, n - i), -1, -1, -1]))));
    }
    if (parts.length === 1) return parts[0]!;
    const all = tf.concat(parts, 0);
    tf.dispose(parts);
    return all;
  }

  /** Text embeddings [N, D] (unit norm). */
  encodeTexts(texts: readonly string[], batch = 512): Tensor {
    this.check();
    const T = this.config.text.context;
    const parts: Tensor[] = [];
    for (let i = 0; i < texts.length; i += batch) {
      const chunk = texts.slice(i, i + batch);
      const { rows, eot } = this.vocab.encode(chunk, T);
      parts.push(tf.tidy(() => encodeTextWith(this.config, this.weights, tf.tensor2d(rows, [chunk.length, T], 'int32'), eot)));
    }
    if (parts.length === 1) return parts[0]!;
    const all = tf.concat(parts, 0);
    tf.dispose(parts);
    return all;
  }

  private check(): void {
    if (this.disposed) throw new Error('emoji CLIP: used after dispose');
  }

  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    tf.dispose(Object.values(this.weights));
  }
}

/** Write dual-encoder weights with the config in the metadata and the vocabulary as an I32 tensor. */
export async function saveClip(
  path: string,
  cfg: ClipConfig,
  params: Record<string, Tensor | { shape: number[]; data: Float32Array }>,
  dtype: FloatDtype,
  extraMetadata: Record<string, string> = {},
): Promise<void> {
  const out: Record<string, WriteTensor> = {};
  for (const [name, shape] of clipSpecs(cfg)) {
    const p = params[name];
    if (!p) throw new Error(`saveClip: missing ${name}`);
    const data = p instanceof tf.Tensor ? (p.dataSync() as Float32Array) : p.data;
    // The temperature stays F32 (one number; exp() of it amplifies rounding).
    out[name] = { dtype: name === 'logit_scale' ? 'F32' : dtype, shape, data };
  }
  out['text.vocab'] = { dtype: 'I32', shape: [cfg.vocab.length], data: Int32Array.from(cfg.vocab) };
  const { vocab: _vocab, ...rest } = cfg;
  await writeSafetensors(path, out, { ...extraMetadata, format: CLIP_FORMAT, config: JSON.stringify(rest) });
}

/** Read only the metadata of a weights file (cheap: the header). */
export async function readMetadata(path: string): Promise<Record<string, string>> {
  const f = await SafetensorsFile.open(path);
  try {
    return { ...f.metadata };
  } finally {
    await f.close();
  }
}
