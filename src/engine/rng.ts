// Seeded randomness. Every random choice in mce takes a seed and draws from here, in JS, so the
// same seed gives the same bytes on every backend.

/** A 32-bit seed mixed into a stream: same (seed, stream) -> same numbers. */
export function mixSeed(seed: number, ...streams: number[]): number {
  let h = fmix32((seed >>> 0) ^ 0x9e3779b9);
  for (const s of streams) h = fmix32((h + 0x9e3779b9 + (s >>> 0)) >>> 0);
  return h;
}

/** murmur3's 32-bit finaliser: a bijective, well-mixing hash of one word. */
function fmix32(x: number): number {
  let h = x >>> 0;
  h = Math.imul(h ^ (h >>> 16), 0x85ebca6b);
  h = Math.imul(h ^ (h >>> 13), 0xc2b2ae35);
  return (h ^ (h >>> 16)) >>> 0;
}

/** A small, fast PRNG (sfc32 seeded by splitmix32): uniform floats in [0, 1). */
export class Rng {
  private a: number;
  private b: number;
  private c: number;
  private d: number;

  constructor(seed: number) {
    let s = seed >>> 0;
    const next = (): number => {
      s = (s + 0x9e3779b9) >>> 0;
      let z = s;
      z = Math.imul(z ^ (z >>> 16), 0x85ebca6b);
      z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35);
      return (z ^ (z >>> 16)) >>> 0;
    };
    this.a = next();
    this.b = next();
    this.c = next();
    this.d = next();
    for (let i = 0; i < 12; i++) this.nextU32();
  }

  nextU32(): number {
    const t = (((this.a + this.b) >>> 0) + this.d) >>> 0;
    this.d = (this.d + 1) >>> 0;
    this.a = this.b ^ (this.b >>> 9);
    this.b = (this.c + (this.c << 3)) >>> 0;
    this.c = ((this.c << 21) | (this.c >>> 11)) >>> 0;
    this.c = (this.c + t) >>> 0;
    return t;
  }

  /** Uniform in [0, 1) with 32 random bits. */
  uniform(): number {
    return this.nextU32() / 4294967296;
  }

  /** Standard normal (Box-Muller, both values used). */
  private spare: number | null = null;
  normal(): number {
    if (this.spare !== null) {
      const v = this.spare;
      this.spare = null;
      return v;
    }
    let u = 0;
    while (u === 0) u = this.uniform();
    const v = this.uniform();
    const r = Math.sqrt(-2 * Math.log(u));
    this.spare = r * Math.sin(2 * Math.PI * v);
    return r * Math.cos(2 * Math.PI * v);
  }

  /** Integer in [0, n). */
  int(n: number): number {
    return Math.floor(this.uniform() * n);
  }
}

export function randnArray(size: number, seed: number): Float32Array {
  const rng = new Rng(seed);
  const out = new Float32Array(size);
  for (let i = 0; i < size; i++) out[i] = rng.normal();
  return out;
}

/**
 * Noise for a batch of n images, `per` values each: image k gets randnArray(per, mixSeed(seed, first + k)),
 * so an image's noise does not depend on how many others share its batch (a shard of a sweep starts
 * at `first`).
 */
export function randnBatch(n: number, per: number, seed: number, first = 0): Float32Array {
  const out = new Float32Array(n * per);
  for (let i = 0; i < n; i++) out.set(randnArray(per, mixSeed(seed, first + i)), i * per);
  return out;
}

export function uniformArray(size: number, seed: number, lo = 0, hi = 1): Float32Array {
  const rng = new Rng(seed);
  const out = new Float32Array(size);
  for (let i = 0; i < size; i++) out[i] = lo + (hi - lo) * rng.uniform();
  return out;
}
