// The emoji-world concept and style classifier, one weights file:
//
//   features = backbone(x)                       [B, F]: the feature space of FID/KID ("emoji
//                                                classifier features")
//   concept logits = features @ concept_head     [B, #concepts] (the whole catalogue)
//   style logits   = style_features @ style_head [B, #styles]  (the vendors)
//
// The style head sits either on the same features (style_features = features) or, when the config
// has a `styleBackbone`, on a second, smaller backbone of its own (parameters 'style.*'). The shipped
// model uses its own: the concept head is trained to give the three vendors' drawings of a concept
// the same answer, which pushes vendor information out of the shared features, so a style head on
// them stays weak. Weights are stored as safetensors; the labels and the architecture travel in the
// file's metadata, so a weights file is self-describing.
import { tf, type Tensor } from '../../engine/tf.js';
import { loadFloat32, writeSafetensors, type WriteTensor } from '../../io/safetensors.js';
import type { FloatDtype } from '../../io/dtypes.js';
import { backboneForward, backboneSpecs, featureDim, initBackbone, validateBackbone, type BackboneConfig, type Weights } from './backbone.js';

export const CLASSIFIER_FORMAT = 'mce-emoji-classifier/1';

export interface ClassifierConfig {
  backbone: BackboneConfig;
  /** A separate backbone for the style head (absent: the style head uses the concept features). */
  styleBackbone?: BackboneConfig;
  /** Concept names; concept logit i is concepts[i]. */
  concepts: string[];
  /** Style (vendor) names; style logit i is styles[i]. */
  styles: string[];
}

/** Parameter names and shapes, in a fixed order. */
export function classifierSpecs(cfg: ClassifierConfig): [string, number[]][] {
  const f = featureDim(cfg.backbone);
  const fs = cfg.styleBackbone ? featureDim(cfg.styleBackbone) : f;
  return [
    ...backboneSpecs(cfg.backbone),
    ['concept_head.weight', [f, cfg.concepts.length]],
    ['concept_head.bias', [cfg.concepts.length]],
    ...(cfg.styleBackbone ? backboneSpecs(cfg.styleBackbone, 'style.') : []),
    ['style_head.weight', [fs, cfg.styles.length]],
    ['style_head.bias', [cfg.styles.length]],
  ];
}

/** Seeded initial parameters (host arrays). */
export function initClassifier(cfg: ClassifierConfig, seed: number): Record<string, { shape: number[]; data: Float32Array }> {
  const out = initBackbone(cfg.backbone, seed);
  if (cfg.styleBackbone) Object.assign(out, initBackbone(cfg.styleBackbone, seed + 1, 'style.'));
  // Small heads: logits start near uniform.
  const head = (name: string, k: number, s: number): void => {
    const f = name === 'style_head' && cfg.styleBackbone ? featureDim(cfg.styleBackbone) : featureDim(cfg.backbone);
    const data = new Float32Array(f * k);
    let x = (seed ^ s) >>> 0;
    for (let i = 0; i < data.length; i++) {
      x = (Math.imul(x, 1664525) + 1013904223) >>> 0;
      data[i] = ((x / 4294967296) * 2 - 1) * (0.5 / Math.sqrt(f));
    }
    out[`${name}.weight`] = { shape: [f, k], data };
    out[`${name}.bias`] = { shape: [k], data: new Float32Array(k) };
  };
  head('concept_head', cfg.concepts.length, 0x1234);
  head('style_head', cfg.styles.length, 0x5678);
  return out;
}

export interface ClassifierOutput {
  features: Tensor;
  conceptLogits: Tensor;
  styleLogits: Tensor;
}

/** Forward pass with any weights record (variables while training, tensors when loaded). */
export function classifierForward(cfg: ClassifierConfig, p: Weights, x: Tensor, featureDropout?: { rate: number; seed: number }): ClassifierOutput {
  const features = backboneForward(cfg.backbone, p, x);
  return tf.tidy(() => {
    let f = features;
    if (featureDropout && featureDropout.rate > 0) f = tf.dropout(f, featureDropout.rate, undefined, featureDropout.seed);
    const conceptLogits = tf.add(tf.matMul(f, p['concept_head.weight']!), p['concept_head.bias']!);
    const styleLogits = cfg.styleBackbone ? styleForward(cfg.styleBackbone, p, x) : tf.add(tf.matMul(f, p['style_head.weight']!), p['style_head.bias']!);
    return { features, conceptLogits, styleLogits };
  });
}

/** Style logits of a separate style backbone ('style.*' parameters and style_head). */
export function styleForward(styleBackbone: BackboneConfig, p: Weights, x: Tensor): Tensor {
  return tf.tidy(() => {
    const f = backboneForward(styleBackbone, p, x, 'style.');
    return tf.add(tf.matMul(f, p['style_head.weight']!), p['style_head.bias']!);
  });
}

/** One prediction. */
export interface Prediction {
  /** Top-k concepts, most probable first. */
  concepts: { name: string; p: number }[];
  style: { name: string; p: number };
}

/** A loaded classifier, ready for inference. */
export class Classifier {
  private disposed = false;

  constructor(readonly config: ClassifierConfig, readonly weights: Weights, readonly metadata: Record<string, string> = {}) {}

  /** Input side the model expects. */
  get size(): number {
    return this.config.backbone.size;
  }

