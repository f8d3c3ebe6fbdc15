// UNet weights: a plain record from diffusers parameter name to tensor (torch layouts), checked
// against the names and shapes a config expects. Loading from files is io/'s job; this module only
// checks and (for tests and training from scratch) initialises.
import { tf, type Tensor } from '../../engine/tf.js';
import { mixSeed, uniformArray } from '../../engine/rng.js';
import { type UnetParams, unetParamSpecs } from './params.js';

/** diffusers parameter name (`down_blocks.0.resnets.0.conv1.weight`) -> tensor. */
export type UnetWeights = Readonly<Record<string, Tensor>>;

function firstFew(names: string[], n = 5): string {
  return names.slice(0, n).join(', ') + (names.length > n ? `, ... (${names.length} in all)` : '');
}

/** Throws one clear line when `weights` does not match the config: missing/unexpected names or a wrong shape. */
export function validateUnetWeights(p: UnetParams, weights: UnetWeights): void {
  const specs = unetParamSpecs(p);
  const want = new Set(specs.map((s) => s.name));
  const missing = specs.filter((s) => !(s.name in weights)).map((s) => s.name);
  if (missing.length) throw new Error(`UNet weights: missing ${missing.length} tensors: ${firstFew(missing)}`);
  const extra = Object.keys(weights).filter((k) => !want.has(k));
  if (extra.length) throw new Error(`UNet weights: unexpected ${extra.length} tensors: ${firstFew(extra)}`);
  for (const s of specs) {
    const t = weights[s.name]!;
    if (t.shape.length !== s.shape.length || t.shape.some((d, i) => d !== s.shape[i])) {
      throw new Error(`UNet weights: '${s.name}' has shape [${t.shape.join(', ')}], expected [${s.shape.join(', ')}]`);
    }
  }
}

/** FNV-1a of a name: each tensor's init stream depends on its name, not on its position. */
function nameHash(s: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), 0x01000193) >>> 0;
  return h;
}

export interface UnetInitOptions {
  /**
   * Zero the last layer of every residual branch and the output conv (resnet conv2, transformer
   * proj_out, conv_out), as the original LDM code does (`zero_module`) for training from scratch:
   * every block starts as the identity and the model predicts 0. Default false (torch defaults).
   */
  zeroOut?: boolean;
}

const ZERO_OUT = /(\.conv2|\.proj_out|^conv_out)\.(weight|bias)$/;

/**
 * Fresh weights for a (small) config, seeded: conv and linear weights and biases uniform in
 * +-1/sqrt(fan_in) (torch's default for nn.Conv2d / nn.Linear), norm weights 1 and biases 0. Each
 * tensor draws from mixSeed(seed, hash(name)), so the same seed gives the same bytes for a name
 * whatever the rest of the config. Allocates every tensor.
 */
export function initUnetWeights(p: UnetParams, seed: number, opts: UnetInitOptions = {}): Record<string, Tensor> {
  const specs = unetParamSpecs(p);
  const shapes = new Map(specs.map((s) => [s.name, s.shape]));
  const out: Record<string, Tensor> = {};
  for (const s of specs) {
    const isNorm = /(^|\.)(norm\d?|conv_norm_out)\.(weight|bias)$/.test(s.name);
    if (isNorm) {
      out[s.name] = s.name.endsWith('.weight') ? tf.ones(s.shape) : tf.zeros(s.shape);
      continue;
    }
    if (opts.zeroOut && ZERO_OUT.test(s.name)) {
      out[s.name] = tf.zeros(s.shape);
      continue;
    }
    const wShape = s.name.endsWith('.bias') ? shapes.get(s.name.replace(/\.bias$/, '.weight'))! : s.shape;
    const fanIn = wShape.slice(1).reduce((a, b) => a * b, 1);
    const bound = 1 / Math.sqrt(fanIn);
    const size = s.shape.reduce((a, b) => a * b, 1);
    out[s.name] = tf.tensor(uniformArray(size, mixSeed(seed, nameHash(s.name)), -bound, bound), s.shape);
  }
  return out;
}
