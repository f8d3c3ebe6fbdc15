// The safetensors format: read lazily and validated, write deterministically and atomically.
//
// Layout: an 8-byte little-endian header length N, N bytes of JSON header, then the data section.
// The header maps each tensor name to {dtype, shape, data_offsets: [begin, end]} (offsets relative
// to the data section) plus an optional "__metadata__" string->string map. Real checkpoints run to
// tens of GB, so opening reads only the header, and each tensor read touches only its own bytes.
import { open, type FileHandle } from 'node:fs/promises';
import { AtomicFile } from './atomic.js';
import {
  DTYPE_RANK, DTYPE_SIZE, fromFloat32, isDtype, toFloat32, viewAs,
  type Dtype, type DtypeArray, type FloatDtype,
} from './dtypes.js';

export type { Dtype, DtypeArray } from './dtypes.js';

/** The Python library's limit; a larger "header" means the file is not safetensors (or hostile). */
export const MAX_HEADER_BYTES = 100_000_000;

/** Anything wrong with a safetensors file, as one line that starts with the file's path. */
export class SafetensorsError extends Error {
  constructor(readonly path: string, reason: string) {
    super(`${path}: ${reason}`);
    this.name = 'SafetensorsError';
  }
}

/** One tensor in a header. `offsets` are [begin, end) byte offsets into the data section. */
export interface TensorEntry {
  dtype: Dtype;
  shape: number[];
  offsets: [number, number];
}

/** A parsed, validated header. `names` is in data order (ascending begin offset). */
export interface Header {
  names: string[];
  entries: Map<string, TensorEntry>;
  metadata: Record<string, string>;
}

export function numel(shape: readonly number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

const fmtShape = (s: unknown): string => JSON.stringify(s)?.replace(/,/g, ', ') ?? String(s);
const isCount = (v: unknown): v is number => typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;

/**
 * Parse and validate header JSON bytes against a data section of `dataBytes` bytes. The data
 * section must be covered exactly: tensors in order of begin offset, no gaps, no overlaps, nothing
 * after the last one, and each tensor's byte range must match its shape and dtype.
 */
export function parseHeader(path: string, json: Uint8Array, dataBytes: number): Header {
  const fail = (reason: string): never => { throw new SafetensorsError(path, reason); };
  let text = '';
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(json);
  } catch {
    fail('header is not valid UTF-8');
  }
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (e) {
    fail(`header is not valid JSON (${(e as Error).message.split('\n')[0]})`);
  }
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) fail('header is not a JSON object');

  const metadata: Record<string, string> = Object.create(null) as Record<string, string>;
  const entries = new Map<string, TensorEntry>();
  for (const [name, value] of Object.entries(raw as Record<string, unknown>)) {
    if (name === '__metadata__') {
      if (value === null) continue; // the Python library reads null as "no metadata"
      if (typeof value !== 'object' || Array.isArray(value)) fail('__metadata__ is not a JSON object');
      for (const [k, v] of Object.entries(value as Record<string, unknown>)) {
        if (typeof v !== 'string') fail(`__metadata__ value for '${k}' is not a string`);
        metadata[k] = v as string;
      }
      continue;
    }
    const t = value as { dtype?: unknown; shape?: unknown; data_offsets?: unknown } | null;
    if (typeof t !== 'object' || t === null || Array.isArray(t)) fail(`tensor '${name}' is not a JSON object`);
    const { dtype, shape, data_offsets: offs } = t!;
    if (!isDtype(dtype)) fail(`tensor '${name}' has unknown dtype ${JSON.stringify(dtype)}`);
    if (!Array.isArray(shape) || !shape.every(isCount)) {
      fail(`tensor '${name}' has invalid shape ${fmtShape(shape)} (need non-negative integers)`);
    }
    if (!Array.isArray(offs) || offs.length !== 2 || !offs.every(isCount) || offs[0] > offs[1]) {
      fail(`tensor '${name}' has invalid data_offsets ${fmtShape(offs)} (need [begin, end], 0 <= begin <= end)`);
    }
    const dt = dtype as Dtype;
    const sh = shape as number[];
    const [begin, end] = offs as [number, number];
    const bytes = numel(sh) * DTYPE_SIZE[dt];
    if (!Number.isSafeInteger(bytes)) fail(`tensor '${name}' has shape ${fmtShape(sh)}, too large`);
    if (bytes !== end - begin) {
      fail(`tensor '${name}' has shape ${fmtShape(sh)} ${dt} = ${bytes} bytes, but data_offsets [${begin}, ${end}] span ${end - begin} bytes`);
    }
    entries.set(name, { dtype: dt, shape: sh, offsets: [begin, end] });
  }

  // Walk the tensors by begin offset: each must start exactly where the previous one ended.
  const names = [...entries.keys()].sort((a, b) => {
    const x = entries.get(a)!.offsets;
    const y = entries.get(b)!.offsets;
    return x[0] - y[0] || x[1] - y[1];
  });
  let cursor = 0;
  let prev = '';
  for (const name of names) {
    const [begin, end] = entries.get(name)!.offsets;
    if (begin > cursor) fail(`gap in the data section: bytes ${cursor}..${begin} before tensor '${name}' belong to no tensor`);
    if (begin < cursor) fail(`tensor '${name}' (bytes ${begin}..${end}) overlaps tensor '${prev}' (ends at ${cursor})`);
    cursor = end;
    prev = name;
  }
  if (cursor > dataBytes) fail(`file is truncated: tensors need ${cursor} data bytes, the file has ${dataBytes}`);
  if (cursor < dataBytes) fail(`${dataBytes - cursor} unexpected bytes after the last tensor (data section ${dataBytes} bytes, tensors cover ${cursor})`);
  return { names, entries, metadata };
}

