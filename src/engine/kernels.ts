// Host kernels: kernels written against plain Float32Arrays, registered into tfjs for the wasm or
// cpu backend. The plumbing (reading inputs, allocating outputs) lives here once, so a kernel body
// only sees shapes and arrays.
import { tf } from './tf.js';
import type { KernelConfig, TensorInfo, NamedAttrMap } from '@tensorflow/tfjs-core';

export type HostBackend = 'wasm' | 'cpu';

/** A read-only input or a writable output of a host kernel. */
export interface HostTensor {
  shape: number[];
  data: Float32Array;
}

export interface HostKernelSpec {
  /** Output shapes, from input shapes and attrs. All outputs are float32. */
  outputs(inputs: Record<string, number[]>, attrs: NamedAttrMap): number[][];
  /** Fill the outputs (zero-initialised, unless `overwrites`) from the inputs. */
  compute(inputs: Record<string, HostTensor>, outputs: HostTensor[], attrs: NamedAttrMap): void;
  /** compute writes every output element: skip the zero fill of wasm outputs (one memory pass). */
  overwrites?: boolean;
}

// tfjs internals touched here (frozen at 4.22.0): BackendWasm.makeOutput / typedArrayFromHeap and
// MathBackendCPU.data / makeTensorInfo. Nothing else in mce reaches into a backend.
interface WasmBackendLike {
  makeOutput(shape: number[], dtype: 'float32'): TensorInfo;
  typedArrayFromHeap(t: TensorInfo): Float32Array;
}
interface CpuBackendLike {
  data: { get(id: object): { values: Float32Array } };
  makeTensorInfo(shape: number[], dtype: 'float32', values: Float32Array): TensorInfo;
}

function asFloat(t: TensorInfo, name: string, kernel: string): void {
  if (t.dtype !== 'float32') throw new Error(`${kernel}: input ${name} must be float32, got ${t.dtype}`);
}

/** Build a kernel config that runs `spec` on the given backend. */
export function hostKernel(kernelName: string, backendName: HostBackend, spec: HostKernelSpec): KernelConfig {
  return {
    kernelName,
    backendName,
    kernelFunc: ({ inputs, backend, attrs }) => {
      const named = inputs as unknown as Record<string, TensorInfo>;
      const shapes: Record<string, number[]> = {};
      for (const [k, t] of Object.entries(named)) {
        asFloat(t, k, kernelName);
        shapes[k] = t.shape;
      }
      const outShapes = spec.outputs(shapes, attrs ?? {});
      let outInfos: TensorInfo[];
      let views: Record<string, HostTensor>;
      let outs: HostTensor[];
      if (backendName === 'wasm') {
        const b = backend as unknown as WasmBackendLike;
        // Allocate first: allocation may grow the wasm heap, which detaches earlier views.
        outInfos = outShapes.map((s) => b.makeOutput(s, 'float32'));
        views = {};
        for (const [k, t] of Object.entries(named)) views[k] = { shape: t.shape, data: b.typedArrayFromHeap(t) };
        outs = outInfos.map((t) => {
          const data = b.typedArrayFromHeap(t);
          if (!spec.overwrites) data.fill(0);
          return { shape: t.shape, data };
        });
      } else {
        const b = backend as unknown as CpuBackendLike;
        views = {};
        for (const [k, t] of Object.entries(named)) views[k] = { shape: t.shape, data: b.data.get(t.dataId).values };
        outs = outShapes.map((s) => ({ shape: s, data: new Float32Array(tf.util.sizeFromShape(s)) }));
        outInfos = [];
      }
      spec.compute(views, outs, attrs ?? {});
      if (backendName === 'cpu') {
        const b = backend as unknown as CpuBackendLike;
        outInfos = outs.map((o) => b.makeTensorInfo(o.shape, 'float32', o.data));
      }
      return outInfos.length === 1 ? outInfos[0]! : outInfos;
    },
  };
}

/**
 * Kernel overrides that can be switched on and off, so one process can run the same op on the
 * plain wasm backend and on wasm + native kernels (tests compare them side by side).
 */
export class KernelOverrides {
  private saved = new Map<string, KernelConfig | undefined>();
  private active = false;
  constructor(private readonly configs: KernelConfig[]) {}

  enable(): void {
    if (this.active) return;
    for (const c of this.configs) {
      const key = `${c.backendName}_${c.kernelName}`;
      const prev = tf.getKernel(c.kernelName, c.backendName);
      this.saved.set(key, prev);
      if (prev) tf.unregisterKernel(c.kernelName, c.backendName);
      tf.registerKernel(c);
    }
    this.active = true;
  }

  disable(): void {
    if (!this.active) return;
    for (const c of this.configs) {
      tf.unregisterKernel(c.kernelName, c.backendName);
      const prev = this.saved.get(`${c.backendName}_${c.kernelName}`);
      if (prev) tf.registerKernel(prev);
    }
    this.saved.clear();
    this.active = false;
  }

  get enabled(): boolean {
    return this.active;
  }
}
