// The world's art styles: three open emoji vendors, shipped as iconify JSON icon sets on npm, and
// their rendering to RGB pixels with resvg (a Rust SVG renderer whose prebuilt binary ships inside
// its npm package). Nothing here touches the network. OpenMoji (CC BY-SA 4.0) is deliberately not a
// vendor of the default world.
import { Resvg } from '@resvg/resvg-js';
import { packageVersion, requireJson } from './util.js';

/** A vendor id; each vendor is one art style of the world. */
export type Vendor = 'noto' | 'fluent' | 'twemoji';

/** Every vendor of the default world, in canonical order. */
export const VENDORS: readonly Vendor[] = ['noto', 'fluent', 'twemoji'];

/** A vendor as an art style: its npm package, licence, and the phrases a prompt can use for it. */
export interface StyleInfo {
  vendor: Vendor;
  /** The canonical style name used in prompts ("twemoji"): `a cat in twemoji style`. */
  name: string;
  /** Other names for the style (the canonical one excluded). Split into train / held-out by captions.ts. */
  synonyms: readonly string[];
  /** The npm package holding the iconify JSON set. */
  pkg: string;
  licence: string;
  author: string;
}

export const STYLES: Readonly<Record<Vendor, StyleInfo>> = {
  noto: {
    vendor: 'noto',
    name: 'noto',
    synonyms: ['google noto', 'google', 'noto color emoji', 'google emoji'],
    pkg: '@iconify-json/noto',
    licence: 'Apache-2.0',
    author: 'Google Inc.',
  },
  fluent: {
    vendor: 'fluent',
    name: 'fluent',
    synonyms: ['microsoft fluent', 'microsoft', 'fluent emoji', 'windows'],
    pkg: '@iconify-json/fluent-emoji-flat',
    licence: 'MIT',
    author: 'Microsoft Corporation',
  },
  twemoji: {
    vendor: 'twemoji',
    name: 'twemoji',
    synonyms: ['twitter twemoji', 'twitter', 'twitter emoji', 'twemoji emoji'],
    pkg: '@iconify-json/twemoji',
    licence: 'CC-BY-4.0',
    author: 'Twitter, Inc. and other contributors',
  },
};

/** Resolve a style from its id, canonical name or any synonym ("microsoft fluent style" works too). */
export function styleOf(nameOrVendor: string): Vendor | undefined {
  const s = nameOrVendor.toLowerCase().trim().replace(/\s+style$/, '').replace(/\s+/g, ' ');
  for (const v of VENDORS) {
    const st = STYLES[v];
    if (s === v || s === st.name || st.synonyms.includes(s)) return v;
  }
  return undefined;
}

interface IconifyIcon {
  body: string;
  left?: number;
  top?: number;
  width?: number;
  height?: number;
  rotate?: number;
  hFlip?: boolean;
  vFlip?: boolean;
  hidden?: boolean;
}
interface IconifyAlias extends Omit<IconifyIcon, 'body'> {
  parent: string;
}
interface IconifyJson {
  prefix: string;
  icons: Record<string, IconifyIcon>;
  aliases?: Record<string, IconifyAlias>;
  width?: number;
  height?: number;
  left?: number;
  top?: number;
}

/** One loaded vendor icon set. */
export interface IconSet {
  vendor: Vendor;
  version: string;
  /** Unicode sequence key (lowercase hex joined by '-', FE0F removed) -> icon name. */
  chars: ReadonlyMap<string, string>;
  has(name: string): boolean;
  /** The full SVG document of an icon (aliases and flips resolved). */
  svg(name: string): string;
}

const setCache = new Map<Vendor, IconSet>();

/** The key iconify uses for an emoji code point sequence: lowercase hex, '-' joined, without FE0F. */
export function sequenceKey(hexOrEmoji: string): string {
  const parts = /^[0-9a-fA-F]+(-[0-9a-fA-F]+)*$/.test(hexOrEmoji)
    ? hexOrEmoji.split('-').map((h) => parseInt(h, 16))
    : [...hexOrEmoji].map((c) => c.codePointAt(0)!);
  return parts
    .filter((cp) => cp !== 0xfe0f)
    .map((cp) => cp.toString(16))
    .join('-');
}

