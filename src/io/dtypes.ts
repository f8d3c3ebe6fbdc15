// Element types of the safetensors format and the conversions between their bytes and float32.
//
// Everything here is little-endian, the byte order safetensors mandates. JS typed arrays use the
// host's byte order, so we refuse to run on a big-endian host rather than silently misread weights.
import { endianness } from 'node:os';

if (endianness() !== 'LE') throw new Error('mce reads and writes safetensors on little-endian hosts only');

/** The dtypes we know. Names are the safetensors header spellings. */
export const DTYPES = ['F64', 'F32', 'F16', 'BF16', 'F8_E4M3', 'F8_E5M2', 'I64', 'I32', 'I16', 'I8', 'U64', 'U32', 'U16', 'U8', 'BOOL'] as const;
export type Dtype = (typeof DTYPES)[number];

/** The dtypes `fromFloat32` can encode (what mce writes from computed weights). */
export type FloatDtype = 'F32' | 'F16' | 'BF16';

/** Bytes per element. */
export const DTYPE_SIZE: Record<Dtype, number> = {
  F64: 8, F32: 4, F16: 2, BF16: 2, F8_E4M3: 1, F8_E5M2: 1,
  I64: 8, I32: 4, I16: 2, I8: 1, U64: 8, U32: 4, U16: 2, U8: 1, BOOL: 1,
};

/**
 * Rank used to order tensors in a written file: larger first. This is the order of the Python
 * library's Dtype enum (it sorts by dtype descending, then by name), and it is also alignment-
 * descending, so every tensor starts at a multiple of its element size.
 */
export const DTYPE_RANK: Record<Dtype, number> = {
  BOOL: 0, U8: 1, I8: 2, F8_E5M2: 3, F8_E4M3: 4, I16: 5, U16: 6, F16: 7, BF16: 8,
  I32: 9, U32: 10, F32: 11, F64: 12, I64: 13, U64: 14,
};

export function isDtype(s: unknown): s is Dtype {
  return typeof s === 'string' && (DTYPES as readonly string[]).includes(s);
}

/** A typed array holding a tensor in its own dtype (F16/BF16 as raw 16-bit patterns, F8 as bytes). */
export type DtypeArray =
  | Float64Array | Float32Array | Uint16Array | BigInt64Array | BigUint64Array
  | Int32Array | Uint32Array | Int16Array | Int8Array | Uint8Array;

/**
 * View `bytes` as a typed array of `dtype`. The bytes must start at a multiple of the element size
 * of their buffer (a freshly allocated buffer always does); we copy otherwise.
 */
export function viewAs(dtype: Dtype, bytes: Uint8Array): DtypeArray {
  const size = DTYPE_SIZE[dtype];
  if (bytes.byteLength % size !== 0) throw new Error(`${bytes.byteLength} bytes is not a whole number of ${dtype} elements`);
  if (bytes.byteOffset % size !== 0) bytes = bytes.slice();
  const { buffer, byteOffset } = bytes;
  const n = bytes.byteLength / size;
  switch (dtype) {
    case 'F64': return new Float64Array(buffer, byteOffset, n);
    case 'F32': return new Float32Array(buffer, byteOffset, n);
    case 'F16': case 'BF16': case 'U16': return new Uint16Array(buffer, byteOffset, n);
    case 'I64': return new BigInt64Array(buffer, byteOffset, n);
    case 'U64': return new BigUint64Array(buffer, byteOffset, n);
    case 'I32': return new Int32Array(buffer, byteOffset, n);
    case 'U32': return new Uint32Array(buffer, byteOffset, n);
    case 'I16': return new Int16Array(buffer, byteOffset, n);
    case 'I8': return new Int8Array(buffer, byteOffset, n);
    case 'F8_E4M3': case 'F8_E5M2': case 'U8': case 'BOOL': return new Uint8Array(buffer, byteOffset, n);
  }
}

// ---- 16-bit and 8-bit floats -> float32 ----