// One read call moves at most this much (the OS caps a single read near 2 GiB).
const CHUNK = 1 << 30;

/** Read exactly `into.byteLength` bytes at `position`, looping over short reads. */
async function readFully(fh: FileHandle, into: Uint8Array, position: number): Promise<number> {
  let done = 0;
  while (done < into.byteLength) {
    const { bytesRead } = await fh.read(into, done, Math.min(CHUNK, into.byteLength - done), position + done);
    if (bytesRead === 0) break;
    done += bytesRead;
  }
  return done;
}

/** An open safetensors file. Only the header is in memory; tensors are read on demand. */
export class SafetensorsFile implements Header {
  private constructor(
    readonly path: string,
    private fh: FileHandle | undefined,
    readonly names: string[],
    readonly entries: Map<string, TensorEntry>,
    readonly metadata: Record<string, string>,
    /** Length of the JSON header in bytes (padding included). */
    readonly headerBytes: number,
    /** Total file size in bytes. */
    readonly fileBytes: number,
  ) {}

  /** Open and validate: reads the 8-byte length and the header, nothing else. */
  static async open(path: string): Promise<SafetensorsFile> {
    let fh: FileHandle;
    try {
      fh = await open(path, 'r');
    } catch (e) {
      const err = e as NodeJS.ErrnoException;
      const why = err.code === 'ENOENT' ? 'no such file' : err.message;
      throw new SafetensorsError(path, `cannot open: ${why}`);
    }
    try {
      const st = await fh.stat();
      if (st.isDirectory()) throw new SafetensorsError(path, 'cannot open: is a directory');
      const fileBytes = st.size;
      if (fileBytes < 8) throw new SafetensorsError(path, `not a safetensors file: ${fileBytes} bytes is too short for the 8-byte header length`);
      const lenBuf = Buffer.alloc(8);
      await readFully(fh, lenBuf, 0);
      const n = lenBuf.readBigUInt64LE(0);
      if (n > BigInt(MAX_HEADER_BYTES)) {
        throw new SafetensorsError(path, `header length ${n} bytes is over the ${MAX_HEADER_BYTES / 1e6} MB limit (not a safetensors file?)`);
      }
      const headerBytes = Number(n);
      if (8 + headerBytes > fileBytes) {
        throw new SafetensorsError(path, `header length ${headerBytes} bytes is larger than the file (${fileBytes} bytes)`);
      }
      const json = new Uint8Array(headerBytes);
      await readFully(fh, json, 8);
      const h = parseHeader(path, json, fileBytes - 8 - headerBytes);
      return new SafetensorsFile(path, fh, h.names, h.entries, h.metadata, headerBytes, fileBytes);
    } catch (e) {
      await fh.close();
      throw e;
    }
  }

  /** Where the data section starts in the file. */
  get dataStart(): number {
    return 8 + this.headerBytes;
  }

  has(name: string): boolean {
    return this.entries.has(name);
  }

  entry(name: string): TensorEntry {
    const e = this.entries.get(name);
    if (!e) throw new SafetensorsError(this.path, `no tensor named '${name}'`);
    return e;
  }

