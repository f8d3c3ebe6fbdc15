// Plots as inline SVG (a static report has no script): line plots for curves, horizontal bars for
// per-layer values. Non-finite points are dropped rather than breaking the path.
import { esc } from './html.js';

export interface Series {
  name: string;
  color: string;
  points: [number, number][];
}

export const PALETTE = ['#c0392b', '#2471a3', '#27ae60', '#8e44ad', '#d35400', '#16a085'];

/** A small line plot: one path per series, y axis from min(0, data) to the data's maximum. */
export function linePlot(series: Series[], opts: { title: string; xLabel: string; yLabel: string; w?: number; h?: number }): string {
  const W = opts.w ?? 520;
  const H = opts.h ?? 240;
  const m = { l: 56, r: 12, t: 24, b: 36 };
  const finite = ([x, y]: [number, number]): boolean => Number.isFinite(x) && Number.isFinite(y);
  const pts = series.flatMap((s) => s.points).filter(finite);
  if (!pts.length) return `<p>${esc(opts.title)}: no data</p>`;
  const x0 = Math.min(...pts.map((p) => p[0]));
  const x1 = Math.max(...pts.map((p) => p[0]));
  const y0 = Math.min(0, ...pts.map((p) => p[1]));
  const y1 = Math.max(...pts.map((p) => p[1])) || 1;
  const sx = (x: number): number => m.l + ((x - x0) / (x1 - x0 || 1)) * (W - m.l - m.r);
  const sy = (y: number): number => H - m.b - ((y - y0) / (y1 - y0 || 1)) * (H - m.t - m.b);
  const lines = series.map((s) => {
    const d = s.points.filter(finite).map(([x, y], i) => `${i ? 'L' : 'M'}${sx(x).toFixed(1)},${sy(y).toFixed(1)}`).join('');
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

/** Horizontal bars of values in [0, 1] (e.g. the pruned fraction per layer), one row per label. */
export function fractionBars(rows: { label: string; value: number; color?: string }[], opts: { title: string; w?: number }): string {
  if (!rows.length) return `<p>${esc(opts.title)}: no data</p>`;
  const W = opts.w ?? 720;
  const rowH = 16;
  const labelW = 260;
  const barW = W - labelW - 70;
  const H = 24 + rows.length * rowH + 8;
  const bars = rows.map((r, i) => {
    const y = 24 + i * rowH;
    const v = Number.isFinite(r.value) ? Math.min(1, Math.max(0, r.value)) : 0;
    return `<text x="${labelW - 6}" y="${y + 11}" text-anchor="end" font-size="10">${esc(r.label)}</text>` +
      `<rect x="${labelW}" y="${y + 2}" width="${barW}" height="${rowH - 4}" fill="#eee"/>` +
      `<rect x="${labelW}" y="${y + 2}" width="${(v * barW).toFixed(1)}" height="${rowH - 4}" fill="${r.color ?? PALETTE[0]}"/>` +
      `<text x="${labelW + barW + 6}" y="${y + 11}" font-size="10">${Number.isFinite(r.value) ? (100 * r.value).toFixed(1) + '%' : 'n/a'}</text>`;
  });
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" style="background:#fff;border:1px solid #ddd">
<text x="${W / 2}" y="15" text-anchor="middle" font-size="12">${esc(opts.title)}</text>
${bars.join('\n')}</svg>`;
}
