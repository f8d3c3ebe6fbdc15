// report.html for an MCE run: one self-contained file (inline SVG plots, PNGs as data URLs):
// settings, loss curves, sparsity per layer and group, the trajectory divergence curve (mean
// |x_t original - x_t erased| per step on erase and preserve prompts: does the erased model follow
// the original for most of the trajectory and depart only at the end?), the before/after grid and
// the held-out evaluation.
import { encodePng } from '../../io/png.js';
import type { RgbImage } from '../../generate/flux-emoji.js';
import type { SparsityReport } from './masks.js';
import type { ErasureEval } from './evaluate.js';
import type { Bar } from './acceptance.js';

const esc = (s: string): string => s.replace(/[&<>"]/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;' })[c]!);

/** A small line plot as inline SVG: series of [x, y] points. */
export function linePlot(series: { name: string; color: string; points: [number, number][] }[], opts: { title: string; xLabel: string; yLabel: string; w?: number; h?: number }): string {
  const W = opts.w ?? 520;
  const H = opts.h ?? 240;
  const m = { l: 56, r: 12, t: 24, b: 36 };
  const pts = series.flatMap((s) => s.points).filter(([x, y]) => Number.isFinite(x) && Number.isFinite(y));
  if (!pts.length) return `<p>${esc(opts.title)}: no data</p>`;
  const x0 = Math.min(...pts.map((p) => p[0]));
  const x1 = Math.max(...pts.map((p) => p[0]));
  const y0 = Math.min(0, ...pts.map((p) => p[1]));
  const y1 = Math.max(...pts.map((p) => p[1])) || 1;
  const sx = (x: number): number => m.l + ((x - x0) / (x1 - x0 || 1)) * (W - m.l - m.r);
  const sy = (y: number): number => H - m.b - ((y - y0) / (y1 - y0 || 1)) * (H - m.t - m.b);
  const lines = series.map((s) => {
    const d = s.points.filter(([x, y]) => Number.isFinite(x) && Number.isFinite(y)).map(([x, y], i) => `${i ? 'L' : 'M'}${sx(x).toFixed(1)},${sy(y).toFixed(1)}`).join('');
    return `<path d="${d}" fill="none" stroke="${s.color}" stroke-width="1.5"/>`;
  });
  const legend = series.map((s, i) => `<text x="${W - m.r - 150}" y="${m.t + 14 * i + 4}" fill="${s.color}" font-size="11">${esc(s.name)}</text>`);
  const ticks = [y0, (y0 + y1) / 2, y1].map((y) => `<text x="${m.l - 4}" y="${sy(y) + 4}" text-anchor="end" font-size="10">${y.toPrecision(3)}</text>`);
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" style="background:#fff;border:1px solid #ddd">
<text x="${W / 2}" y="15" text-anchor="middle" font-size="12">${esc(opts.title)}</text>
<line x1="${m.l}" y1="${H - m.b}" x2="${W - m.r}" y2="${H - m.b}" stroke="#999"/><line x1="${m.l}" y1="${m.t}" x2="${m.l}" y2="${H - m.b}" stroke="#999"/>
${ticks.join('')}<text x="${m.l}" y="${H - m.b + 14}" font-size="10">${x0}</text><text x="${W - m.r}" y="${H - m.b + 14}" text-anchor="end" font-size="10">${x1}</text>
<text x="${W / 2}" y="${H - 6}" text-anchor="middle" font-size="11">${esc(opts.xLabel)}</text>
<text x="12" y="${H / 2}" font-size="11" transform="rotate(-90 12 ${H / 2})" text-anchor="middle">${esc(opts.yLabel)}</text>
${lines.join('\n')}${legend.join('')}</svg>`;
}

function png(img: RgbImage): string {
  const bytes = encodePng({ width: img.width, height: img.height, channels: 3, data: img.data });
  return `data:image/png;base64,${Buffer.from(bytes).toString('base64')}`;
}

export interface ReportInput {
  title: string;
  settings: Record<string, unknown>;
  history: [number, number, number, number][];
  sparsity: SparsityReport;
  divergence: Record<string, number[]>;
  grid: { image: RgbImage; rows: { kind: string; prompt: string }[] } | null;
  validation: { step: number; image: RgbImage }[];
  evaluation: ErasureEval | null;
  /** Issue 5's acceptance bars on the evaluation (acceptance.ts). */
  acceptance?: Bar[] | null;
  seconds: number;
}

export function mceReportHtml(r: ReportInput): string {
  const pct = (x: number | null | undefined): string => (x === null || x === undefined ? 'n/a' : `${(100 * x).toFixed(1)}%`);
  const loss = linePlot([
    { name: 'erase MSE', color: '#c0392b', points: r.history.map((h) => [h[0], h[2]]) },
    { name: 'preserve MSE', color: '#2471a3', points: r.history.map((h) => [h[0], h[3]]) },
  ], { title: 'loss terms per optimizer step (unsmoothed)', xLabel: 'step', yLabel: 'MSE (final latent)' });
  const colors = ['#c0392b', '#2471a3', '#27ae60'];
  const div = linePlot(Object.entries(r.divergence).map(([k, v], i) => ({ name: `${k} prompts`, color: colors[i % 3]!, points: v.map((y, j) => [j, y] as [number, number]) })),
    { title: 'trajectory divergence: mean |x_t original - x_t erased| (same noise)', xLabel: 'sampling state (0 = noise, N = final)', yLabel: 'mean abs difference' });
  const sp = r.sparsity.layers.map((l) => `<tr><td>${esc(l.name)}</td><td>${l.group}</td><td>${l.units}</td><td>${l.pruned}</td><td>${pct(l.fraction)}</td></tr>`).join('');
  const spg = r.sparsity.groups.map((g) => `<tr><th>group ${g.group}</th><td></td><td>${g.units}</td><td>${g.pruned}</td><td>${pct(g.fraction)}</td></tr>`).join('');
  const ev = r.evaluation;
  const evRow = (name: string, g: ErasureEval['erase'] | null, what: string): string =>
    g ? `<tr><td>${name}</td><td>${what}</td><td>${pct(g.before)}</td><td>${pct(g.after)}</td><td>${g.ssim.toFixed(3)}</td><td>${g.clip ? g.clip.before.toFixed(1) : 'n/a'}</td><td>${g.clip ? g.clip.after.toFixed(1) : 'n/a'}</td></tr>` : '';
  return `<!doctype html><html><head><meta charset="utf-8"><title>${esc(r.title)}</title>
<style>body{font:14px system-ui,sans-serif;margin:24px;max-width:1100px}table{border-collapse:collapse}td,th{border:1px solid #ddd;padding:2px 8px;text-align:left}img{image-rendering:pixelated}pre{background:#f6f6f6;padding:8px;overflow:auto}</style></head><body>
<h1>${esc(r.title)}</h1>
<p>Minimalist Concept Erasure: losses on the final sampler output only, gradients through every sampling step (per-step recompute), learned neuron masks. Run time ${r.seconds.toFixed(0)} s.</p>
<h2>Held-out evaluation</h2>
${ev ? `<table><tr><th>prompts</th><th>metric</th><th>original</th><th>erased</th><th>SSIM vs original</th><th>CLIP original</th><th>CLIP erased</th></tr>
${evRow('target (held-out templates/synonyms)', ev.erase, ev.metrics.detection)}${evRow('near neighbours', ev.neighbours, ev.metrics.accuracy)}${evRow('other concepts', ev.others, ev.metrics.accuracy)}</table>
<p>${ev.classifier ? `classifier: ${esc(ev.classifier)}.` : ''} ${ev.clipModel ? `CLIP: ${esc(ev.clipModel)}.` : ''} ${esc(ev.metrics.ssim)}. ${esc(ev.metrics.clip)}.</p>
${ev.notes.length ? `<p>Not measured: ${ev.notes.map(esc).join('; ')}.</p>` : ''}` : '<p>not run (--eval 0)</p>'}
${r.acceptance ? `<h3>Acceptance bars</h3><table><tr><th>bar</th><th>value</th><th>met</th></tr>${r.acceptance.map((b) => `<tr><td>${esc(b.bar)}</td><td>${b.value === null ? 'n/a' : b.value.toFixed(3)}</td><td>${b.met === null ? 'not measured' : b.met ? 'yes' : 'NO'}</td></tr>`).join('')}</table>` : ''}
<h2>Before / after</h2>
${r.grid ? `<p>columns: original | erased (binary masks), same noise. Rows: ${r.grid.rows.map((x) => `${esc(x.kind)}: “${esc(x.prompt)}”`).join('; ')}</p><img src="${png(r.grid.image)}">` : '<p>no grid</p>'}
${r.validation.length ? `<h2>Validation during training</h2><p>columns: original | continuous masks | binary masks</p>${r.validation.map((v) => `<figure style="display:inline-block"><img src="${png(v.image)}"><figcaption>step ${v.step}</figcaption></figure>`).join('')}` : ''}
<h2>Loss</h2>${loss}
<h2>Trajectory divergence</h2>${div}
<h2>Sparsity (pruned = keep-mask 0 at threshold 0)</h2>
<table><tr><th>layer</th><th>group</th><th>units</th><th>pruned</th><th>pruned %</th></tr>${sp}${spg}<tr><th>total</th><td></td><td>${r.sparsity.total.units}</td><td>${r.sparsity.total.pruned}</td><td>${pct(r.sparsity.total.fraction)}</td></tr></table>
<h2>Settings</h2><pre>${esc(JSON.stringify(r.settings, null, 1))}</pre>
</body></html>
`;
}
