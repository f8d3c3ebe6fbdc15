// Native kernels (C++ N-API addon on OpenBLAS). Placeholder until the addon lands:
// the engine asks for the kernel configs and gets the reason they are missing.
import type { KernelConfig } from '@tensorflow/tfjs-core';

/** Kernel configs (backendName 'wasm') backed by the addon, or why they are unavailable. */
export function nativeKernelConfigs(): KernelConfig[] | string {
  return 'the native addon is not built yet';
}
