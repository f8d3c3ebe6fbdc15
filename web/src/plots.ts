// The lab's plots, drawn by uPlot: per-layer mask sparsity (bars), trajectory divergence per
// state, the loss curve, and the benchmark's per-method comparisons. Each plot replaces whatever
// its container held.
import uPlot from 'uplot';
import 'uplot/dist/uPlot.min.css';
import type { SparsityLayer } from './api.js';

const COLORS = ['#d9480f', '#1c7ed6', '#2b8a3e', '#862e9c', '#e8590c', '#0b7285', '#5c940d', '#c2255c', '#495057', '#f08c00'];

function size(el: HTMLElement): { width: number; height: number } {
  return { width: Math.max(280, el.clientWidth - 8), height: 220 };
}

function draw(el: HTMLElement, opts: Omit<uPlot.Options, 'width' | 'height'>, data: uPlot.AlignedData): uPlot {
  el.replaceChildren();
  return new uPlot({ ...size(el), ...opts }, data, el);
}

export function sparsityPlot(el: HTMLElement, layers: SparsityLayer[]): void {
  const x = layers.map((_, i) => i);
  draw(el, {
    scales: { x: { time: false, range: [-0.6, layers.length - 0.4] }, y: { range: [0, 1] } },
    axes: [
      { values: (_u, ticks) => ticks.map((t) => (Number.isInteger(t) ? shortLayer(layers[t]?.name ?? '') : '')), rotate: -35, size: 70, gap: 2 },
      { values: (_u, ticks) => ticks.map((t) => `${Math.round(t * 100)}%`) },
    ],
    series: [{ label: 'layer' , value: (_u, v) => (v === null ? '' : layers[v]?.name ?? '') }, {
      label: 'pruned', stroke: COLORS[0], fill: COLORS[0] + '99', paths: uPlot.paths.bars!({ size: [0.7, 40] }),
      value: (_u, v) => (v === null ? '' : `${(v * 100).toFixed(1)}%`),
    }],
  }, [x, layers.map((l) => l.fraction)]);
}

/** 'double_blocks.0.img_mlp' -> 'd0.img_mlp': axis labels must be short. */
function shortLayer(name: string): string {
  return name.replace('double_blocks.', 'd').replace('single_blocks.', 's').replace('down_blocks.', 'dn').replace('up_blocks.', 'up');
}

export function linePlot(el: HTMLElement, xLabel: string, x: number[], lines: { label: string; y: number[] }[]): void {
  draw(el, {
    scales: { x: { time: false } },
    axes: [{ label: xLabel, size: 40 }, {}],
    series: [{ label: xLabel }, ...lines.map((l, i) => ({ label: l.label, stroke: COLORS[i % COLORS.length], width: 2, points: { show: x.length <= 30 } }))],
  }, [x, ...lines.map((l) => l.y)]);
}

/**
 * Values over named categories (methods, attacks): bars for one series, points joined by lines for
 * several (one per method, say), on a 0-100% scale when `percent`.
 */
export function categoryPlot(el: HTMLElement, categories: string[], lines: { label: string; y: (number | null)[] }[], percent: boolean): void {
  const x = categories.map((_, i) => i);
  const fmt = (v: number | null): string => (v === null ? '–' : percent ? `${(v * 100).toFixed(0)}%` : v.toFixed(3));
  const bars = lines.length === 1;
  draw(el, {
    legend: { show: !bars },
    scales: { x: { time: false, range: [-0.6, categories.length - 0.4] }, y: percent ? { range: [0, 1] } : {} },
    axes: [
      // One tick per category: uPlot's own spacing would skip every other name.
      { splits: () => x, values: (_u, ticks) => ticks.map((t) => categories[t] ?? ''), rotate: -30, size: 60, gap: 2 },
      { values: (_u, ticks) => ticks.map((t) => (percent ? `${Math.round(t * 100)}%` : String(t))) },
    ],
    series: [
      { label: '', value: (_u, v) => (v === null ? '' : categories[v] ?? '') },
      ...lines.map((l, i) => ({
        label: l.label,
        stroke: COLORS[i % COLORS.length],
        width: bars ? 1 : 2,
        ...(bars ? { fill: COLORS[i % COLORS.length] + '99', paths: uPlot.paths.bars!({ size: [0.7, 40] }) } : { points: { show: true, size: 7 } }),
        value: (_u: uPlot, v: number | null) => fmt(v),
      })),
    ],
  }, [x, ...lines.map((l) => l.y)] as uPlot.AlignedData);
}