  /** The tensor's bytes exactly as stored (little-endian), in a fresh buffer. */
  async readRaw(name: string): Promise<Uint8Array> {
    const [begin, end] = this.entry(name).offsets;
    if (!this.fh) throw new SafetensorsError(this.path, 'file is closed');
    const out = new Uint8Array(end - begin);
    const got = await readFully(this.fh, out, this.dataStart + begin);
    if (got !== out.byteLength) throw new SafetensorsError(this.path, `file is truncated: tensor '${name}' ends past the end of the file`);
    return out;
  }

  /** The whole data section in one read, in a fresh buffer (for small files). */
  async readData(): Promise<Uint8Array> {
    if (!this.fh) throw new SafetensorsError(this.path, 'file is closed');
    const out = new Uint8Array(this.fileBytes - this.dataStart);
    const got = await readFully(this.fh, out, this.dataStart);
    if (got !== out.byteLength) throw new SafetensorsError(this.path, `file is truncated: read ${got} of ${out.byteLength} data bytes`);
    return out;
  }

  /** The tensor in its own dtype (F16/BF16 as raw Uint16 bit patterns, I64 as BigInt64Array). */
  async read(name: string): Promise<DtypeArray> {
    return viewAs(this.entry(name).dtype, await this.readRaw(name));
  }

  /**
   * The tensor converted to float32, whatever its dtype. NaN or Inf values are an error (see
   * checkFinite) unless `finite: false` asks for the values exactly as decoded.
   */
  async readFloat32(name: string, opts: { finite?: boolean } = {}): Promise<Float32Array> {
    const data = toFloat32(this.entry(name).dtype, await this.readRaw(name));
    return opts.finite === false ? data : checkFinite(this.path, name, data);
  }

  /** Every tensor in data order (sequential reads), one at a time, as raw bytes. */
  async *tensors(): AsyncGenerator<{ name: string; entry: TensorEntry; bytes: Uint8Array }> {
    for (const name of this.names) yield { name, entry: this.entry(name), bytes: await this.readRaw(name) };
  }

  [Symbol.asyncIterator](): AsyncGenerator<{ name: string; entry: TensorEntry; bytes: Uint8Array }> {
    return this.tensors();
  }

  async close(): Promise<void> {
    const fh = this.fh;
    this.fh = undefined;
    await fh?.close();
  }
}

/**
 * Refuse float32 values that are NaN or Inf: weights, masks and training state are never meant to
 * hold them, and a model loaded with one produces NaN images far from the cause. Returns `data`.
 */
export function checkFinite(path: string, name: string, data: Float32Array): Float32Array {
  let bad = 0;
  let first = -1;
  for (let i = 0; i < data.length; i++) {
    const v = data[i]!;
    if (v - v !== 0) { // NaN - NaN and Inf - Inf are NaN; every finite v gives 0
      if (first < 0) first = i;
      bad++;
    }
  }
  if (bad) throw new SafetensorsError(path, `tensor '${name}' has ${bad} non-finite value(s) (NaN or Inf), the first at index ${first} (${data[first]}): the weights are broken`);
  return data;
}

/** A tensor read into memory as float32; `dtype` is what the file stored. */
export interface Float32Tensor {
  dtype: Dtype;
  shape: number[];
  data: Float32Array;
}

/** Read a whole (small) file into a name -> float32 tensor record (NaN or Inf values are an error). */
export async function loadFloat32(path: string): Promise<{ tensors: Record<string, Float32Tensor>; metadata: Record<string, string> }> {
  const f = await SafetensorsFile.open(path);
  try {
    // One read and one float32 buffer for all the tensors (each gets a view of it): a read and two
    // buffers per tensor cost a thread-pool round trip each and, through the external-memory
    // pressure of ~100 large buffers, a full GC (about 0.1-0.2 s of loading flux-emoji).
    const data = await f.readData();
    const floats = new Float32Array(f.names.reduce((sum, name) => sum + numel(f.entry(name).shape), 0));
    const tensors = Object.create(null) as Record<string, Float32Tensor>;
    let at = 0;
    for (const name of f.names) {
      const { dtype, shape, offsets: [begin, end] } = f.entry(name);
      const n = numel(shape);
      tensors[name] = { dtype, shape, data: checkFinite(path, name, toFloat32(dtype, data.subarray(begin, end), floats.subarray(at, at + n))) };
      at += n;
    }
    return { tensors, metadata: f.metadata };
  } finally {
    await f.close();
  }
}

// ---- the per-tensor listing (mce inspect, and later the checkpoint recogniser) ----

export interface TensorSummary {
  name: string;
  dtype: Dtype;
  shape: number[];
  params: number;
  bytes: number;
}