/** Load (once per process) a vendor's iconify set from its npm package. */
export function loadIconSet(vendor: Vendor): IconSet {
  const cached = setCache.get(vendor);
  if (cached) return cached;
  const pkg = STYLES[vendor].pkg;
  const json = requireJson<IconifyJson>(`${pkg}/icons.json`);
  const charsJson = requireJson<Record<string, string>>(`${pkg}/chars.json`);
  const chars = new Map<string, string>();
  for (const [hex, name] of Object.entries(charsJson)) chars.set(sequenceKey(hex), name);

  const resolve = (name: string): { icon: IconifyIcon; hFlip: boolean; vFlip: boolean; rotate: number } => {
    let hFlip = false;
    let vFlip = false;
    let rotate = 0;
    let cur = name;
    let over: Partial<IconifyIcon> = {};
    for (let depth = 0; depth < 8; depth++) {
      const icon = json.icons[cur];
      if (icon) return { icon: { ...icon, ...over, body: icon.body }, hFlip, vFlip, rotate };
      const alias = json.aliases?.[cur];
      if (!alias) break;
      // Transformations of an alias compose with its parent's.
      if (alias.hFlip) hFlip = !hFlip;
      if (alias.vFlip) vFlip = !vFlip;
      rotate += alias.rotate ?? 0;
      const { parent, hFlip: _h, vFlip: _v, rotate: _r, ...box } = alias;
      over = { ...box, ...over };
      cur = parent;
    }
    throw new Error(`${vendor}: no icon named "${name}"`);
  };

  const set: IconSet = {
    vendor,
    version: packageVersion(pkg),
    chars,
    has: (name) => name in json.icons || !!json.aliases?.[name],
    svg(name) {
      const { icon, hFlip, vFlip, rotate } = resolve(name);
      const left = icon.left ?? json.left ?? 0;
      const top = icon.top ?? json.top ?? 0;
      const width = icon.width ?? json.width ?? 16;
      const height = icon.height ?? json.height ?? 16;
      let body = dropInvisibleLayers(icon.body, left, top, width, height);
      const transforms: string[] = [];
      const cx = left + width / 2;
      const cy = top + height / 2;
      const r = (((icon.rotate ?? 0) + rotate) % 4 + 4) % 4;
      if (hFlip || vFlip) transforms.push(`translate(${cx} ${cy}) scale(${hFlip ? -1 : 1} ${vFlip ? -1 : 1}) translate(${-cx} ${-cy})`);
      if (r) transforms.push(`rotate(${r * 90} ${cx} ${cy})`);
      if (transforms.length) body = `<g transform="${transforms.join(' ')}">${body}</g>`;
      // A square viewBox around the art, so every icon renders centred at the full size.
      const side = Math.max(width, height);
      const vx = left - (side - width) / 2;
      const vy = top - (side - height) / 2;
      return (
        `<svg xmlns="http://www.w3.org/2000/svg" xmlns:xlink="http://www.w3.org/1999/xlink" ` +
        `viewBox="${vx} ${vy} ${side} ${side}" width="${side}" height="${side}">${body}</svg>`
      );
    },
  };
  setCache.set(vendor, set);
  return set;
}

/** The top-level elements of an SVG fragment, as source slices. */
function topLevelElements(body: string): string[] {
  const out: string[] = [];
  const re = /<[^>]+>/g;
  let depth = 0;
  let start = 0;
  for (let m = re.exec(body); m; m = re.exec(body)) {
    const tag = m[0];
    if (depth === 0) start = m.index;
    if (tag.startsWith('</')) depth--;
    else if (!tag.endsWith('/>') && !tag.startsWith('<!') && !tag.startsWith('<?')) depth++;
    if (depth === 0) out.push(body.slice(start, m.index + tag.length));
  }
  return out;
}

