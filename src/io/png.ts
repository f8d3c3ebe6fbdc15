// PNG reading and writing, with node:zlib and nothing else.
//
// Encoder: 8-bit RGB (also grey and RGBA) PNGs with deterministic bytes: the same pixels give the
// same file on every machine and run (our own deflate, see deflate.ts, since node:zlib's output can
// depend on the CPU; filters chosen by a fixed heuristic; no timestamps or other ancillary chunks).
//
// Decoder: non-interlaced PNGs of every colour type (grey, RGB, palette, grey+alpha, RGBA) at every
// bit depth the format allows (1/2/4/8/16; 16-bit samples keep their high byte). CRCs are checked.
// Interlaced (Adam7) files are refused with a clear error. `toRGB` flattens any decoded image to
// 8-bit RGB, compositing transparency over white (the background of every emoji-world render).
import * as fs from 'node:fs';
import { inflateSync } from 'node:zlib';
import { zlibCompress } from './deflate.js';
import { writeFileAtomic, writeFileAtomicSync } from './atomic.js';

/** An 8-bit image, rows top to bottom, `channels` interleaved samples per pixel. */
export interface Image {
  width: number;
  height: number;
  /** 1 grey, 2 grey+alpha, 3 RGB, 4 RGBA. */
  channels: 1 | 2 | 3 | 4;
  /** width * height * channels bytes. */
  data: Uint8Array;
}

/** A bad or unsupported PNG file. The message is one line, fit to show a user. */
export class PngError extends Error {}

const SIGNATURE = Uint8Array.from([137, 80, 78, 71, 13, 10, 26, 10]);

// CRC-32 (ISO 3309 / PNG), table-driven.
const CRC_TABLE = (() => {
  const t = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    t[n] = c >>> 0;
  }
  return t;
})();

/** CRC-32 of `data`, as PNG chunks use it. */
export function crc32(data: Uint8Array, crc = 0): number {
  let c = ~crc >>> 0;
  for (let i = 0; i < data.length; i++) c = CRC_TABLE[(c ^ data[i]!) & 0xff]! ^ (c >>> 8);
  return ~c >>> 0;
}

// ----------------------------------------------------------------------------------------------
// Encoder

const COLOUR_TYPE_FOR_CHANNELS: Record<1 | 2 | 3 | 4, number> = { 1: 0, 2: 4, 3: 2, 4: 6 };

function chunk(type: string, body: Uint8Array): Uint8Array {
  const out = new Uint8Array(12 + body.length);
  const dv = new DataView(out.buffer);
  dv.setUint32(0, body.length);
  for (let i = 0; i < 4; i++) out[4 + i] = type.charCodeAt(i);
  out.set(body, 8);
  dv.setUint32(8 + body.length, crc32(out.subarray(4, 8 + body.length)));
  return out;
}

function paeth(a: number, b: number, c: number): number {
  const p = a + b - c;
  const pa = Math.abs(p - a);
  const pb = Math.abs(p - b);
  const pc = Math.abs(p - c);
  return pa <= pb && pa <= pc ? a : pb <= pc ? b : c;
}

/** Filter one scanline with filter `f` into `out` (without the filter byte). */
function filterRow(f: number, cur: Uint8Array, prev: Uint8Array | null, bpp: number, out: Uint8Array): void {
  const n = cur.length;
  for (let i = 0; i < n; i++) {
    const x = cur[i]!;
    const a = i >= bpp ? cur[i - bpp]! : 0;
    const b = prev ? prev[i]! : 0;
    const c = prev && i >= bpp ? prev[i - bpp]! : 0;
    let v: number;
    switch (f) {
      case 0: v = x; break;
      case 1: v = x - a; break;
      case 2: v = x - b; break;
      case 3: v = x - ((a + b) >> 1); break;
      default: v = x - paeth(a, b, c); break;
    }
    out[i] = v & 0xff;
  }
}

/**
 * Encode an 8-bit image as PNG. Deterministic: the bytes depend only on the pixels and options.
 * Each row takes the filter (of the five) with the smallest sum of absolute signed residuals, the
 * standard heuristic; ties go to the lower filter number.
 */
