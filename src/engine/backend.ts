// Backend choice. Three backends, best first:
//   native: tfjs-wasm with our OpenBLAS/C++ kernels swapped in (matmul, conv, fused ops);
//   wasm:   tfjs-wasm alone (SIMD, one thread), plus our fills for its missing kernels;
//   cpu:    tfjs-cpu (pure JS; slow, but the most complete gradients), plus our fills.
// The default is the best available; MCE_BACKEND=native|wasm|cpu overrides it.
import { tf } from './tf.js';
import { KernelOverrides } from './kernels.js';
import { fillKernels } from './fills.js';
import { nativeKernelConfigs } from './native.js';

export type BackendName = 'native' | 'wasm' | 'cpu';
export const BACKENDS: readonly BackendName[] = ['native', 'wasm', 'cpu'];

let fills: { wasm: KernelOverrides; cpu: KernelOverrides } | null = null;
let native: KernelOverrides | null = null;
let nativeMissing = '';
let warned = false;
let current: BackendName | null = null;

function setup(): void {
  if (fills) return;
  fills = { wasm: new KernelOverrides(fillKernels('wasm')), cpu: new KernelOverrides(fillKernels('cpu')) };
  fills.wasm.enable();
  fills.cpu.enable();
  const configs = nativeKernelConfigs();
  if (typeof configs === 'string') nativeMissing = configs;
  else native = new KernelOverrides(configs);
}

/** Backends usable in this process, best first. */
export function availableBackends(): BackendName[] {
  setup();
  return native ? ['native', 'wasm', 'cpu'] : ['wasm', 'cpu'];
}

/** Why the native backend is missing ('' when it is present). */
export function nativeUnavailableReason(): string {
  setup();
  return nativeMissing;
}

function parseBackend(s: string): BackendName {
  if ((BACKENDS as readonly string[]).includes(s)) return s as BackendName;
  throw new Error(`MCE_BACKEND must be one of ${BACKENDS.join(', ')}, got '${s}'`);
}

/**
 * Select a backend (default: MCE_BACKEND, else the best available). Asking for native when the
 * addon is missing falls back to wasm and says why, once per process.
 */
export async function useBackend(name?: BackendName): Promise<BackendName> {
  setup();
  const env = process.env['MCE_BACKEND'];
  let want: BackendName = name ?? (env ? parseBackend(env) : availableBackends()[0]!);
  // Say once why the fast path is missing, when it was asked for or would have been the default.
  const wantedNative = want === 'native' || (!name && !env);
  if (!native && wantedNative && !warned) {
    process.stderr.write(`mce: native kernels unavailable (${nativeMissing}); using the slower wasm backend\n`);
    warned = true;
  }
  if (want === 'native' && !native) want = 'wasm';
  if (want === 'native') native!.enable();
  else native?.disable();
  const tfName = want === 'cpu' ? 'cpu' : 'wasm';
  if (tf.getBackend() !== tfName) {
    const ok = await tf.setBackend(tfName);
    if (!ok) throw new Error(`could not initialise the tfjs ${tfName} backend`);
    // tfjs-cpu prints a banner about tfjs-node on first use; mce does not use tfjs-node.
    if (tfName === 'cpu') (tf.backend() as unknown as { firstUse: boolean }).firstUse = false;
  }
  current = want;
  return want;
}

/** The backend selected by the last useBackend call. */
export function currentBackend(): BackendName {
  if (!current) throw new Error('no backend selected: call useBackend() first');
  return current;
}