/** Compare names with digit runs as numbers, so blocks.2 sorts before blocks.10. */
export function naturalCompare(a: string, b: string): number {
  const re = /(\d+)|(\D+)/g;
  const pa = a.match(re) ?? [];
  const pb = b.match(re) ?? [];
  for (let i = 0; i < Math.min(pa.length, pb.length); i++) {
    const x = pa[i]!;
    const y = pb[i]!;
    if (x === y) continue;
    const dx = /^\d/.test(x);
    const dy = /^\d/.test(y);
    if (dx && dy) return Number(x) - Number(y) || x.length - y.length;
    return x < y ? -1 : 1;
  }
  return pa.length - pb.length;
}

/** Each tensor's name, dtype, shape, parameter count and bytes (natural name order), and totals. */
export function summarizeTensors(h: Pick<Header, 'entries'>): { tensors: TensorSummary[]; totalParams: number; totalBytes: number } {
  const tensors = [...h.entries.entries()]
    .sort(([a], [b]) => naturalCompare(a, b))
    .map(([name, e]) => ({ name, dtype: e.dtype, shape: e.shape, params: numel(e.shape), bytes: e.offsets[1] - e.offsets[0] }));
  return {
    tensors,
    totalParams: tensors.reduce((s, t) => s + t.params, 0),
    totalBytes: tensors.reduce((s, t) => s + t.bytes, 0),
  };
}

// ---- writing ----

/** What the writer needs to know of a tensor before any data: enough to lay out the header. */
export interface TensorSpec {
  name: string;
  dtype: Dtype;
  shape: readonly number[];
}

/**
 * Tensor data to write. A Float32Array is encoded into the tensor's dtype, which must then be F32,
 * F16 or BF16. Any other typed array (a Uint8Array of raw bytes, a Uint16Array of bf16 bits, a
 * BigInt64Array for I64, ...) is taken as the stored little-endian bytes, for passthrough copies.
 */
export type TensorData = Float32Array | DtypeArray;

export interface WriteTensor {
  dtype: Dtype;
  shape: readonly number[];
  data: TensorData;
}

const utf8 = new TextEncoder();
const byteOrder = (a: string, b: string): number => Buffer.compare(Buffer.from(a), Buffer.from(b));

/**
 * Lay out a file: the data order and the header bytes. The order is the Python library's: dtype
 * descending in its enum order (which is alignment-descending, see DTYPE_RANK), then name in UTF-8
 * byte order. Metadata keys are written sorted. The JSON is compact and padded with spaces to a
 * multiple of 8 bytes, so the data section starts 8-byte aligned. Same input, same bytes.
 */
export function layoutHeader(specs: readonly TensorSpec[], metadata: Record<string, string> = {}, path = '<output>'):
  { header: Uint8Array; names: string[]; entries: Map<string, TensorEntry>; dataBytes: number } {
  const fail = (reason: string): never => { throw new SafetensorsError(path, reason); };
  const seen = new Set<string>();
  for (const s of specs) {
    if (s.name === '__metadata__') fail(`'__metadata__' cannot be a tensor name`);
    if (seen.has(s.name)) fail(`tensor '${s.name}' is listed twice`);
    seen.add(s.name);
    if (!isDtype(s.dtype)) fail(`tensor '${s.name}' has unknown dtype ${JSON.stringify(s.dtype)}`);
    if (!s.shape.every(isCount)) fail(`tensor '${s.name}' has invalid shape ${fmtShape(s.shape)} (need non-negative integers)`);
  }
  for (const [k, v] of Object.entries(metadata)) if (typeof v !== 'string') fail(`metadata value for '${k}' is not a string`);

  const sorted = [...specs].sort((a, b) => DTYPE_RANK[b.dtype] - DTYPE_RANK[a.dtype] || byteOrder(a.name, b.name));
  const entries = new Map<string, TensorEntry>();
  // Built by hand rather than JSON.stringify(object): JS objects move integer-like keys first,
  // which would break the order for a tensor named "0".
  const parts: string[] = [];
  const metaKeys = Object.keys(metadata).sort(byteOrder);
  if (metaKeys.length > 0) {
    parts.push(`"__metadata__":{${metaKeys.map((k) => `${JSON.stringify(k)}:${JSON.stringify(metadata[k])}`).join(',')}}`);
  }
  let cursor = 0;
  for (const s of sorted) {
    const end = cursor + numel(s.shape) * DTYPE_SIZE[s.dtype];
    if (!Number.isSafeInteger(end)) fail(`tensor '${s.name}' is too large`);
    entries.set(s.name, { dtype: s.dtype, shape: [...s.shape], offsets: [cursor, end] });
    parts.push(`${JSON.stringify(s.name)}:{"dtype":"${s.dtype}","shape":[${s.shape.join(',')}],"data_offsets":[${cursor},${end}]}`);
    cursor = end;
  }
  const json = utf8.encode(`{${parts.join(',')}}`);
  const padded = new Uint8Array(8 + Math.ceil(json.byteLength / 8) * 8).fill(0x20);
  new DataView(padded.buffer).setBigUint64(0, BigInt(padded.byteLength - 8), true);
  padded.set(json, 8);
  return { header: padded, names: sorted.map((s) => s.name), entries, dataBytes: cursor };
}