/**
 * Remove top-level elements with group opacity that lie wholly outside the view box. Some noto
 * sources keep spare artboards far outside their view box, and resvg 2.6 panics (aborting the whole
 * process) on an opacity layer there. Those elements are invisible, so removing them changes no pixel.
 */
function dropInvisibleLayers(body: string, left: number, top: number, width: number, height: number): string {
  if (!/\sopacity=/.test(body)) return body;
  const kids = topLevelElements(body);
  // Only when the split is exact (no stray top-level text), so nothing visible can be lost.
  if (kids.join('').replace(/\s+/g, '') !== body.replace(/\s+/g, '')) return body;
  const defs = kids.filter((k) => /^<(?:defs|linearGradient|radialGradient|clipPath|mask|pattern|filter)\b/.test(k)).join('');
  const margin = 0.25 * Math.max(width, height);
  const kept = kids.filter((k) => {
    const open = /^<[^>]+>/.exec(k)?.[0] ?? '';
    if (!/\sopacity=/.test(open)) return true;
    const probe =
      `<svg xmlns="http://www.w3.org/2000/svg" xmlns:xlink="http://www.w3.org/1999/xlink" ` +
      `viewBox="${left} ${top} ${width} ${height}" width="${width}" height="${height}">${defs}${k}</svg>`;
    const b = new Resvg(probe, { font: { loadSystemFonts: false } }).getBBox();
    if (!b) return false; // nothing drawable
    return (
      b.x <= left + width + margin && b.x + b.width >= left - margin && b.y <= top + height + margin && b.y + b.height >= top - margin
    );
  });
  return kept.length === kids.length ? body : kept.join('');
}

/** The installed version of resvg, recorded in dataset manifests. */
export function rendererVersion(): string {
  return `@resvg/resvg-js@${packageVersion('@resvg/resvg-js')}`;
}

/**
 * Render an SVG document to `size` x `size` RGB bytes (row-major, H x W x 3), composited on white.
 * Non-square art is scaled to fit and centred. System fonts are never loaded, so output depends only
 * on the SVG and the resvg version.
 */
export function renderSvg(svg: string, size: number, out?: Uint8Array, offset = 0): Uint8Array {
  if (!Number.isInteger(size) || size < 1 || size > 4096) throw new Error(`bad render size ${size}`);
  const resvg = new Resvg(svg, {
    background: '#ffffff',
    fitTo: { mode: 'width', value: size },
    font: { loadSystemFonts: false },
    shapeRendering: 2,
    imageRendering: 0,
  });
  const img = resvg.render();
  const w = img.width;
  const h = img.height;
  const rgba = img.pixels;
  const dst = out ?? new Uint8Array(size * size * 3);
  if (!out) offset = 0;
  // Fitting to width gives height != size for non-square art: centre it on a white canvas.
  dst.fill(255, offset, offset + size * size * 3);
  const oy = Math.floor((size - h) / 2);
  for (let y = 0; y < Math.min(h, size); y++) {
    const ty = y + Math.max(oy, 0);
    if (ty >= size) break;
    const sy = oy < 0 ? y - oy : y;
    if (sy >= h) break;
    for (let x = 0; x < Math.min(w, size); x++) {
      const s = (sy * w + x) * 4;
      const d = offset + (ty * size + x) * 3;
      // The background is opaque white, so alpha is 255 everywhere; blend anyway for safety.
      const a = rgba[s + 3]!;
      if (a === 255) {
        dst[d] = rgba[s]!;
        dst[d + 1] = rgba[s + 1]!;
        dst[d + 2] = rgba[s + 2]!;
      } else {
        const inv = 255 - a;
        dst[d] = Math.round((rgba[s]! * a + 255 * inv) / 255);
        dst[d + 1] = Math.round((rgba[s + 1]! * a + 255 * inv) / 255);
        dst[d + 2] = Math.round((rgba[s + 2]! * a + 255 * inv) / 255);
      }
    }
  }
  return dst;
}

/** Render one vendor icon by name to `size` x `size` RGB bytes. */
export function renderIcon(vendor: Vendor, iconName: string, size: number): Uint8Array {
  return renderSvg(loadIconSet(vendor).svg(iconName), size);
}
