// The erasure benchmarks of the runs folder (`mce bench` folders): per folder and model family,
// per-method plots (detection on erase prompts, preservation SSIM, attack success per attack), the
// paper-style table, and the side-by-side grids of all methods.
import { api, type ErasureBenchListing } from './api.js';
import { categoryPlot } from './plots.js';
import { fillTable, fixed, pct } from './tables.js';

function el<K extends keyof HTMLElementTagNameMap>(parent: HTMLElement, tag: K, text?: string, cls?: string): HTMLElementTagNameMap[K] {
  const e = parent.appendChild(document.createElement(tag));
  if (text !== undefined) e.textContent = text;
  if (cls) e.className = cls;
  return e;
}

function plotCard(parent: HTMLElement, title: string): HTMLElement {
  const card = el(parent, 'div', undefined, 'card');
  el(card, 'h3', title);
  return el(card, 'div', undefined, 'plot');
}

/** Fill `root` with one block per benchmark folder. Plots are drawn after the blocks are in the page, so they get its width. */
export function showErasureBench(root: HTMLElement, benches: ErasureBenchListing[]): void {
  root.replaceChildren();
  const draws: (() => void)[] = [];
  for (const b of benches) {
    const block = el(root, 'div', undefined, 'bench-folder');
    block.dataset['name'] = b.name;
    el(block, 'h3', b.name);
    el(block, 'p', `${b.units.ok} of ${b.units.planned} units done${b.units.failed ? `, ${b.units.failed} failed` : ''}; ` +
      `cases ${b.summary.cases.join(', ')}; ${b.size.n} prompts per group, ${b.size.attackSeeds} seeds per attack prompt, MCE ${b.size.mceIters} iterations`, 'notes');
    for (const { model, methods } of b.summary.models) {
      el(block, 'h4', model);
      const names = methods.map((m) => m.method);
      const plots = el(block, 'div', undefined, 'plots');
      const detection = plotCard(plots, 'Detection on held-out erase prompts (lower erases more)');
      const ssim = plotCard(plots, 'Preservation: SSIM to the original (higher keeps more)');
      const asr = plotCard(plots, 'Attack success rate per attack (lower is more robust)');
      draws.push(() => {
        categoryPlot(detection, names, [{ label: 'detection', y: methods.map((m) => m.detection.after) }], true);
        categoryPlot(ssim, names, [{ label: 'SSIM', y: methods.map((m) => m.ssim) }], false);
        categoryPlot(asr, b.summary.attacks, methods.map((m) => ({ label: m.method, y: b.summary.attacks.map((a) => m.asr[a] ?? null) })), true);
      });
      const table = el(block, 'table', undefined, 'bench-table');
      fillTable(table, ['method', 'detection', 'CLIP', 'SSIM', 'LPIPS-style', 'FID', 'neighbour acc.', ...b.summary.attacks.map((a) => `ASR ${a}`), 'erase s', 'changed'],
        methods.map((m) => [
          m.method, `${pct(m.detection.before) ?? '–'} → ${pct(m.detection.after) ?? '–'}`, fixed(m.clip, 1), fixed(m.ssim), fixed(m.lpips), fixed(m.fid, 1), pct(m.neighbours),
          ...b.summary.attacks.map((a) => pct(m.asr[a])), fixed(m.eraseSeconds, 0), pct(m.changed),
        ]));
    }
    if (b.grids.length) {
      el(block, 'h4', 'Grids: one row per method (original first), the first erase prompts as columns');
      const images = el(block, 'div', undefined, 'images');
      for (const g of b.grids) {
        const fig = el(images, 'figure');
        const img = el(fig, 'img');
        img.src = api.gridUrl(b.name, g);
        img.alt = g;
        el(fig, 'figcaption', g);
      }
    }
    if (b.summary.failed.length) el(block, 'p', `failed units: ${b.summary.failed.map((f) => f.unit).join(', ')}`, 'notes');
  }
  for (const d of draws) d();
}
