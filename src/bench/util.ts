// Small helpers shared by the workloads.
import { tf, type Tensor } from '../engine/tf.js';
import { mixSeed, randnArray } from '../engine/rng.js';
import type { InputArray } from './types.js';

/** Frobenius norm in float64 (the PyTorch side computes it in float64 too). */
export function fro(t: Tensor): number {
  const d = t.dataSync();
  let s = 0;
  for (let i = 0; i < d.length; i++) s += d[i]! * d[i]!;
  return Math.sqrt(s);
}

export function scalar(t: Tensor): number {
  return t.dataSync()[0]!;
}

/** A seeded normal array: scale * N(0, 1) + shift. Tensor `index` of a workload gets its own stream. */
export function normalInput(name: string, shape: number[], seed: number, index: number, scale = 1, shift = 0): InputArray {
  const size = shape.reduce((a, b) => a * b, 1);
  const data = randnArray(size, mixSeed(seed, index));
  if (scale !== 1 || shift !== 0) for (let i = 0; i < size; i++) data[i] = data[i]! * scale + shift;
  return { name, shape, data };
}

/** Our tensors for a list of inputs, in order. */
export function tensorsOf(inputs: readonly InputArray[]): Tensor[] {
  return inputs.map((a) => tf.tensor(a.data, a.shape, 'float32'));
}

export function byName(inputs: readonly InputArray[], tensors: readonly Tensor[]): Record<string, Tensor> {
  const out: Record<string, Tensor> = {};
  inputs.forEach((a, i) => (out[a.name] = tensors[i]!));
  return out;
}

export function median(xs: readonly number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

export const MiB = 1024 * 1024;
