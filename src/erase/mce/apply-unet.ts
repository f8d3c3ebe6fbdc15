// Fold masks on UNet hook points (models/unet/masks.ts) into a diffusers-named UNet checkpoint, as
// foldUnetMasks does in memory: the fold ops are read off the mask names and the checkpoint's own
// tensor shapes, so no config is needed and a mask that does not fit the checkpoint is one clear error.
//   B.A.heads               columns of B.A.to_out.0.weight, head by head
//   B.A.to_q / to_k / to_v  rows of B.A.to_X.weight (and .bias when there is one)
//   B.A.to_out              rows of B.A.to_out.0.weight and .bias
//   B.ff.hidden             columns of B.ff.net.2.weight
import { ApplyMasksError, type FoldOp } from './apply.js';
import type { HostMasks } from './masks.js';

const UNET_MASK = /^(.+)\.(attn1|attn2)\.(heads|to_q|to_k|to_v|to_out)$|^(.+)\.ff\.hidden$/;

/** Whether a mask name is a UNet hook point. */
export function isUnetMaskName(name: string): boolean {
  return UNET_MASK.test(name);
}

/** The fold ops of UNet masks on a checkpoint with these tensor shapes (only tensors that change). */
export function unetFoldPlan(shapes: ReadonlyMap<string, readonly number[]>, masks: Readonly<HostMasks>): FoldOp[] {
  const ops: FoldOp[] = [];
  const shapeOf = (tensor: string, mask: string): readonly number[] => {
    const s = shapes.get(tensor);
    if (!s) throw new ApplyMasksError(`mask '${mask}' needs '${tensor}', which the checkpoint does not have`);
    return s;
  };
  const scale = (tensor: string, axis: 0 | 1, mask: string, m: Float32Array, repeat = 1): void => {
    const len = shapeOf(tensor, mask)[axis] ?? 1;
    if (len !== m.length * repeat) throw new ApplyMasksError(`mask '${mask}' has ${m.length} units, '${tensor}' has ${len} ${axis ? 'columns' : 'rows'}${repeat > 1 ? ` (${repeat} per head)` : ''}`);
    const s = new Float32Array(len);
    for (let j = 0; j < len; j++) s[j] = m[Math.floor(j / repeat)]!;
    ops.push({ tensor, axis, scale: s });
  };
  for (const [name, m] of Object.entries(masks)) {
    const g = UNET_MASK.exec(name);
    if (!g) throw new ApplyMasksError(`mask '${name}' is not a UNet hook point`);
    if (g[4] !== undefined) {
      scale(`${g[4]}.ff.net.2.weight`, 1, name, m);
      continue;
    }
    const base = `${g[1]}.${g[2]}`;
    const kind = g[3]!;
    if (kind === 'heads') {
      const cols = shapeOf(`${base}.to_out.0.weight`, name)[1]!;
      if (cols % m.length !== 0) throw new ApplyMasksError(`mask '${name}' has ${m.length} heads, which do not divide the ${cols} columns of '${base}.to_out.0.weight'`);
      scale(`${base}.to_out.0.weight`, 1, name, m, cols / m.length);
      continue;
    }
    const lin = kind === 'to_out' ? `${base}.to_out.0` : `${base}.${kind}`;
    scale(`${lin}.weight`, 0, name, m);
    if (shapes.has(`${lin}.bias`)) scale(`${lin}.bias`, 0, name, m);
  }
  return ops;
}