/** float32 bit pattern of a binary16 value (exact: every f16 is representable in f32). */
function f16BitsToF32Bits(h: number): number {
  const sign = (h & 0x8000) << 16;
  const exp = (h >> 10) & 0x1f;
  const mant = h & 0x3ff;
  if (exp === 0x1f) return (sign | 0x7f800000 | (mant << 13)) >>> 0; // inf / nan, payload kept
  if (exp !== 0) return (sign | ((exp - 15 + 127) << 23) | (mant << 13)) >>> 0;
  if (mant === 0) return sign >>> 0;
  // Subnormal f16: normalise the mantissa; the value becomes a normal f32.
  let e = -14;
  let m = mant;
  while ((m & 0x400) === 0) { m <<= 1; e--; }
  return (sign | ((e + 127) << 23) | ((m & 0x3ff) << 13)) >>> 0;
}

// A 64K-entry table is 256 KB and turns F16 decoding into one lookup per element.
let f16Table: Uint32Array | undefined;
function f16ToF32Table(): Uint32Array {
  if (!f16Table) {
    f16Table = new Uint32Array(65536);
    for (let h = 0; h < 65536; h++) f16Table[h] = f16BitsToF32Bits(h);
  }
  return f16Table;
}

/** Decode one FP8 byte (OCP formats as in PyTorch: E4M3 "fn" has no inf, E5M2 is IEEE-like). */
function fp8ToF32(b: number, e4m3: boolean): number {
  const sign = b & 0x80 ? -1 : 1;
  const [expBits, bias] = e4m3 ? [4, 7] : [5, 15];
  const mantBits = 7 - expBits;
  const exp = (b >> mantBits) & ((1 << expBits) - 1);
  const mant = b & ((1 << mantBits) - 1);
  if (e4m3 && exp === 15 && mant === 7) return NaN;
  if (!e4m3 && exp === 31) return mant === 0 ? sign * Infinity : NaN;
  if (exp === 0) return sign * mant * 2 ** (1 - bias - mantBits);
  return sign * (1 + mant / (1 << mantBits)) * 2 ** (exp - bias);
}

const fp8Tables: Partial<Record<Dtype, Float32Array>> = {};
function fp8Table(dtype: 'F8_E4M3' | 'F8_E5M2'): Float32Array {
  let t = fp8Tables[dtype];
  if (!t) {
    t = new Float32Array(256);
    for (let b = 0; b < 256; b++) t[b] = fp8ToF32(b, dtype === 'F8_E4M3');
    fp8Tables[dtype] = t;
  }
  return t;
}

/**
 * Decode raw little-endian bytes of any dtype into float32 (integers and BOOL become numbers; 64-bit
 * integers beyond 2^24 lose precision, as in any float32 cast). Without `into`, the result is a new
 * array, except for F32, where it may share memory with `bytes`. With `into` (exactly as many
 * elements as `bytes` holds), the values are written there and `into` is returned.
 */
export function toFloat32(dtype: Dtype, bytes: Uint8Array, into?: Float32Array): Float32Array {
  const src = viewAs(dtype, bytes);
  const n = src.length;
  if (into && into.length !== n) throw new Error(`toFloat32: ${n} ${dtype} elements do not fit an array of ${into.length}`);
  if (dtype === 'F32') {
    if (!into) return src as Float32Array; // may share memory with `bytes`
    into.set(src as Float32Array);
    return into;
  }
  const out = into ?? new Float32Array(n);
  if (dtype === 'BF16') {
    // bf16 is the top half of an f32: shifting the bits back up is exact.
    const bits = new Uint32Array(out.buffer, out.byteOffset, n);
    const h = src as Uint16Array;
    for (let i = 0; i < n; i++) bits[i] = h[i]! << 16;
  } else if (dtype === 'F16') {
    const bits = new Uint32Array(out.buffer, out.byteOffset, n);
    const table = f16ToF32Table();
    const h = src as Uint16Array;
    for (let i = 0; i < n; i++) bits[i] = table[h[i]!]!;
  } else if (dtype === 'F8_E4M3' || dtype === 'F8_E5M2') {
    const table = fp8Table(dtype);
    const b = src as Uint8Array;
    for (let i = 0; i < n; i++) out[i] = table[b[i]!]!;
  } else if (dtype === 'I64' || dtype === 'U64') {
    const b = src as BigInt64Array | BigUint64Array;
    for (let i = 0; i < n; i++) out[i] = Number(b[i]!);
  } else {
    const a = src as Float64Array | Int32Array | Uint32Array | Int16Array | Int8Array | Uint16Array | Uint8Array;
    for (let i = 0; i < n; i++) out[i] = a[i]!;
  }
  return out;
}

