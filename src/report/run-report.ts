// `mce report RUN_DIR`: one self-contained HTML page for a run folder, whatever wrote it: an erase
// run (summary.json from `mce erase`), a baseline bundle (manifest.json with an erasure record), a
// results folder (results*.jsonl, e.g. a benchmark's, with its table.md and grids/). A folder that
// is several of these gets a section for each. The page depends only on the folder's files (no
// clock, no host details), so the same folder gives the same bytes; `mce erase` writes its
// report.html through this too.
import { existsSync, readFileSync, readdirSync, statSync } from 'node:fs';
import { basename, join } from 'node:path';
import { writeFileAtomic } from '../io/atomic.js';
import { baselineSection, baselineTitle, readBaselineBundle } from './baseline-bundle.js';
import { eraseRunSection, eraseRunTitle, readEraseSummary } from './erase-run.js';
import { esc, inlinePng, page } from './html.js';
import { markdownToHtml } from './markdown.js';
import { jsonlTable, readJsonl } from './jsonl-table.js';
import { ReportError } from './report-error.js';

export const REPORT_FILE = 'report.html';
/** Result rows: results.jsonl, or one file per shard (results.shard-1-of-3.jsonl). */
export const RESULTS_FILES = /^results.*\.jsonl$/;
const GRIDS_DIR = 'grids';
// Past this many images a results page gets too heavy to open; the rest are counted.
const MAX_RESULT_IMAGES = 64;

/** The report page for `dir`. */
export function buildReport(dir: string): { title: string; html: string; kinds: string[] } {
  let isDir = false;
  try {
    isDir = statSync(dir).isDirectory();
  } catch (e) {
    throw new ReportError(`${dir}: cannot read (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
  }
  if (!isDir) throw new ReportError(`${dir}: not a folder (give a run folder)`);
  const sections: { kind: string; title: string; body: string }[] = [];
  const erase = readEraseSummary(dir);
  if (erase) sections.push({ kind: 'erase run', title: eraseRunTitle(erase), body: eraseRunSection(dir, erase) });
  const bundle = readBaselineBundle(dir);
  if (bundle) sections.push({ kind: 'baseline bundle', title: baselineTitle(bundle), body: baselineSection(bundle) });
  const results = readdirSync(dir).filter((f) => RESULTS_FILES.test(f)).sort();
  if (results.length) sections.push({ kind: 'results', title: `results: ${basename(dir)}`, body: resultsSection(dir, results) });
  if (!sections.length) {
    throw new ReportError(`${dir}: nothing to report (no summary.json from mce erase, no manifest.json with an erasure record, no results*.jsonl)`);
  }
  const title = sections.map((s) => s.title).join('; ');
  const body = sections.length === 1 ? sections[0]!.body : sections.map((s) => `<h1>${esc(s.title)}</h1>\n${s.body}`).join('\n');
  return { title, html: page(title, body), kinds: sections.map((s) => s.kind) };
}

/**
 * A results folder: its Markdown tables (a benchmark's table.md), the PNGs in it and in its grids/
 * folder (a benchmark's per-case grids), then every row of each results*.jsonl.
 */
function resultsSection(dir: string, results: string[]): string {
  const md = readdirSync(dir).filter((f) => f.endsWith('.md')).sort();
  const pngs = [
    ...readdirSync(dir).filter((f) => f.endsWith('.png')),
    ...(existsSync(join(dir, GRIDS_DIR)) && statSync(join(dir, GRIDS_DIR)).isDirectory() ? readdirSync(join(dir, GRIDS_DIR)).filter((f) => f.endsWith('.png')).map((f) => `${GRIDS_DIR}/${f}`) : []),
  ].sort();
  const shown = pngs.slice(0, MAX_RESULT_IMAGES);
  return [
    ...md.map((f) => `<h2>${esc(f)}</h2>\n${markdownToHtml(readFileSync(join(dir, f), 'utf8'))}`),
    shown.length ? `<h2>Images</h2>${shown.map((f) => `<figure style="display:inline-block">${inlinePng(join(dir, f), f)}<figcaption>${esc(f)}</figcaption></figure>`).join('\n')}` +
      (pngs.length > shown.length ? `<p>${pngs.length - shown.length} more image(s) not shown.</p>` : '') : '',
    ...results.map((f) => `<h2>${esc(f)}</h2>${jsonlTable(readJsonl(join(dir, f)), f)}`),
  ].filter(Boolean).join('\n');
}

/** Write the report of `dir` to `out` (default: DIR/report.html) atomically; returns the path and what it covered. */
export async function writeReport(dir: string, out: string = join(dir, REPORT_FILE)): Promise<{ path: string; kinds: string[]; bytes: number }> {
  const r = buildReport(dir);
  try {
    await writeFileAtomic(out, r.html);
  } catch (e) {
    throw new ReportError(`cannot write ${out}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
  return { path: out, kinds: r.kinds, bytes: Buffer.byteLength(r.html) };
}
