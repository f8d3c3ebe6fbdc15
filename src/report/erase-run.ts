// The report section of an `mce erase` run folder, built from what the run wrote (summary.json,
// sparsity.json, grid.png, val-STEP.png), so `mce erase` and a later `mce report` give the same
// page: settings, the held-out evaluation and acceptance bars, the before/after grid, validation
// grids, loss curves, the trajectory divergence curve (does the erased model follow the original
// for most of the trajectory and depart only at the end?) and sparsity per layer and group.
import { readdirSync } from 'node:fs';
import { basename, join } from 'node:path';
import type { ErasureEval, Prediction } from '../erase/mce/evaluate.js';
import type { Bar } from '../erase/mce/acceptance.js';
import type { SparsityReport } from '../erase/mce/masks.js';
import { esc, fmtNumber, inlinePng, pct, preJson, table } from './html.js';
import { PALETTE, fractionBars, linePlot } from './plots.js';
import { isNumberArray, isRecord, readJsonIfPresent } from './read-json.js';

/** summary.json of an erase run, as far as the report reads it (every field optional: older runs). */
interface EraseSummary {
  command: 'mce erase';
  concepts?: { name: string }[];
  model?: string;
  settings?: Record<string, unknown>;
  seconds?: { total?: number };
  loss?: { curve?: [number, number, number, number][] };
  trajectoryDivergence?: Record<string, unknown>;
  grid?: { file: string; rows: { kind: string; prompt: string }[] } | null;
  validation?: { columns?: string[] } | null;
  evaluation?: ErasureEval | null;
  acceptance?: Bar[] | null;
}

/** The erase summary in `dir`, or undefined when `dir` is no erase run. */
export function readEraseSummary(dir: string): EraseSummary | undefined {
  const s = readJsonIfPresent(join(dir, 'summary.json'));
  return isRecord(s) && s['command'] === 'mce erase' ? (s as unknown as EraseSummary) : undefined;
}

export function eraseRunTitle(s: EraseSummary): string {
  return `mce erase: ${(s.concepts ?? []).map((c) => c.name).join(' + ')} (${s.model ?? 'unknown model'})`;
}

/** The validation grids in `dir`, by step (val-00020.png -> 20). */
function validationFiles(dir: string): { step: number; file: string }[] {
  return readdirSync(dir)
    .map((f) => ({ f, m: /^val-(\d+)\.png$/.exec(f) }))
    .filter((x) => x.m)
    .map((x) => ({ step: Number(x.m![1]), file: x.f }))
    .sort((a, b) => a.step - b.step);
}

function evaluationHtml(ev: ErasureEval | null | undefined): string {
  if (!ev) return '<p>not run (--eval 0)</p>';
  const row = (name: string, g: ErasureEval['erase'] | null, what: string): string[][] =>
    g ? [[esc(name), esc(what), pct(g.before), pct(g.after), g.ssim.toFixed(3), g.clip ? g.clip.before.toFixed(1) : 'n/a', g.clip ? g.clip.after.toFixed(1) : 'n/a']] : [];
  return table(['prompts', 'metric', 'original', 'erased', 'SSIM vs original', 'CLIP original', 'CLIP erased'], [
    ...row('target (held-out templates/synonyms)', ev.erase, ev.metrics.detection),
    ...row('near neighbours', ev.neighbours, ev.metrics.accuracy),
    ...row('other concepts', ev.others, ev.metrics.accuracy),
  ]) + `\n<p>${ev.classifier ? `classifier: ${esc(ev.classifier)}.` : ''} ${ev.clipModel ? `CLIP: ${esc(ev.clipModel)}.` : ''} ${esc(ev.metrics.ssim)}. ${esc(ev.metrics.clip)}.</p>` +
    phraseHtml(ev) + (ev.notes.length ? `\n<p>Not measured: ${ev.notes.map(esc).join('; ')}.</p>` : '') + perPromptHtml(ev);
}

/** Target detection split by the prompt's concept phrase (runs before this split have none). */
function phraseHtml(ev: ErasureEval): string {
  const groups = ev.erase.byConceptPhrase ?? [];
  if (!groups.length) return '';
  return `\n<p>Target detection by the prompt's concept phrase: ${groups.map((g) => `${esc(g.phrase)} ${pct(g.before)} → ${pct(g.after)} (${g.prompts} prompts)`).join('; ')}. A held-out synonym is a word the text encoder never saw, so the original model may not draw the target for it.</p>`;
}