// ---- float32 -> 16-bit floats ----

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

/** float32 bits -> bfloat16 bits, round to nearest, ties to even. NaN stays a quiet NaN. */
export function f32BitsToBf16(x: number): number {
  if ((x & 0x7fffffff) > 0x7f800000) return ((x >>> 16) & 0x8000) | 0x7fc0;
  // Adding 0x7fff plus the lowest kept bit rounds half to even; a carry may roll into the
  // exponent, which is exactly right (and turns the largest values into inf).
  return ((x + 0x7fff + ((x >>> 16) & 1)) >>> 16) & 0xffff;
}

/** float32 bits -> binary16 bits, round to nearest, ties to even, with subnormals, inf and nan. */
export function f32BitsToF16(x: number): number {
  const sign = (x >>> 16) & 0x8000;
  const exp = (x >>> 23) & 0xff;
  const mant = x & 0x7fffff;
  if (exp === 0xff) return sign | 0x7c00 | (mant ? 0x200 | (mant >>> 13) : 0); // inf, or a quiet nan
  const e = exp - 127 + 15; // the f16 biased exponent, before rounding
  const m = mant | 0x800000; // 24-bit significand with the implicit bit (f32 subnormals round to 0 below)
  // Normal results drop 13 bits; subnormal results drop more, one per step below the normal range.
  const shift = e >= 1 ? 13 : 14 - e;
  if (shift > 24) return sign; // below half the smallest subnormal: rounds to zero
  const half = 1 << (shift - 1);
  const rest = m & ((1 << shift) - 1);
  let r = m >>> shift;
  if (rest > half || (rest === half && (r & 1))) r++;
  // For normal results r includes the implicit bit (0x400..0x800), so adding (e - 1) << 10 gives
  // the right exponent and lets a rounding carry roll over into it; subnormals encode r as is.
  const bits = e >= 1 ? ((e - 1) << 10) + r : r;
  return sign | Math.min(bits, 0x7c00);
}

/** Encode float32 values as raw little-endian bytes of F32, F16 or BF16. */
export function fromFloat32(dtype: FloatDtype, data: Float32Array): Uint8Array {
  if (dtype === 'F32') return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  const out = new Uint16Array(data.length);
  const bits = data.byteOffset % 4 === 0 ? new Uint32Array(data.buffer, data.byteOffset, data.length) : new Uint32Array(data.slice().buffer);
  const conv = dtype === 'BF16' ? f32BitsToBf16 : f32BitsToF16;
  for (let i = 0; i < out.length; i++) out[i] = conv(bits[i]!);
  return new Uint8Array(out.buffer);
}

/** One float -> bits helpers, for tests and small conversions. */
export function floatToBf16Bits(v: number): number {
  f32[0] = v;
  return f32BitsToBf16(u32[0]!);
}
export function floatToF16Bits(v: number): number {
  f32[0] = v;
  return f32BitsToF16(u32[0]!);
}
export function f16BitsToFloat(h: number): number {
  u32[0] = f16BitsToF32Bits(h & 0xffff);
  return f32[0]!;
}
export function bf16BitsToFloat(h: number): number {
  u32[0] = (h & 0xffff) << 16;
  return f32[0]!;
}
