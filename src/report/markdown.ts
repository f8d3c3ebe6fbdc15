// The small part of Markdown that result tables are written in (a benchmark's table.md): headings,
// pipe tables and plain paragraphs, rendered to HTML with every piece of text escaped. Anything
// else shows as text; no raw HTML passes through.
import { esc } from './html.js';

const cells = (line: string): string[] => line.trim().replace(/^\|/, '').replace(/\|$/, '').split('|').map((c) => c.trim());
const isRule = (line: string): boolean => /^\s*\|?\s*:?-{3,}:?\s*(\|\s*:?-{3,}:?\s*)*\|?\s*$/.test(line);

export function markdownToHtml(text: string): string {
  const lines = text.split('\n');
  const out: string[] = [];
  let para: string[] = [];
  const flush = (): void => {
    if (para.length) out.push(`<p>${esc(para.join(' '))}</p>`);
    para = [];
  };
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!;
    const h = /^(#{1,6})\s+(.*)$/.exec(line);
    if (h) {
      flush();
      const level = Math.min(6, h[1]!.length + 1); // a page's own title is the h1
      out.push(`<h${level}>${esc(h[2]!)}</h${level}>`);
    } else if (line.trim().startsWith('|') && i + 1 < lines.length && isRule(lines[i + 1]!)) {
      flush();
      const head = cells(line);
      const body: string[][] = [];
      for (i += 2; i < lines.length && lines[i]!.trim().startsWith('|'); i++) body.push(cells(lines[i]!));
      i--;
      out.push(`<table><tr>${head.map((c) => `<th>${esc(c)}</th>`).join('')}</tr>\n${body.map((r) => `<tr>${r.map((c) => `<td>${esc(c)}</td>`).join('')}</tr>`).join('\n')}</table>`);
    } else if (!line.trim()) {
      flush();
    } else {
      para.push(line.trim());
    }
  }
  flush();
  return out.join('\n');
}
