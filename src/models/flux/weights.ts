// FLUX weights: a plain record from reference parameter name to tensor, checked against the
// names and shapes a config expects. Loading from files is io/'s job; this module only checks
// and (for tests and training from scratch) initialises.
import { tf, type Tensor } from '../../engine/tf.js';
import { uniformArray } from '../../engine/rng.js';
import { mixSeed } from '../../engine/rng.js';
import { type FluxParams, fluxParamSpecs } from './params.js';

/** Reference parameter name (`double_blocks.0.img_attn.qkv.weight`) -> tensor. */
export type FluxWeights = Readonly<Record<string, Tensor>>;

function firstFew(names: string[], n = 5): string {
  return names.slice(0, n).join(', ') + (names.length > n ? `, ... (${names.length} in all)` : '');
}

/**
 * Throws one clear line when `weights` does not match the config: missing or unexpected names
 * (the first few listed) or a wrong shape.
 */
export function validateFluxWeights(p: FluxParams, weights: FluxWeights): void {
  const specs = fluxParamSpecs(p);
  const want = new Set(specs.map((s) => s.name));
  const missing = specs.filter((s) => !(s.name in weights)).map((s) => s.name);
  if (missing.length) throw new Error(`FLUX weights: missing ${missing.length} tensors: ${firstFew(missing)}`);
  const extra = Object.keys(weights).filter((k) => !want.has(k));
  if (extra.length) throw new Error(`FLUX weights: unexpected ${extra.length} tensors: ${firstFew(extra)}`);
  for (const s of specs) {
    const t = weights[s.name]!;
    if (t.shape.length !== s.shape.length || t.shape.some((d, i) => d !== s.shape[i])) {
      throw new Error(`FLUX weights: '${s.name}' has shape [${t.shape.join(', ')}], expected [${s.shape.join(', ')}]`);
    }
  }
}

/**
 * Fresh weights for a (small) config, seeded: Linear weights and biases uniform in
 * +-1/sqrt(fan_in) as torch's nn.Linear default, QK-norm scales 1. Allocates every tensor,
 * so only for configs that fit in memory.
 */
export function initFluxWeights(p: FluxParams, seed: number): Record<string, Tensor> {
  const out: Record<string, Tensor> = {};
  const specs = fluxParamSpecs(p);
  specs.forEach((s, i) => {
    if (s.name.endsWith('.scale')) {
      out[s.name] = tf.ones(s.shape);
      return;
    }
    const fanIn = s.name.endsWith('.bias')
      ? specs.find((w) => w.name === s.name.replace(/\.bias$/, '.weight'))!.shape[1]!
      : s.shape[1]!;
    const bound = 1 / Math.sqrt(fanIn);
    const size = s.shape.reduce((a, b) => a * b, 1);
    out[s.name] = tf.tensor(uniformArray(size, mixSeed(seed, i), -bound, bound), s.shape);
  });
  return out;
}
