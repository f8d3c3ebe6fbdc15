// The report section of a `mce baseline` bundle: the manifest's `erasure` record (method, concept,
// settings beside the published ones, what changed, the base model) and the bundle's summary.json
// (time, peak memory, the fine-tuning loss curve when the method trains).
import { join } from 'node:path';
import { esc, fmtNumber, preJson, table } from './html.js';
import { PALETTE, linePlot } from './plots.js';
import { isRecord, readJsonIfPresent } from './read-json.js';

export interface BaselineBundle {
  erasure: Record<string, unknown>;
  manifest: Record<string, unknown>;
  summary: Record<string, unknown> | undefined;
}

/** The bundle in `dir`, or undefined when its manifest has no erasure record. */
export function readBaselineBundle(dir: string): BaselineBundle | undefined {
  const manifest = readJsonIfPresent(join(dir, 'manifest.json'));
  if (!isRecord(manifest) || !isRecord(manifest['erasure'])) return undefined;
  const summary = readJsonIfPresent(join(dir, 'summary.json'));
  return { erasure: manifest['erasure'], manifest, summary: isRecord(summary) ? summary : undefined };
}

const str = (v: unknown): string => (typeof v === 'string' ? v : JSON.stringify(v) ?? 'n/a');

export function baselineTitle(b: BaselineBundle): string {
  const base = isRecord(b.erasure['base']) ? b.erasure['base']['name'] : undefined;
  return `mce baseline ${str(b.erasure['method'])}: ${str(b.erasure['concept'])}${base !== undefined ? ` (base ${str(base)})` : ''}`;
}

export function baselineSection(b: BaselineBundle): string {
  const e = b.erasure;
  const s = b.summary ?? {};
  const kind = 'wrapper' in b.manifest ? 'inference wrapper (the base weights, sampling changed)' : 'erased bundle (changed weights)';
  const facts: [string, string][] = [
    ['method', esc(str(e['method']))],
    ['concept', esc(str(e['concept']))],
    ['kind', esc(kind)],
    ['seed', esc(str(e['seed']))],
    ['sampling steps', esc(str(e['steps']))],
  ];
  if (typeof s['seconds'] === 'number') facts.push(['time', `${fmtNumber(s['seconds'])} s`]);
  if (typeof s['peak_rss_bytes'] === 'number') facts.push(['peak RSS (process)', `${(s['peak_rss_bytes'] / 2 ** 20).toFixed(0)} MiB`]);
  if (typeof s['trained_params'] === 'number') facts.push(['trained parameters', String(s['trained_params'])]);
  if (isRecord(e['changed'])) {
    facts.push(['changed', Object.entries(e['changed']).map(([k, v]) => `${esc(k)} ${esc(typeof v === 'number' ? fmtNumber(v) : str(v))}`).join(', ')]);
  }
  const losses = Array.isArray(s['losses']) ? (s['losses'] as unknown[]).filter((x): x is number => typeof x === 'number') : [];
  return [
    table(['', ''], facts.map(([k, v]) => [esc(k), v])),
    losses.length ? `<h2>Fine-tuning loss</h2>${linePlot([{ name: 'loss', color: PALETTE[0]!, points: losses.map((y, i) => [i + 1, y]) }], { title: 'loss per iteration', xLabel: 'iteration', yLabel: 'loss' })}` : '',
    `<h2>Settings</h2>${preJson(e['settings'] ?? {})}`,
    e['published'] !== undefined ? `<h2>Published settings</h2>${preJson(e['published'])}` : '',
    isRecord(e['base']) ? `<h2>Base model</h2>${preJson(e['base'])}` : '',
  ].filter(Boolean).join('\n');
}
