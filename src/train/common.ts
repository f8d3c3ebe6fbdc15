// Helpers shared by the base-model trainers (ae, flow): config files, datasets as tensors,
// learning-rate schedules, the machine description and BF16/F32 weight export.
import { readFileSync } from 'node:fs';
import * as os from 'node:os';
import { tf, type Tensor } from '../engine/tf.js';
import { writeSafetensors, type WriteTensor } from '../io/safetensors.js';
import type { Dataset } from '../world/dataset.js';

/** Read a JSON config file, with one clear line on failure. */
export function readJsonConfig<T>(path: string): T {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    throw new Error(`cannot read config ${path}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
  try {
    return JSON.parse(text) as T;
  } catch (e) {
    throw new Error(`config ${path} is not valid JSON: ${(e as Error).message.split('\n')[0]}`);
  }
}

/** Images i of a dataset as NCHW float32 in [-1, 1]. */
export function datasetImages(ds: Dataset, indices: ArrayLike<number>): Tensor {
  const s = ds.size;
  const per = s * s * 3;
  const n = indices.length;
  const data = new Float32Array(n * per);
  for (let k = 0; k < n; k++) {
    const img = ds.image(indices[k]!);
    for (let j = 0; j < per; j++) data[k * per + j] = img[j]! / 127.5 - 1;
  }
  return tf.tidy(() => tf.tensor4d(data, [n, s, s, 3]).transpose([0, 3, 1, 2]));
}

/** Linear warmup, then cosine decay to `floor` of the base rate at `total` steps. */
export function warmupCosine(warmup: number, total: number, floor = 0.1): (step: number) => number {
  return (step) => {
    if (step < warmup) return (step + 1) / warmup;
    const p = Math.min(1, (step - warmup) / Math.max(1, total - warmup));
    return floor + (1 - floor) * 0.5 * (1 + Math.cos(Math.PI * p));
  };
}

/** One line describing this machine, for manifests. */
export function machineDescription(): string {
  const cpus = os.cpus();
  return `${cpus[0]?.model ?? 'unknown cpu'} x${cpus.length} (shared), ${Math.round(os.totalmem() / 2 ** 30)} GiB, ${os.platform()} ${os.arch()}, node ${process.version}`;
}

/** Write named tensors as safetensors in `dtype` (BF16 halves the size), plus raw I32 extras. */
export async function writeWeights(
  path: string,
  weights: Record<string, Tensor>,
  dtype: 'F32' | 'BF16',
  metadata: Record<string, string> = {},
  extra: Record<string, WriteTensor> = {},
): Promise<void> {
  const out: Record<string, WriteTensor> = { ...extra };
  for (const [name, t] of Object.entries(weights)) {
    out[name] = { dtype, shape: t.shape, data: t.dataSync() as Float32Array };
  }
  await writeSafetensors(path, out, metadata);
}
