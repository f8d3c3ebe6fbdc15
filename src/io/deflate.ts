// A small deterministic zlib (RFC 1950) / deflate (RFC 1951) compressor, in plain TypeScript.
//
// Why not node:zlib: Node bundles Chromium's zlib, whose deflate picks matches with CPU-dependent
// hashing (SIMD crc32c when the CPU has it), so the compressed bytes can differ between machines.
// mce promises that the same seed and flags give the same output bytes everywhere, so PNGs are
// compressed here: LZ77 with hash chains and one-step lazy matching, then fixed Huffman codes.
// Output depends only on the input bytes. Decompression uses node:zlib (inflate is exact).

const WINDOW = 1 << 15;
const WMASK = WINDOW - 1;
const HASH_BITS = 15;
const HASH_SIZE = 1 << HASH_BITS;
const MIN_MATCH = 3;
const MAX_MATCH = 258;
const MAX_CHAIN = 128;
const GOOD_ENOUGH = 64;

// Length symbols 257..285: base length and extra bits.
const LEN_BASE = [3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 15, 17, 19, 23, 27, 31, 35, 43, 51, 59, 67, 83, 99, 115, 131, 163, 195, 227, 258];
const LEN_EXTRA = [0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3, 4, 4, 4, 4, 5, 5, 5, 5, 0];
// Distance symbols 0..29.
const DIST_BASE = [1, 2, 3, 4, 5, 7, 9, 13, 17, 25, 33, 49, 65, 97, 129, 193, 257, 385, 513, 769, 1025, 1537, 2049, 3073, 4097, 6145, 8193, 12289, 16385, 24577];
const DIST_EXTRA = [0, 0, 0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7, 8, 8, 9, 9, 10, 10, 11, 11, 12, 12, 13, 13];

// Length (3..258) -> symbol index into LEN_BASE; distance (1..32768) -> symbol.
const LEN_SYM = new Uint8Array(MAX_MATCH + 1);
for (let s = 0; s < LEN_BASE.length; s++) {
  const hi = s + 1 < LEN_BASE.length ? LEN_BASE[s + 1]! : MAX_MATCH + 1;
  for (let l = LEN_BASE[s]!; l < hi && l <= MAX_MATCH; l++) LEN_SYM[l] = s;
}
LEN_SYM[258] = 28;
function distSym(d: number): number {
  let lo = 0;
  let hi = DIST_BASE.length - 1;
  while (lo < hi) {
    const mid = (lo + hi + 1) >> 1;
    if (DIST_BASE[mid]! <= d) lo = mid;
    else hi = mid - 1;
  }
  return lo;
}

function reverseBits(code: number, len: number): number {
  let r = 0;
  for (let i = 0; i < len; i++) {
    r = (r << 1) | (code & 1);
    code >>= 1;
  }
  return r;
}

// Fixed Huffman literal/length codes (RFC 1951 3.2.6), bit-reversed for the LSB-first stream.
const FIXED_CODE = new Uint16Array(288);
const FIXED_LEN = new Uint8Array(288);
for (let v = 0; v < 288; v++) {
  let code: number;
  let len: number;
  if (v < 144) { code = 0x30 + v; len = 8; }
  else if (v < 256) { code = 0x190 + (v - 144); len = 9; }
  else if (v < 280) { code = v - 256; len = 7; }
  else { code = 0xc0 + (v - 280); len = 8; }
  FIXED_CODE[v] = reverseBits(code, len);
  FIXED_LEN[v] = len;
}
const DIST_CODE = new Uint8Array(30);
for (let d = 0; d < 30; d++) DIST_CODE[d] = reverseBits(d, 5);

class BitWriter {
  private buf: Uint8Array;
  private pos = 0;
  private acc = 0;
  private n = 0;
  constructor(capacity: number) {
    this.buf = new Uint8Array(Math.max(64, capacity));
  }
  write(value: number, bits: number): void {
    this.acc |= value << this.n;
    this.n += bits;
    while (this.n >= 8) {
      this.byte(this.acc & 0xff);
      this.acc >>>= 8;
      this.n -= 8;
    }
  }
  byte(b: number): void {
    if (this.pos === this.buf.length) {
      const nb = new Uint8Array(this.buf.length * 2);
      nb.set(this.buf);
      this.buf = nb;
    }
    this.buf[this.pos++] = b;
  }
  flush(): void {
    if (this.n > 0) this.byte(this.acc & 0xff);
    this.acc = 0;
    this.n = 0;
  }
  bytes(): Uint8Array {
    return this.buf.subarray(0, this.pos);
  }
}

