// Summarise `mce detect --json` lines (stdin) of images named <concept>-<style>-<k>.png (concept
// words joined by "_", as scripts/sd-emoji-samples.ts --tiles writes them): how often the prompted
// concept is the classifier's top-1 and in its top-5, and how often the style is right, per concept
// and overall. Usage: mce detect --json DIR/*.png | node scripts/detect-summary.mjs
import { basename } from 'node:path';

const lines = (await new Promise((done) => {
  let s = '';
  process.stdin.on('data', (d) => (s += d)).on('end', () => done(s));
})).split('\n').filter(Boolean);
const per = {};
const all = { n: 0, top1: 0, top5: 0, style: 0 };
for (const line of lines) {
  const r = JSON.parse(line);
  const [c, style] = basename(r.file, '.png').split('-');
  const concept = c.replace(/_/g, ' ');
  const names = r.concepts.map((x) => x.name);
  const hit = { n: 1, top1: +(names[0] === concept), top5: +names.slice(0, 5).includes(concept), style: +(r.style.name === style) };
  per[concept] ??= { n: 0, top1: 0, top5: 0, style: 0 };
  for (const k of Object.keys(all)) {
    per[concept][k] += hit[k];
    all[k] += hit[k];
  }
}
const rate = (h) => ({ images: h.n, top1: +(h.top1 / h.n).toFixed(3), top5: +(h.top5 / h.n).toFixed(3), style: +(h.style / h.n).toFixed(3) });
console.log(JSON.stringify({ all: rate(all), concepts: Object.fromEntries(Object.entries(per).map(([k, v]) => [k, rate(v)])) }));