/** The stored bytes of `data` for a tensor of `dtype`, checked against the expected size. */
export function encodeTensor(dtype: Dtype, data: TensorData, expectedBytes: number, what = 'tensor'): Uint8Array {
  let bytes: Uint8Array;
  if (data instanceof Float32Array) {
    if (dtype !== 'F32' && dtype !== 'F16' && dtype !== 'BF16') {
      throw new Error(`${what}: cannot encode float32 values as ${dtype}; pass the raw ${dtype} data`);
    }
    bytes = fromFloat32(dtype as FloatDtype, data);
  } else {
    bytes = new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  }
  if (bytes.byteLength !== expectedBytes) {
    throw new Error(`${what}: got ${bytes.byteLength} bytes of ${dtype} data, the shape needs ${expectedBytes}`);
  }
  return bytes;
}

/**
 * Streaming writer: the full list of tensors is given up front (so the header can be written
 * first), then each tensor's data is written once, in any order, straight to its place in a
 * temporary file. Nothing is held in memory. `finish()` publishes the file atomically; `abort()`
 * (or any failure in `finish`) removes the temporary file.
 */
export class SafetensorsWriter {
  private written = new Set<string>();

  private constructor(
    readonly path: string,
    private file: AtomicFile,
    /** Tensor names in the order they are laid out in the file. */
    readonly names: string[],
    readonly entries: Map<string, TensorEntry>,
    private dataStart: number,
  ) {}

  static async create(path: string, specs: readonly TensorSpec[], metadata: Record<string, string> = {}): Promise<SafetensorsWriter> {
    const { header, names, entries } = layoutHeader(specs, metadata, path);
    let file: AtomicFile;
    try {
      file = await AtomicFile.open(path);
    } catch (e) {
      throw new SafetensorsError(path, `cannot write: ${(e as Error).message}`);
    }
    try {
      await file.write(header, 0);
    } catch (e) {
      await file.abort();
      throw new SafetensorsError(path, `cannot write: ${(e as Error).message}`);
    }
    return new SafetensorsWriter(path, file, names, entries, header.byteLength);
  }

  /** Write one tensor's data (see TensorData for what is accepted). */
  async write(name: string, data: TensorData): Promise<void> {
    const e = this.entries.get(name);
    if (!e) throw new SafetensorsError(this.path, `tensor '${name}' was not declared when the writer was created`);
    if (this.written.has(name)) throw new SafetensorsError(this.path, `tensor '${name}' written twice`);
    let bytes: Uint8Array;
    try {
      bytes = encodeTensor(e.dtype, data, e.offsets[1] - e.offsets[0], `tensor '${name}'`);
    } catch (err) {
      throw new SafetensorsError(this.path, (err as Error).message);
    }
    await this.file.write(bytes, this.dataStart + e.offsets[0]);
    this.written.add(name);
  }

  /** Check every tensor was written, then flush and rename onto the final path. */
  async finish(): Promise<void> {
    const missing = this.names.filter((n) => !this.written.has(n));
    if (missing.length > 0) {
      await this.abort();
      throw new SafetensorsError(this.path, `${missing.length} tensor(s) never written, e.g. '${missing[0]}'`);
    }
    await this.file.commit();
  }

  async abort(): Promise<void> {
    await this.file.abort();
  }
}

/** Write a whole set of tensors to `path` atomically (deterministic layout, see layoutHeader). */
export async function writeSafetensors(
  path: string,
  tensors: Record<string, WriteTensor> | Map<string, WriteTensor>,
  metadata: Record<string, string> = {},
): Promise<void> {
  const list = tensors instanceof Map ? [...tensors.entries()] : Object.entries(tensors);
  const w = await SafetensorsWriter.create(path, list.map(([name, t]) => ({ name, dtype: t.dtype, shape: t.shape })), metadata);
  try {
    for (const [name, t] of list) await w.write(name, t.data);
  } catch (e) {
    await w.abort();
    throw e;
  }
  await w.finish();
}