export function encodePng(img: Image): Uint8Array {
  const { width, height, channels, data } = img;
  if (!Number.isInteger(width) || !Number.isInteger(height) || width < 1 || height < 1 || width > 0x7fffffff || height > 0x7fffffff) {
    throw new PngError(`encodePng: bad size ${width}x${height}`);
  }
  if (![1, 2, 3, 4].includes(channels)) throw new PngError(`encodePng: bad channel count ${channels}`);
  const stride = width * channels;
  if (data.length !== stride * height) {
    throw new PngError(`encodePng: ${width}x${height}x${channels} needs ${stride * height} bytes, got ${data.length}`);
  }
  const raw = new Uint8Array((stride + 1) * height);
  const trial = new Uint8Array(stride);
  const best = new Uint8Array(stride);
  for (let y = 0; y < height; y++) {
    const cur = data.subarray(y * stride, (y + 1) * stride);
    const prev = y > 0 ? data.subarray((y - 1) * stride, y * stride) : null;
    let bestF = 0;
    let bestScore = Infinity;
    for (let f = 0; f < 5; f++) {
      filterRow(f, cur, prev, channels, trial);
      let s = 0;
      for (let i = 0; i < stride; i++) {
        const v = trial[i]!;
        s += v < 128 ? v : 256 - v;
      }
      if (s < bestScore) {
        bestScore = s;
        bestF = f;
        best.set(trial);
      }
    }
    raw[y * (stride + 1)] = bestF;
    raw.set(best, y * (stride + 1) + 1);
  }
  const idat = zlibCompress(raw);

  const ihdr = new Uint8Array(13);
  const dv = new DataView(ihdr.buffer);
  dv.setUint32(0, width);
  dv.setUint32(4, height);
  ihdr[8] = 8; // bit depth
  ihdr[9] = COLOUR_TYPE_FOR_CHANNELS[channels];
  ihdr[10] = 0; // deflate
  ihdr[11] = 0; // adaptive filtering
  ihdr[12] = 0; // not interlaced
  const parts = [SIGNATURE, chunk('IHDR', ihdr), chunk('IDAT', idat), chunk('IEND', new Uint8Array(0))];
  const out = new Uint8Array(parts.reduce((s, p) => s + p.length, 0));
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

/** Encode width x height RGB bytes (H x W x 3) as PNG. */
export function encodeRgbPng(width: number, height: number, rgb: Uint8Array): Uint8Array {
  return encodePng({ width, height, channels: 3, data: rgb });
}

/** Write an image as a PNG file, atomically. */
export async function writePng(path: string, img: Image): Promise<void> {
  await writeFileAtomic(path, encodePng(img));
}

/** Synchronous twin of `writePng`. */
export function writePngSync(path: string, img: Image): void {
  writeFileAtomicSync(path, encodePng(img));
}

// ----------------------------------------------------------------------------------------------
// Decoder

interface Header {
  width: number;
  height: number;
  bitDepth: number;
  colourType: number;
  interlace: number;
}

const SAMPLES_PER_PIXEL: Record<number, number> = { 0: 1, 2: 3, 3: 1, 4: 2, 6: 4 };
const ALLOWED_DEPTHS: Record<number, number[]> = { 0: [1, 2, 4, 8, 16], 2: [8, 16], 3: [1, 2, 4, 8], 4: [8, 16], 6: [8, 16] };

/** Largest image the decoder accepts (pixels), so a hostile header cannot ask for gigabytes. */
const MAX_PIXELS = 1 << 28;

/**
 * Decode a PNG. Returns 8-bit samples: grey (1), grey+alpha (2), RGB (3) or RGBA (4) channels,
 * following the file's colour type; palette images come back as RGB, or RGBA when they carry a
 * tRNS chunk. Grey/RGB tRNS colour keys become an alpha channel too. Throws `PngError`.
 */
export function decodePng(bytes: Uint8Array): Image {
  if (bytes.length < 8 || !SIGNATURE.every((b, i) => bytes[i] === b)) throw new PngError('not a PNG file (bad signature)');
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let pos = 8;
  let header: Header | null = null;
  let palette: Uint8Array | null = null;
  let trns: Uint8Array | null = null;
  const idat: Uint8Array[] = [];
  let ended = false;
  while (pos < bytes.length) {
    if (pos + 12 > bytes.length) throw new PngError('truncated PNG (incomplete chunk header)');
    const len = dv.getUint32(pos);
    const type = String.fromCharCode(bytes[pos + 4]!, bytes[pos + 5]!, bytes[pos + 6]!, bytes[pos + 7]!);
    if (!/^[A-Za-z]{4}$/.test(type)) throw new PngError(`corrupt PNG (bad chunk type at byte ${pos})`);
    if (len > 0x7fffffff || pos + 12 + len > bytes.length) throw new PngError(`truncated PNG (${type} chunk runs past the end of the file)`);
    const body = bytes.subarray(pos + 8, pos + 8 + len);
    const crc = dv.getUint32(pos + 8 + len);
    if (crc32(bytes.subarray(pos + 4, pos + 8 + len)) !== crc) throw new PngError(`corrupt PNG (CRC mismatch in ${type} chunk)`);
    pos += 12 + len;
    if (header === null && type !== 'IHDR') throw new PngError('corrupt PNG (first chunk is not IHDR)');
    switch (type) {
      case 'IHDR': {
        if (header) throw new PngError('corrupt PNG (two IHDR chunks)');
        if (len !== 13) throw new PngError('corrupt PNG (IHDR has the wrong length)');
        const h = new DataView(body.buffer, body.byteOffset, 13);
        header = { width: h.getUint32(0), height: h.getUint32(4), bitDepth: body[8]!, colourType: body[9]!, interlace: body[12]! };
        if (header.width === 0 || header.height === 0) throw new PngError('corrupt PNG (zero width or height)');
        if (header.width * header.height > MAX_PIXELS) throw new PngError(`PNG too large (${header.width}x${header.height})`);
        const allowed = ALLOWED_DEPTHS[header.colourType];
        if (!allowed) throw new PngError(`corrupt PNG (unknown colour type ${header.colourType})`);
        if (!allowed.includes(header.bitDepth)) throw new PngError(`corrupt PNG (bit depth ${header.bitDepth} is invalid for colour type ${header.colourType})`);
        if (body[10] !== 0 || body[11] !== 0) throw new PngError('unsupported PNG (unknown compression or filter method)');
        if (header.interlace === 1) throw new PngError('unsupported PNG: interlaced (Adam7) images are not supported; re-save it non-interlaced');
        if (header.interlace !== 0) throw new PngError(`corrupt PNG (unknown interlace method ${header.interlace})`);
        break;
      }
      case 'PLTE':
        if (len % 3 !== 0 || len === 0 || len > 768) throw new PngError('corrupt PNG (bad PLTE length)');
        palette = body;
        break;
      case 'tRNS':
        trns = body;
        break;
      case 'IDAT':
        idat.push(body);
        break;
      case 'IEND':
        ended = true;
        break;
      default:
        // Unknown critical chunks (upper-case first letter) cannot be skipped.
        if (type.charCodeAt(0) < 97) throw new PngError(`unsupported PNG (unknown critical chunk ${type})`);
    }
    if (ended) break;
  }
  if (!header) throw new PngError('corrupt PNG (no IHDR chunk)');
  if (!ended) throw new PngError('truncated PNG (no IEND chunk)');
  if (idat.length === 0) throw new PngError('corrupt PNG (no image data)');
  if (header.colourType === 3 && !palette) throw new PngError('corrupt PNG (palette image without PLTE)');

  let raw: Uint8Array;
  try {
    const b = inflateSync(Buffer.concat(idat));
    raw = new Uint8Array(b.buffer, b.byteOffset, b.byteLength);
  } catch (e) {
    throw new PngError(`corrupt PNG (image data does not inflate: ${(e as Error).message.split('\n')[0]})`);
  }
  const { width, height, bitDepth, colourType } = header;
  const spp = SAMPLES_PER_PIXEL[colourType]!;
  const bitsPerPixel = spp * bitDepth;
  const stride = Math.ceil((width * bitsPerPixel) / 8);
  const bpp = Math.max(1, bitsPerPixel >> 3);
  if (raw.length < (stride + 1) * height) throw new PngError(`truncated PNG (image data has ${raw.length} bytes, needs ${(stride + 1) * height})`);

  // Unfilter in place into `pix` (height * stride).
  const pix = new Uint8Array(stride * height);
  for (let y = 0; y < height; y++) {
    const f = raw[y * (stride + 1)]!;
    const src = raw.subarray(y * (stride + 1) + 1, (y + 1) * (stride + 1));
    const o = y * stride;
    const po = o - stride;
    for (let i = 0; i < stride; i++) {
      const a = i >= bpp ? pix[o + i - bpp]! : 0;
      const b = y > 0 ? pix[po + i]! : 0;
      const c = y > 0 && i >= bpp ? pix[po + i - bpp]! : 0;
      const x = src[i]!;
      let v: number;
      switch (f) {
        case 0: v = x; break;
        case 1: v = x + a; break;
        case 2: v = x + b; break;
        case 3: v = x + ((a + b) >> 1); break;
        case 4: v = x + paeth(a, b, c); break;
        default: throw new PngError(`corrupt PNG (unknown filter type ${f} on row ${y})`);
      }
      pix[o + i] = v & 0xff;
    }
  }

  // Read sample s (0-based, across the row) of row y, scaled to 8 bits (palette indices unscaled).
  const sample = (y: number, s: number): number => {
    const o = y * stride;
    if (bitDepth === 8) return pix[o + s]!;
    if (bitDepth === 16) return pix[o + 2 * s]!;
    const bit = s * bitDepth;
    const byte = pix[o + (bit >> 3)]!;
    const v = (byte >> (8 - bitDepth - (bit & 7))) & ((1 << bitDepth) - 1);
    return colourType === 3 ? v : Math.round((v * 255) / ((1 << bitDepth) - 1));
  };
  // Full-precision sample, for tRNS colour-key comparison.
  const rawSample = (y: number, s: number): number => {
    if (bitDepth === 16) return (pix[y * stride + 2 * s]! << 8) | pix[y * stride + 2 * s + 1]!;
    if (bitDepth === 8) return pix[y * stride + s]!;
    const bit = s * bitDepth;
    return (pix[y * stride + (bit >> 3)]! >> (8 - bitDepth - (bit & 7))) & ((1 << bitDepth) - 1);
  };

  const n = width * height;
  if (colourType === 3) {
    const pal = palette!;
    const entries = pal.length / 3;
    const alpha = trns !== null;
    const ch = alpha ? 4 : 3;
    const data = new Uint8Array(n * ch);
    for (let y = 0; y < height; y++) {
      for (let x = 0; x < width; x++) {
        const idx = sample(y, x);
        if (idx >= entries) throw new PngError(`corrupt PNG (palette index ${idx} out of range)`);
        const d = (y * width + x) * ch;
        data[d] = pal[idx * 3]!;
        data[d + 1] = pal[idx * 3 + 1]!;
        data[d + 2] = pal[idx * 3 + 2]!;
        if (alpha) data[d + 3] = idx < trns!.length ? trns![idx]! : 255;
      }
    }
    return { width, height, channels: ch, data };
  }

  const keyed = trns !== null && (colourType === 0 || colourType === 2);
  const outCh = (keyed ? spp + 1 : spp) as 1 | 2 | 3 | 4;
  const data = new Uint8Array(n * outCh);
  const tv = trns ? new DataView(trns.buffer, trns.byteOffset, trns.byteLength) : null;
  const key = keyed && tv ? (colourType === 0 ? [tv.getUint16(0)] : [tv.getUint16(0), tv.getUint16(2), tv.getUint16(4)]) : null;
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const d = (y * width + x) * outCh;
      for (let s = 0; s < spp; s++) data[d + s] = sample(y, x * spp + s);
      if (key) {
        let match = true;
        for (let s = 0; s < spp; s++) if (rawSample(y, x * spp + s) !== key[s]) match = false;
        data[d + spp] = match ? 0 : 255;
      }
    }
  }
  return { width, height, channels: outCh, data };
}

