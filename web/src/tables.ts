// Result tables of a run (evaluation, acceptance bars, sparsity groups) and of benchmark files.

type Cell = string | number | null | undefined;

export function fillTable(table: HTMLTableElement, head: string[], rows: Cell[][]): void {
  table.replaceChildren();
  const thead = table.createTHead().insertRow();
  for (const h of head) thead.appendChild(document.createElement('th')).textContent = h;
  const body = table.createTBody();
  for (const r of rows) {
    const tr = body.insertRow();
    for (const c of r) tr.insertCell().textContent = c === null || c === undefined ? '–' : String(c);
  }
}

export const pct = (v: unknown): string | null => (typeof v === 'number' && Number.isFinite(v) ? `${(v * 100).toFixed(1)}%` : null);
export const fixed = (v: unknown, d = 3): string | null => (typeof v === 'number' && Number.isFinite(v) ? v.toFixed(d) : null);
