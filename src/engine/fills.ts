// Kernels tfjs 4.22 lacks or gets wrong on a backend (engine-measurements §6). Placeholder.
import type { KernelConfig } from '@tensorflow/tfjs-core';

export function fillKernels(backend: 'wasm' | 'cpu'): KernelConfig[] {
  void backend;
  return [];
}
