// The pieces every static report page is built from: escaping, the page shell (inline CSS, no
// external requests, so the file opens offline), tables, and PNG files inlined as data: URIs.
import { readFileSync, statSync } from 'node:fs';

export const esc = (s: string): string =>
  s.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!);

const STYLE = 'body{font:14px system-ui,sans-serif;margin:24px;max-width:1100px}table{border-collapse:collapse}' +
  'td,th{border:1px solid #ddd;padding:2px 8px;text-align:left}img{image-rendering:pixelated;max-width:100%}' +
  'pre{background:#f6f6f6;padding:8px;overflow:auto}.scroll{overflow:auto;max-height:600px}';

/** A whole HTML document. The Content-Security-Policy forbids fetching anything, so no part of it can phone home. */
export function page(title: string, body: string): string {
  return `<!doctype html><html><head><meta charset="utf-8">` +
    `<meta http-equiv="Content-Security-Policy" content="default-src 'none'; img-src data:; style-src 'unsafe-inline'">` +
    `<title>${esc(title)}</title><style>${STYLE}</style></head><body>\n<h1>${esc(title)}</h1>\n${body}\n</body></html>\n`;
}

/** A table from a header row and body rows of ready-made cell HTML. */
export function table(head: readonly string[], rows: readonly (readonly string[])[]): string {
  return `<table><tr>${head.map((h) => `<th>${esc(h)}</th>`).join('')}</tr>\n` +
    rows.map((r) => `<tr>${r.map((c) => `<td>${c}</td>`).join('')}</tr>`).join('\n') + '</table>';
}

/** A JSON value as preformatted text. */
export const preJson = (v: unknown): string => `<pre>${esc(JSON.stringify(v, null, 1) ?? 'null')}</pre>`;

/** A number for a table cell: integers as they are, others with 4 significant digits. */
export function fmtNumber(x: number): string {
  if (Number.isInteger(x)) return String(x);
  if (!Number.isFinite(x)) return String(x);
  return Math.abs(x) >= 1e-3 && Math.abs(x) < 1e6 ? String(Number(x.toPrecision(4))) : x.toExponential(3);
}

export const pct = (x: number | null | undefined): string => (typeof x !== 'number' ? 'n/a' : `${(100 * x).toFixed(1)}%`);

const PNG_MAGIC = [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a];

// A report with a huge image stops being a page one can open; images above this are listed, not inlined.
export const MAX_INLINE_IMAGE_BYTES = 16 << 20;

/**
 * An <img> for a PNG file, inlined as a data: URI, or a short note when the file is missing, too
 * large or not a PNG (a report shows what there is rather than failing on one bad image).
 */
export function inlinePng(path: string, label: string): string {
  let bytes: Buffer;
  try {
    const size = statSync(path).size;
    if (size > MAX_INLINE_IMAGE_BYTES) return `<p>${esc(label)}: not inlined (${size} bytes, over the ${MAX_INLINE_IMAGE_BYTES >> 20} MiB limit)</p>`;
    bytes = readFileSync(path);
  } catch (e) {
    return `<p>${esc(label)}: cannot read (${esc((e as NodeJS.ErrnoException).code ?? (e as Error).message)})</p>`;
  }
  if (bytes.length < 8 || PNG_MAGIC.some((b, i) => bytes[i] !== b)) return `<p>${esc(label)}: not a PNG file</p>`;
  return `<img alt="${esc(label)}" src="data:image/png;base64,${bytes.toString('base64')}">`;
}
