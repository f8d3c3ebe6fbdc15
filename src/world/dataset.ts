// The emoji-world dataset: every (concept, vendor) pair rendered to size x size RGB, stored as one
// Uint8 file of N x H x W x 3 plus a JSON index, under a cache folder named by the hash of
// everything that determines its bytes (config, data package versions, renderer version). Building is
// deterministic (the same config gives the same bytes), offline, and atomic (the folder is written
// under a temporary name and renamed into place).
//
// Layout of <cacheDir>/<key>/:
//   images.u8     N*H*W*3 bytes, record-major, rows top to bottom, RGB
//   index.json    { concepts: [...names], vendors: [...], records: { concept: [...], vendor: [...], icon: [...] } }
//   manifest.json config, sources, file sha256s, datasetHash (deterministic)
//   build.json    render time, machine, date (informational; not part of the hash)
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { writeFileAtomicSync } from '../io/atomic.js';
import { type Concept, loadCatalogue } from './catalogue.js';
import { conceptsNeededBy } from './targets.js';
import { loadIconSet, renderSvg, rendererVersion, VENDORS, type Vendor } from './vendors.js';
import { hashString, sha256, stableStringify } from './util.js';

/** Bump when the dataset layout or rendering changes in a way the package versions don't capture. */
export const DATASET_FORMAT = 'mce-emoji-world/1';

export interface DatasetConfig {
  /** Image side in pixels (e.g. 32 or 64). */
  size: number;
  /** Vendors (styles) to render; default all three. */
  vendors?: readonly Vendor[];
  /**
   * Which concepts: 'all' (default: the whole catalogue), a list of names, or a count, in which case
   * `selectConcepts(count, seed)` picks them (every erasure target, member, neighbour and neutral
   * concept first, then a category-balanced seeded sample).
   */
  concepts?: 'all' | readonly string[] | number;
  /** Seed of the concept selection when `concepts` is a count (default 0). */
  seed?: number;
  /** Cache root (default $MCE_CACHE_DIR/world, else <package>/.cache/world). */
  cacheDir?: string;
  /** Check the sha256 of cached files on load (default true). */
  verify?: boolean;
  /** Called while rendering with (done, total). */
  onProgress?: (done: number, total: number) => void;
}

export interface DatasetManifest {
  format: string;
  key: string;
  datasetHash: string;
  size: number;
  vendors: Vendor[];
  conceptCount: number;
  records: number;
  shape: [number, number, number, number];
  sources: Record<string, string>;
  renderer: string;
  files: Record<string, { sha256: string; bytes: number }>;
}

export interface Dataset {
  /** The cache folder holding it. */
  dir: string;
  manifest: DatasetManifest;
  /** sha256 over the index and the images: the identity of the data a model was trained on. */
  hash: string;
  size: number;
  vendors: readonly Vendor[];
  /** Concept names, in catalogue order; labels index into it. */
  concepts: readonly string[];
  /** Number of images. */
  n: number;
  /** All images, N x size x size x 3, RGB uint8. */
  images: Uint8Array;
  /** Per image: index into `concepts`. */
  conceptIndex: Int32Array;
  /** Per image: index into `vendors`. */
  vendorIndex: Int32Array;
  /** Per image: the vendor's icon name. */
  icons: readonly string[];
  /** One image (a view into `images`). */
  image(i: number): Uint8Array;
  /** True when it was read from the cache rather than rendered now. */
  fromCache: boolean;
  /** Milliseconds spent rendering (0 when read from the cache). */
  renderMs: number;
}

interface DatasetIndex {
  format: string;
  size: number;
  vendors: Vendor[];
  concepts: string[];
  records: { concept: number[]; vendor: number[]; icon: string[] };
}

/** The package root (two levels above this file, both from src/ and from dist/). */
function packageRoot(): string {
  return resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
}

/** The default cache root for datasets. */
export function defaultCacheDir(): string {
  const env = process.env['MCE_CACHE_DIR'];
  return env ? join(resolve(env), 'world') : join(packageRoot(), '.cache', 'world');
}

/**
 * Pick `count` concepts drawn by every one of `vendors`: all concepts the erasure targets need
 * (members, neighbours, neutral concepts), then round-robin over categories, each category in a
 * seeded order. Returned in catalogue order.
 */
