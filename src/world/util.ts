// Small helpers for emoji-world: text normalisation, edit distance, seeded string hashing, and
// loading the JSON data that ships inside npm packages (no network, ever).
import { createHash } from 'node:crypto';
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);

/** Load a JSON file shipped inside an installed npm package (e.g. `emojilib/dist/emoji-en-US.json`). */
export function requireJson<T>(specifier: string): T {
  return require(specifier) as T;
}

/** The installed version of an npm package, read from its package.json. */
export function packageVersion(pkg: string): string {
  return requireJson<{ version: string }>(`${pkg}/package.json`).version;
}

/**
 * Plain lowercase ASCII text for a name or phrase: accents removed (piñata -> pinata), curly quotes
 * straightened or dropped, underscores to spaces, runs of spaces collapsed.
 */
export function normalizeText(s: string): string {
  return s
    .normalize('NFKD')
    .replace(/[\u0300-\u036f]/g, '')
    .replace(/[\u2018\u2019]/g, "'")
    .replace(/[\u201c\u201d"]/g, '')
    .replace(/_/g, ' ')
    .toLowerCase()
    .replace(/\s+/g, ' ')
    .trim();
}

/** kebab-case slug: letters and digits joined by single hyphens ("Mrs. Claus" -> "mrs-claus"). */
export function slug(s: string): string {
  return normalizeText(s)
    .replace(/'/g, '')
    .replace(/[^a-z0-9]+/g, '-')
    .replace(/^-+|-+$/g, '');
}

/** Levenshtein distance (insert, delete, substitute all cost 1). */
export function editDistance(a: string, b: string): number {
  if (a === b) return 0;
  if (a.length === 0) return b.length;
  if (b.length === 0) return a.length;
  let prev = new Array<number>(b.length + 1);
  let cur = new Array<number>(b.length + 1);
  for (let j = 0; j <= b.length; j++) prev[j] = j;
  for (let i = 1; i <= a.length; i++) {
    cur[0] = i;
    const ca = a.charCodeAt(i - 1);
    for (let j = 1; j <= b.length; j++) {
      const sub = prev[j - 1]! + (ca === b.charCodeAt(j - 1) ? 0 : 1);
      cur[j] = Math.min(sub, prev[j]! + 1, cur[j - 1]! + 1);
    }
    [prev, cur] = [cur, prev];
  }
  return prev[b.length]!;
}

/** A 32-bit hash of a string under a seed (sha256-based, so stable everywhere). */
export function hashString(seed: number, ...parts: string[]): number {
  const h = createHash('sha256');
  h.update(`${seed >>> 0}`);
  for (const p of parts) h.update('\u0000' + p);
  return h.digest().readUInt32BE(0);
}

/** sha256 hex digest of bytes or text. */
export function sha256(data: Uint8Array | string): string {
  return createHash('sha256').update(data).digest('hex');
}

/** JSON with object keys sorted at every level: the same value always gives the same text. */
export function stableStringify(value: unknown, indent?: number): string {
  const sortKeys = (v: unknown): unknown => {
    if (Array.isArray(v)) return v.map(sortKeys);
    if (v && typeof v === 'object') {
      const out: Record<string, unknown> = {};
      for (const k of Object.keys(v as object).sort()) out[k] = sortKeys((v as Record<string, unknown>)[k]);
      return out;
    }
    return v;
  };
  return JSON.stringify(sortKeys(value), null, indent);
}

/** Deduplicate, keeping first occurrences in order. */
export function uniq<T>(xs: Iterable<T>): T[] {
  return [...new Set(xs)];
}
