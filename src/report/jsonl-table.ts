// Any JSON-lines file of records (a benchmark's results.jsonl) as one table: nested objects are
// flattened into dotted columns (data.detection), the columns are every key in first-seen order,
// arrays are shown as compact JSON. A line that is not a JSON object (a run killed mid-append) is
// counted and reported, not fatal.
import { readFileSync } from 'node:fs';
import { esc, fmtNumber, table } from './html.js';
import { isRecord } from './read-json.js';
import { ReportError } from './report-error.js';

export interface JsonlRows {
  rows: Record<string, unknown>[];
  columns: string[];
  /** 1-based line numbers that were not JSON objects. */
  badLines: number[];
}

export function readJsonl(path: string): JsonlRows {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    throw new ReportError(`${path}: cannot read (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
  }
  const rows: Record<string, unknown>[] = [];
  const badLines: number[] = [];
  const columns = new Set<string>();
  text.split('\n').forEach((line, i) => {
    if (!line.trim()) return;
    let v: unknown;
    try {
      v = JSON.parse(line);
    } catch {
      badLines.push(i + 1);
      return;
    }
    if (!isRecord(v)) {
      badLines.push(i + 1);
      return;
    }
    const flat = flatten(v);
    rows.push(flat);
    for (const k of Object.keys(flat)) columns.add(k);
  });
  return { rows, columns: [...columns], badLines };
}

/** Nested objects as dotted keys: { data: { a: 1 } } -> { 'data.a': 1 }. */
function flatten(v: Record<string, unknown>, prefix = '', into: Record<string, unknown> = {}): Record<string, unknown> {
  for (const [k, x] of Object.entries(v)) {
    if (isRecord(x) && Object.keys(x).length) flatten(x, `${prefix}${k}.`, into);
    else into[prefix + k] = x;
  }
  return into;
}

function cell(v: unknown): string {
  if (v === undefined) return '';
  if (typeof v === 'number') return fmtNumber(v);
  if (typeof v === 'string') return esc(v);
  return esc(JSON.stringify(v));
}

export function jsonlTable(t: JsonlRows, file: string): string {
  const note = t.badLines.length ? `<p>${t.badLines.length} line(s) of ${esc(file)} are not JSON objects and are left out (line ${t.badLines.slice(0, 5).join(', ')}${t.badLines.length > 5 ? ', ...' : ''}).</p>` : '';
  if (!t.rows.length) return `<p>${esc(file)}: no rows</p>${note}`;
  return `<p>${t.rows.length} row(s) from ${esc(file)}.</p>${note}<div class="scroll">${table(t.columns, t.rows.map((r) => t.columns.map((c) => cell(r[c]))))}</div>`;
}