/** Adler-32 of `data` (the zlib trailer). */
export function adler32(data: Uint8Array): number {
  let a = 1;
  let b = 0;
  const NMAX = 5552;
  for (let i = 0; i < data.length; ) {
    const end = Math.min(data.length, i + NMAX);
    for (; i < end; i++) {
      a += data[i]!;
      b += a;
    }
    a %= 65521;
    b %= 65521;
  }
  return ((b << 16) | a) >>> 0;
}

/** Raw deflate (RFC 1951) of `data`: one final block with fixed Huffman codes. Deterministic. */
export function deflateRaw(data: Uint8Array): Uint8Array {
  const n = data.length;
  const out = new BitWriter((n >> 1) + 64);
  out.write(1, 1); // BFINAL
  out.write(1, 2); // BTYPE = 01, fixed Huffman
  const head = new Int32Array(HASH_SIZE).fill(-1);
  const prev = new Int32Array(WINDOW).fill(-1);
  const hashAt = (i: number): number => ((data[i]! << 10) ^ (data[i + 1]! << 5) ^ data[i + 2]!) & (HASH_SIZE - 1);
  const insert = (i: number): void => {
    if (i + MIN_MATCH > n) return;
    const h = hashAt(i);
    prev[i & WMASK] = head[h]!;
    head[h] = i;
  };
  // Longest match for position i among earlier positions (inserted before i), length >= MIN_MATCH.
  const longest = (i: number): [number, number] => {
    if (i + MIN_MATCH > n) return [0, 0];
    const maxLen = Math.min(MAX_MATCH, n - i);
    let cand = head[hashAt(i)]!;
    let bestLen = MIN_MATCH - 1;
    let bestDist = 0;
    let chain = MAX_CHAIN;
    while (cand >= 0 && i - cand <= WINDOW && chain-- > 0) {
      if (data[cand + bestLen] === data[i + bestLen]) {
        let l = 0;
        while (l < maxLen && data[cand + l] === data[i + l]) l++;
        if (l > bestLen) {
          bestLen = l;
          bestDist = i - cand;
          if (l >= maxLen || l >= GOOD_ENOUGH) break;
        }
      }
      const p = prev[cand & WMASK]!;
      if (p >= cand) break;
      cand = p;
    }
    return bestLen >= MIN_MATCH ? [bestLen, bestDist] : [0, 0];
  };
  const literal = (b: number): void => out.write(FIXED_CODE[b]!, FIXED_LEN[b]!);
  const match = (len: number, dist: number): void => {
    const ls = LEN_SYM[len]!;
    out.write(FIXED_CODE[257 + ls]!, FIXED_LEN[257 + ls]!);
    if (LEN_EXTRA[ls]) out.write(len - LEN_BASE[ls]!, LEN_EXTRA[ls]!);
    const ds = distSym(dist);
    out.write(DIST_CODE[ds]!, 5);
    if (DIST_EXTRA[ds]) out.write(dist - DIST_BASE[ds]!, DIST_EXTRA[ds]!);
  };

  let i = 0;
  let pending: [number, number] | null = null; // a match found at i - 1, deferred one step (lazy)
  while (i < n) {
    const m = longest(i);
    if (pending) {
      if (m[0] > pending[0]) {
        // A better match starts here: emit the previous byte as a literal and defer this one.
        literal(data[i - 1]!);
        insert(i);
        pending = m;
        i++;
        continue;
      }
      // Take the deferred match, which started at i - 1 and already inserted i - 1.
      const [len, dist] = pending;
      match(len, dist);
      for (let k = i; k < i - 1 + len; k++) insert(k);
      i = i - 1 + len;
      pending = null;
      continue;
    }
    if (m[0] >= MIN_MATCH) {
      insert(i);
      pending = m;
      i++;
      continue;
    }
    literal(data[i]!);
    insert(i);
    i++;
  }
  if (pending) {
    const [len, dist] = pending;
    match(len, dist);
  }
  out.write(FIXED_CODE[256]!, FIXED_LEN[256]!); // end of block
  out.flush();
  return out.bytes();
}

/** zlib stream (RFC 1950) of `data`: header, deterministic deflate, Adler-32. */
export function zlibCompress(data: Uint8Array): Uint8Array {
  const body = deflateRaw(data);
  const out = new Uint8Array(body.length + 6);
  out[0] = 0x78; // deflate, 32K window
  out[1] = 0x5e; // FLEVEL 1, check bits: (0x78 * 256 + 0x5e) % 31 === 0
  out.set(body, 2);
  const a = adler32(data);
  out[body.length + 2] = a >>> 24;
  out[body.length + 3] = (a >>> 16) & 0xff;
  out[body.length + 4] = (a >>> 8) & 0xff;
  out[body.length + 5] = a & 0xff;
  return out;
}