/** Every held-out prompt with the classifier's call before and after (hits in bold), folded away. */
function perPromptHtml(ev: ErasureEval): string {
  const call = (p: Prediction): string => `${p.hit ? '<b>' : ''}${esc(p.concept)} (${esc(p.style)})${p.hit ? '</b>' : ''}`;
  const rows = ([['target', ev.erase], ['near neighbour', ev.neighbours], ['other', ev.others]] as const).flatMap(([name, g]) =>
    (g?.perPrompt ?? []).map((r, i) => [name, esc(g!.prompts[i]!), esc(g!.truth[i]!), call(r.before), call(r.after), r.ssim.toFixed(3)]));
  if (!rows.length) return '';
  return `\n<details><summary>Per prompt: the classifier's top-1 concept (style), original and erased; bold counts toward the rate</summary>\n` +
    `${table(['group', 'prompt', 'shows', 'original', 'erased', 'SSIM'], rows)}</details>`;
}

function sparsityHtml(rep: SparsityReport | undefined): string {
  if (!rep) return '<p>no sparsity.json</p>';
  const groupColor = new Map(rep.groups.map((g, i) => [g.group, PALETTE[i % PALETTE.length]!]));
  const bars = fractionBars(rep.layers.map((l) => ({ label: l.name, value: l.fraction, color: groupColor.get(l.group) })),
    { title: `pruned fraction per layer (colour = group: ${rep.groups.map((g) => g.group).join(', ')})` });
  const rows = [
    ...rep.layers.map((l) => [esc(l.name), esc(l.group), String(l.units), String(l.pruned), pct(l.fraction)]),
    ...rep.groups.map((g) => [`<b>group ${esc(g.group)}</b>`, '', String(g.units), String(g.pruned), pct(g.fraction)]),
    ['<b>total</b>', '', String(rep.total.units), String(rep.total.pruned), pct(rep.total.fraction)],
  ];
  return `${bars}\n${table(['layer', 'group', 'units', 'pruned', 'pruned %'], rows)}`;
}

/** The HTML body of the erase run in `dir` (summary already read). */
export function eraseRunSection(dir: string, s: EraseSummary): string {
  const history = (s.loss?.curve ?? []).filter((h) => Array.isArray(h) && h.length >= 4);
  const loss = linePlot([
    { name: 'erase MSE', color: PALETTE[0]!, points: history.map((h) => [h[0], h[2]]) },
    { name: 'preserve MSE', color: PALETTE[1]!, points: history.map((h) => [h[0], h[3]]) },
  ], { title: 'loss terms per optimizer step (unsmoothed)', xLabel: 'step', yLabel: 'MSE (final latent)' });
  const curves = Object.entries(s.trajectoryDivergence ?? {}).filter((e): e is [string, number[]] => isNumberArray(e[1]));
  const div = linePlot(curves.map(([k, v], i) => ({ name: `${k} prompts`, color: PALETTE[i % PALETTE.length]!, points: v.map((y, j) => [j, y] as [number, number]) })),
    { title: 'trajectory divergence: mean |x_t original - x_t erased| (same noise)', xLabel: 'sampling state (0 = noise, N = final)', yLabel: 'mean abs difference' });
  const rep = readJsonIfPresent(join(dir, 'sparsity.json')) as SparsityReport | undefined;
  const acc = s.acceptance;
  const grid = s.grid;
  const vals = validationFiles(dir);
  const seconds = s.seconds?.total;
  return [
    `<p>Minimalist Concept Erasure: losses on the final sampler output only, gradients through every sampling step (per-step recompute), learned neuron masks.${typeof seconds === 'number' ? ` Training time ${fmtNumber(seconds)} s.` : ''}</p>`,
    '<h2>Held-out evaluation</h2>', evaluationHtml(s.evaluation),
    acc ? `<h3>Acceptance bars</h3>${table(['bar', 'value', 'met'], acc.map((b) => [esc(b.bar), b.value === null ? 'n/a' : b.value.toFixed(3), b.met === null ? 'not measured' : b.met ? 'yes' : 'NO']))}` : '',
    '<h2>Before / after</h2>',
    grid ? `<p>columns: original | erased (binary masks), same noise. Rows: ${grid.rows.map((x) => `${esc(x.kind)}: “${esc(x.prompt)}”`).join('; ')}</p>${inlinePng(join(dir, basename(grid.file)), 'before/after grid')}` : '<p>no grid</p>',
    vals.length ? `<h2>Validation during training</h2><p>columns: ${(s.validation?.columns ?? ['original', 'continuous masks', 'binary masks']).map(esc).join(' | ')}</p>${vals.map((v) => `<figure style="display:inline-block">${inlinePng(join(dir, v.file), `validation step ${v.step}`)}<figcaption>step ${v.step}</figcaption></figure>`).join('')}` : '',
    `<h2>Loss</h2>${loss}`,
    `<h2>Trajectory divergence</h2>${div}`,
    `<h2>Sparsity (pruned = keep-mask 0 at threshold 0)</h2>${sparsityHtml(rep)}`,
    `<h2>Settings</h2>${preJson(s.settings ?? {})}`,
  ].filter(Boolean).join('\n');
}