/** Flatten any 8-bit image to RGB, compositing transparency over `background` (default white). */
export function toRGB(img: Image, background: readonly [number, number, number] = [255, 255, 255]): Uint8Array {
  const n = img.width * img.height;
  if (img.channels === 3) return img.data;
  const out = new Uint8Array(n * 3);
  const src = img.data;
  const ch = img.channels;
  for (let i = 0; i < n; i++) {
    let r: number, g: number, b: number, a: number;
    if (ch === 1 || ch === 2) {
      r = g = b = src[i * ch]!;
      a = ch === 2 ? src[i * 2 + 1]! : 255;
    } else {
      r = src[i * 4]!;
      g = src[i * 4 + 1]!;
      b = src[i * 4 + 2]!;
      a = src[i * 4 + 3]!;
    }
    if (a === 255) {
      out[i * 3] = r;
      out[i * 3 + 1] = g;
      out[i * 3 + 2] = b;
    } else {
      const inv = 255 - a;
      out[i * 3] = Math.round((r * a + background[0] * inv) / 255);
      out[i * 3 + 1] = Math.round((g * a + background[1] * inv) / 255);
      out[i * 3 + 2] = Math.round((b * a + background[2] * inv) / 255);
    }
  }
  return out;
}

/** Read and decode a PNG file. File-system errors and bad files both throw one-line errors. */
export function readPng(path: string): Image {
  let bytes: Buffer;
  try {
    bytes = fs.readFileSync(path);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new PngError(code === 'ENOENT' ? `${path}: no such file` : code === 'EISDIR' ? `${path}: is a directory` : `${path}: ${(e as Error).message.split('\n')[0]}`);
  }
  try {
    return decodePng(new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength));
  } catch (e) {
    if (e instanceof PngError) throw new PngError(`${path}: ${e.message}`);
    throw e;
  }
}