export function selectConcepts(count: number, seed = 0, vendors: readonly Vendor[] = VENDORS): string[] {
  const cat = loadCatalogue();
  const eligible = cat.concepts.filter((c) => vendors.every((v) => c.icons[v] !== undefined));
  const eligibleNames = new Set(eligible.map((c) => c.name));
  const chosen = new Set<string>();
  for (const n of conceptsNeededBy()) if (eligibleNames.has(n)) chosen.add(n);
  if (count < chosen.size) throw new Error(`selectConcepts: ${count} is fewer than the ${chosen.size} concepts the erasure targets need`);
  const byCat = new Map<string, Concept[]>();
  for (const c of eligible) {
    if (chosen.has(c.name)) continue;
    const list = byCat.get(c.category) ?? [];
    list.push(c);
    byCat.set(c.category, list);
  }
  const queues = [...byCat.keys()].sort().map((k) =>
    byCat.get(k)!
      .map((c) => [c, hashString(seed, 'select', c.name)] as const)
      .sort((a, b) => a[1] - b[1] || (a[0].name < b[0].name ? -1 : 1))
      .map(([c]) => c.name),
  );
  while (chosen.size < count && queues.some((q) => q.length)) {
    for (const q of queues) {
      if (chosen.size >= count) break;
      const next = q.shift();
      if (next !== undefined) chosen.add(next);
    }
  }
  return cat.concepts.filter((c) => chosen.has(c.name)).map((c) => c.name);
}

function resolveConcepts(cfg: DatasetConfig, vendors: readonly Vendor[]): Concept[] {
  const cat = loadCatalogue();
  const spec = cfg.concepts ?? 'all';
  if (spec === 'all') return cat.concepts.filter((c) => vendors.some((v) => c.icons[v] !== undefined));
  if (typeof spec === 'number') return selectConcepts(spec, cfg.seed ?? 0, vendors).map((n) => cat.get(n));
  const wanted = new Set(spec.map((n) => cat.get(n).name));
  return cat.concepts.filter((c) => wanted.has(c.name));
}

/** What determines the bytes of a dataset, and its cache key. */
function datasetIdentity(size: number, vendors: readonly Vendor[], concepts: readonly Concept[]) {
  const cat = loadCatalogue();
  const identity = {
    format: DATASET_FORMAT,
    size,
    vendors: [...vendors],
    concepts: concepts.map((c) => `${c.name}|${vendors.map((v) => c.icons[v] ?? '').join('|')}`),
    sources: { ...cat.sources },
    renderer: rendererVersion(),
  };
  return { identity, key: sha256(stableStringify(identity)).slice(0, 16) };
}

/** Build (or load from the cache) the dataset for a config. */
export function buildDataset(cfg: DatasetConfig): Dataset {
  const size = cfg.size;
  if (!Number.isInteger(size) || size < 4 || size > 1024) throw new Error(`buildDataset: bad size ${size} (want an integer, 4..1024)`);
  const vendors = cfg.vendors ? VENDORS.filter((v) => cfg.vendors!.includes(v)) : [...VENDORS];
  for (const v of cfg.vendors ?? []) if (!VENDORS.includes(v)) throw new Error(`buildDataset: unknown vendor "${v}" (known: ${VENDORS.join(', ')})`);
  if (vendors.length === 0) throw new Error('buildDataset: no vendors');
  const concepts = resolveConcepts(cfg, vendors);
  const { identity, key } = datasetIdentity(size, vendors, concepts);
  const root = cfg.cacheDir ? resolve(cfg.cacheDir) : defaultCacheDir();
  const dir = join(root, key);

  if (fs.existsSync(join(dir, 'manifest.json'))) {
    try {
      return loadDataset(dir, { verify: cfg.verify ?? true });
    } catch {
      // A damaged cache entry: render again below, then replace it.
      fs.rmSync(dir, { recursive: true, force: true });
    }
  }

  // Render.
  const t0 = performance.now();
  const sets = vendors.map((v) => loadIconSet(v));
  const recConcept: number[] = [];
  const recVendor: number[] = [];
  const recIcon: string[] = [];
  concepts.forEach((c, ci) => {
    vendors.forEach((v, vi) => {
      const icon = c.icons[v];
      if (icon === undefined) return;
      recConcept.push(ci);
      recVendor.push(vi);
      recIcon.push(icon);
    });
  });
  const n = recIcon.length;
  const per = size * size * 3;
  const images = new Uint8Array(n * per);
  for (let i = 0; i < n; i++) {
    renderSvg(sets[recVendor[i]!]!.svg(recIcon[i]!), size, images, i * per);
    if (cfg.onProgress && (i % 256 === 255 || i === n - 1)) cfg.onProgress(i + 1, n);
  }
  const renderMs = performance.now() - t0;

  const index: DatasetIndex = {
    format: DATASET_FORMAT,
    size,
    vendors,
    concepts: concepts.map((c) => c.name),
    records: { concept: recConcept, vendor: recVendor, icon: recIcon },
  };
  const indexText = JSON.stringify(index);
  const imagesSha = sha256(images);
  const indexSha = sha256(indexText);
  const manifest: DatasetManifest = {
    format: DATASET_FORMAT,
    key,
    datasetHash: sha256(`${indexSha}\n${imagesSha}\n`),
    size,
    vendors,
    conceptCount: concepts.length,
    records: n,
    shape: [n, size, size, 3],
    sources: identity.sources,
    renderer: identity.renderer,
    files: {
      'images.u8': { sha256: imagesSha, bytes: images.byteLength },
      'index.json': { sha256: indexSha, bytes: Buffer.byteLength(indexText) },
    },
  };
  const build = {
    renderMs: Math.round(renderMs),
    date: new Date().toISOString(),
    machine: `${os.cpus()[0]?.model ?? 'unknown cpu'} x${os.cpus().length}, ${os.platform()} ${os.arch()}, node ${process.version}`,
  };

  // Write under a temporary name, then rename the folder into place.
  fs.mkdirSync(root, { recursive: true });
  const tmp = join(root, `.${key}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`);
  fs.mkdirSync(tmp);
  try {
    // Each file flushed to disk (writeFileAtomicSync) before the folder's rename publishes them.
    writeFileAtomicSync(join(tmp, 'images.u8'), images);
    writeFileAtomicSync(join(tmp, 'index.json'), indexText);
    writeFileAtomicSync(join(tmp, 'manifest.json'), stableStringify(manifest, 2) + '\n');
    writeFileAtomicSync(join(tmp, 'build.json'), JSON.stringify(build, null, 2) + '\n');
    try {
      fs.renameSync(tmp, dir);
    } catch (e) {
      // Another process finished the same dataset first: keep theirs (the bytes are the same).
      const code = (e as NodeJS.ErrnoException).code;
      if (code !== 'ENOTEMPTY' && code !== 'EEXIST') throw e;
      fs.rmSync(tmp, { recursive: true, force: true });
    }
  } catch (e) {
    fs.rmSync(tmp, { recursive: true, force: true });
    throw e;
  }
  return makeDataset(dir, manifest, index, images, false, renderMs);
}