  /** Load a weights file written by saveClassifier. */
  static async load(path: string): Promise<Classifier> {
    const { tensors, metadata } = await loadFloat32(path);
    if (metadata['format'] !== CLASSIFIER_FORMAT) {
      throw new Error(`${path}: not an emoji classifier (format ${JSON.stringify(metadata['format'] ?? null)}, expected ${CLASSIFIER_FORMAT})`);
    }
    let config: ClassifierConfig;
    try {
      config = {
        backbone: JSON.parse(metadata['backbone']!) as BackboneConfig,
        concepts: JSON.parse(metadata['concepts']!) as string[],
        styles: JSON.parse(metadata['styles']!) as string[],
      };
      if (metadata['styleBackbone']) config.styleBackbone = JSON.parse(metadata['styleBackbone']) as BackboneConfig;
      validateBackbone(config.backbone);
      if (config.styleBackbone) validateBackbone(config.styleBackbone);
    } catch (e) {
      throw new Error(`${path}: bad classifier metadata (${(e as Error).message.split('\n')[0]})`);
    }
    const weights: Weights = {};
    for (const [name, shape] of classifierSpecs(config)) {
      const t = tensors[name];
      if (!t) throw new Error(`${path}: missing tensor ${name}`);
      if (t.shape.join(',') !== shape.join(',')) throw new Error(`${path}: ${name} has shape [${t.shape}], expected [${shape}]`);
      weights[name] = tf.tensor(t.data, shape, 'float32');
    }
    return new Classifier(config, weights, metadata);
  }

  /** Forward pass on NHWC input in [-1, 1] at the model's size. The caller disposes the outputs. */
  forward(x: Tensor): ClassifierOutput {
    if (this.disposed) throw new Error('classifier: used after dispose');
    const [, h, w, c] = x.shape;
    if (x.rank !== 4 || h !== this.size || w !== this.size || c !== 3) {
      throw new Error(`classifier: input must be [N, ${this.size}, ${this.size}, 3], got [${x.shape.join(', ')}]`);
    }
    return classifierForward(this.config, this.weights, x);
  }

  /** Penultimate features [N, F] (the FID/KID feature space), in batches. */
  features(x: Tensor, batch = 256): Tensor {
    return this.batched(x, batch, (o) => o.features);
  }

  /** Concept and style probabilities (softmax), [N, #concepts] and [N, #styles]. */
  probabilities(x: Tensor, batch = 256): { concepts: Tensor; styles: Tensor } {
    const concepts = this.batched(x, batch, (o) => tf.softmax(o.conceptLogits));
    const styles = this.batched(x, batch, (o) => tf.softmax(o.styleLogits));
    return { concepts, styles };
  }

  /** Top-k concepts and the style of each image. */
  predict(x: Tensor, k = 5): Prediction[] {
    const { concepts, styles } = this.probabilities(x);
    const pc = concepts.dataSync() as Float32Array;
    const ps = styles.dataSync() as Float32Array;
    const n = x.shape[0]!;
    const nc = this.config.concepts.length;
    const ns = this.config.styles.length;
    concepts.dispose();
    styles.dispose();
    const out: Prediction[] = [];
    for (let i = 0; i < n; i++) {
      const row = pc.subarray(i * nc, (i + 1) * nc);
      const top = topK(row, k);
      const srow = ps.subarray(i * ns, (i + 1) * ns);
      const s = topK(srow, 1)[0]!;
      out.push({
        concepts: top.map((j) => ({ name: this.config.concepts[j]!, p: row[j]! })),
        style: { name: this.config.styles[s]!, p: srow[s]! },
      });
    }
    return out;
  }

  private batched(x: Tensor, batch: number, pick: (o: ClassifierOutput) => Tensor): Tensor {
    const n = x.shape[0]!;
    const parts: Tensor[] = [];
    for (let i = 0; i < n; i += batch) {
      const part = tf.tidy(() => {
        const xb = n <= batch ? x : x.slice([i, 0, 0, 0], [Math.min(batch, n - i), -1, -1, -1]);
        const o = this.forward(xb);
        const r = pick(o);
        return r;
      });
      parts.push(part);
    }
    if (parts.length === 1) return parts[0]!;
    const all = tf.concat(parts, 0);
    tf.dispose(parts);
    return all;
  }

  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    tf.dispose(Object.values(this.weights));
  }
}

/** Indices of the k largest values, largest first (ties: lower index first). */
export function topK(row: ArrayLike<number>, k: number): number[] {
  const idx: number[] = [];
  for (let j = 0; j < row.length; j++) {
    if (idx.length < k) {
      idx.push(j);
      idx.sort((a, b) => row[b]! - row[a]! || a - b);
    } else if (row[j]! > row[idx[k - 1]!]!) {
      idx[k - 1] = j;
      idx.sort((a, b) => row[b]! - row[a]! || a - b);
    }
  }
  return idx;
}

/** Write classifier weights (F32, F16 or BF16) with their config in the metadata. */
export async function saveClassifier(
  path: string,
  cfg: ClassifierConfig,
  params: Record<string, Tensor | { shape: number[]; data: Float32Array }>,
  dtype: FloatDtype,
  extraMetadata: Record<string, string> = {},
): Promise<void> {
  const out: Record<string, WriteTensor> = {};
  for (const [name, shape] of classifierSpecs(cfg)) {
    const p = params[name];
    if (!p) throw new Error(`saveClassifier: missing ${name}`);
    const data = p instanceof tf.Tensor ? (p.dataSync() as Float32Array) : p.data;
    out[name] = { dtype, shape, data };
  }
  await writeSafetensors(path, out, {
    ...extraMetadata,
    format: CLASSIFIER_FORMAT,
    backbone: JSON.stringify(cfg.backbone),
    ...(cfg.styleBackbone ? { styleBackbone: JSON.stringify(cfg.styleBackbone) } : {}),
    concepts: JSON.stringify(cfg.concepts),
    styles: JSON.stringify(cfg.styles),
  });
}
