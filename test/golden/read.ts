// Golden-case helpers: a minimal safetensors reader (F32 only; the golden files are float32),
// case discovery under MCE_GOLDEN_DIR, and an elementwise tolerance check.
import { readFileSync, readdirSync, statSync, existsSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

export interface RawTensor {
  shape: number[];
  data: Float32Array;
}

export function readSafetensorsF32(path: string): Record<string, RawTensor> {
  const buf = readFileSync(path);
  if (buf.length < 8) throw new Error(`${path}: truncated safetensors file`);
  const n = Number(buf.readBigUInt64LE(0));
  if (8 + n > buf.length) throw new Error(`${path}: truncated safetensors header`);
  const header = JSON.parse(buf.subarray(8, 8 + n).toString('utf8')) as Record<string, unknown>;
  const base = 8 + n;
  const out: Record<string, RawTensor> = {};
  for (const [name, info] of Object.entries(header)) {
    if (name === '__metadata__') continue;
    const { dtype, shape, data_offsets } = info as { dtype: string; shape: number[]; data_offsets: [number, number] };
    if (dtype !== 'F32') throw new Error(`${path}: tensor '${name}' is ${dtype}; this reader handles F32 only`);
    const [a, b] = data_offsets;
    if (base + b > buf.length) throw new Error(`${path}: tensor '${name}' runs past the end of the file`);
    const bytes = buf.subarray(base + a, base + b);
    const data = new Float32Array(bytes.byteLength / 4);
    new Uint8Array(data.buffer).set(bytes);
    const size = shape.reduce((x, y) => x * y, 1);
    if (size !== data.length) throw new Error(`${path}: tensor '${name}' has ${data.length} values for shape [${shape.join(', ')}]`);
    out[name] = { shape, data };
  }
  return out;
}

/** The golden root: MCE_GOLDEN_DIR, else ../shared/golden beside the repository root. */
export function goldenRoot(): string {
  const env = process.env['MCE_GOLDEN_DIR'];
  if (env) return resolve(env);
  const repo = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
  return resolve(repo, '..', 'shared', 'golden');
}

/** Case folders under <root>/<kind>, sorted (empty when the folder is missing). */
export function listCases(kind: string): { name: string; dir: string }[] {
  const dir = join(goldenRoot(), kind);
  if (!existsSync(dir)) return [];
  return readdirSync(dir)
    .filter((n) => statSync(join(dir, n)).isDirectory())
    .sort()
    .map((name) => ({ name, dir: join(dir, name) }));
}

export interface Mismatch {
  count: number;
  worst: number;
  index: number;
  got: number;
  want: number;
  maxAbs: number;
}

/**
 * Elementwise |got - want| <= atol + rtol * |want|. Returns null when all agree, else the count
 * of disagreements and the worst one (by excess over the tolerance). Shape must match exactly.
 */
export function compare(got: ArrayLike<number>, want: ArrayLike<number>, atol = 1e-4, rtol = 1e-3): Mismatch | null {
  if (got.length !== want.length) return { count: -1, worst: Infinity, index: -1, got: got.length, want: want.length, maxAbs: Infinity };
  let count = 0;
  let worst = -Infinity;
  let index = -1;
  let maxAbs = 0;
  for (let i = 0; i < want.length; i++) {
    const g = got[i]!;
    const w = want[i]!;
    const d = Math.abs(g - w);
    if (!(d <= maxAbs)) maxAbs = d;
    const excess = d - (atol + rtol * Math.abs(w));
    if (!(excess <= 0)) {
      count++;
      if (!(excess <= worst)) {
        worst = excess;
        index = i;
      }
    }
  }
  if (count === 0) return null;
  return { count, worst, index, got: got[index]!, want: want[index]!, maxAbs };
}
