// Identity without a copy, for the wasm backend. tfjs's tape keeps every kernel input or output a
// gradient needs by cloning it (Engine.clone runs Identity), and tfjs-wasm's Identity copies the
// buffer: on the sd-emoji UNet that is ~2,600 copies per checkpointed DDIM step. Tensor data is
// never written after a kernel returns, so the clone can share the buffer under a reference count,
// as tfjs-cpu's Identity and tfjs-wasm's own Reshape do.
import type { KernelConfig, TensorInfo } from '@tensorflow/tfjs-core';
import { tf } from './tf.js';

interface RefCountingBackend {
  incRef(dataId: object): void;
}

/** An 'Identity' kernel for 'wasm' that shares its input's buffer (string tensors: tfjs's kernel). */
export function sharedIdentityKernel(): KernelConfig {
  const prev = tf.getKernel('Identity', 'wasm');
  return {
    kernelName: 'Identity',
    backendName: 'wasm',
    kernelFunc: (args) => {
      const x = (args.inputs as { x: TensorInfo }).x;
      if (x.dtype === 'string' && prev) return prev.kernelFunc(args);
      (args.backend as unknown as RefCountingBackend).incRef(x.dataId);
      return { dataId: x.dataId, shape: x.shape, dtype: x.dtype };
    },
  };
}