/** Load a dataset folder written by buildDataset. With verify (default), file hashes are checked. */
export function loadDataset(dir: string, opts: { verify?: boolean } = {}): Dataset {
  const manifest = JSON.parse(fs.readFileSync(join(dir, 'manifest.json'), 'utf8')) as DatasetManifest;
  if (manifest.format !== DATASET_FORMAT) throw new Error(`${dir}: dataset format ${manifest.format}, expected ${DATASET_FORMAT}`);
  const indexText = fs.readFileSync(join(dir, 'index.json'), 'utf8');
  const buf = fs.readFileSync(join(dir, 'images.u8'));
  const images = new Uint8Array(buf.buffer, buf.byteOffset, buf.byteLength);
  const want = manifest.files['images.u8']!;
  if (images.byteLength !== want.bytes) throw new Error(`${dir}: images.u8 has ${images.byteLength} bytes, manifest says ${want.bytes}`);
  if (opts.verify ?? true) {
    if (sha256(images) !== want.sha256) throw new Error(`${dir}: images.u8 does not match its sha256`);
    if (sha256(indexText) !== manifest.files['index.json']!.sha256) throw new Error(`${dir}: index.json does not match its sha256`);
  }
  const index = JSON.parse(indexText) as DatasetIndex;
  return makeDataset(dir, manifest, index, images, true, 0);
}

function makeDataset(
  dir: string,
  manifest: DatasetManifest,
  index: DatasetIndex,
  images: Uint8Array,
  fromCache: boolean,
  renderMs: number,
): Dataset {
  const per = index.size * index.size * 3;
  const n = index.records.icon.length;
  return {
    dir,
    manifest,
    hash: manifest.datasetHash,
    size: index.size,
    vendors: index.vendors,
    concepts: index.concepts,
    n,
    images,
    conceptIndex: Int32Array.from(index.records.concept),
    vendorIndex: Int32Array.from(index.records.vendor),
    icons: index.records.icon,
    image: (i: number) => {
      if (!(i >= 0 && i < n)) throw new RangeError(`image ${i} out of range [0, ${n})`);
      return images.subarray(i * per, (i + 1) * per);
    },
    fromCache,
    renderMs,
  };
}

/** Total bytes on disk of a dataset folder. */
export function datasetBytesOnDisk(dir: string): number {
  let total = 0;
  for (const f of fs.readdirSync(dir)) total += fs.statSync(join(dir, f)).size;
  return total;
}
