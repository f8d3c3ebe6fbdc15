// The human-readable table of `mce eval quality`: metrics (generated next to real renders), the
// erasure targets' detection rates, and the bars as PASS/FAIL with what was measured.
import { formatGuidanceInterval } from '../sampling/guidance.js';
import { CONCEPT_PHRASES, PROMPTS_DESCRIPTION, type ConceptPhrase, type QualityReport, type TargetDetection } from './quality.js';

const pct = (x: number | null): string => (x === null ? 'n/a' : `${(100 * x).toFixed(1)}%`);

/** A target's detection among the generations whose prompt used `phrase`: "4/4", or "-" for none. */
function byPhrase(t: TargetDetection, phrase: ConceptPhrase): string {
  const g = t.byConceptPhrase.find((x) => x.phrase === phrase);
  return g ? `${Math.round(g.detection * g.images)}/${g.images}` : '-';
}

function table(rows: string[][]): string[] {
  const widths = rows[0]!.map((_, c) => Math.max(...rows.map((r) => r[c]!.length)));
  // Text columns left, numbers right.
  return rows.map((r) => r.map((cell, c) => (c === 0 ? cell.padEnd(widths[c]!) : cell.padStart(widths[c]!))).join('   ').trimEnd());
}

export function formatQuality(r: QualityReport): string {
  const m = r.metrics;
  const lines: string[] = [];
  lines.push(
    `mce eval quality: ${r.model.name} (${r.model.family}, ${r.model.steps} steps, cfg ${r.model.cfg}${formatGuidanceInterval(r.model.cfgInterval)}): ` +
      `${r.concepts} concepts x ${r.styles.length} styles x ${r.seeds} seeds = ${r.images.generated} generated images; ${r.images.real} real renders`,
  );
  lines.push(`prompts: ${r.prompts} (seed ${r.seed})`);
  lines.push(r.classifiedAmong.note);
  lines.push('');
  const clip = (x: number | null): string => (x === null ? 'n/a' : x.toFixed(2));
  lines.push(
    ...table([
      ['metric', 'generated', 'real renders'],
      [m.conceptTop1.name, pct(m.conceptTop1.generated), pct(m.conceptTop1.real)],
      [m.conceptTop5.name, pct(m.conceptTop5.generated), pct(m.conceptTop5.real)],
      [m.style.name, pct(m.style.generated), pct(m.style.real)],
      [m.clipScore.name, clip(m.clipScore.generated), clip(m.clipScore.real)],
      [`${m.fid.name}, generated vs real`, m.fid.value.toFixed(3), ''],
      [`${m.kid.name}, generated vs real`, `${m.kid.mean.toFixed(4)} ± ${m.kid.std.toFixed(4)}`, ''],
    ]),
  );
  lines.push('');
  lines.push(
    ...table([
      ["generated, by the prompt's concept phrase", 'images', 'top-1', 'top-5', 'style'],
      ...m.byConceptPhrase.map((g) => [g.phrase, String(g.images), pct(g.top1), pct(g.top5), pct(g.style)]),
    ]),
  );
  lines.push('');
  lines.push(
    ...table([
      ["generated, by the prompt's concept and style phrases", 'images', 'top-1', 'top-5', 'style'],
      ...m.byPromptPhrases.map((g) => [g.phrases, String(g.images), pct(g.top1), pct(g.top5), pct(g.style)]),
    ]),
  );
  if (r.prompts === PROMPTS_DESCRIPTION.heldout) lines.push('(held-out prompts whose concept and style phrases were both seen differ from training only in their template)');
  lines.push('');
  const predicted = (p: Record<string, number>): string => Object.entries(p).map(([k, n]) => `${k} ${n}`).join(', ');
  lines.push(
    ...table([
      ['by the style asked for', 'images', 'top-1', 'style', 'classified as', 'real: style', 'real: classified as'],
      ...m.byStyle.map((g) => [g.style, String(g.generated.images), pct(g.generated.top1), pct(g.generated.style), predicted(g.generated.predicted), pct(g.real.style), predicted(g.real.predicted)]),
    ]),
  );
  lines.push('');
  if (m.clipScore.generated === null) lines.push(`CLIP score ${m.clipScore.note}`);
  lines.push(`FID: ${m.fid.note}. KID: ${m.kid.subsets} subsets of ${m.kid.subsetSize} images.`);
  lines.push('');
  lines.push(
    ...table([
      ['erasure target', 'generated', 'detected', 'real renders', 'seen phrase', 'held-out synonym'],
      ...r.targets.map((t) => [t.name, String(t.images), pct(t.detection), pct(t.real), ...CONCEPT_PHRASES.map(({ phrase }) => byPhrase(t, phrase))]),
    ]),
  );
  lines.push('(detected: top-1 concept among the model\'s concepts is one of the target\'s; styles: predicted style; the last two columns split the generations by the prompt\'s concept phrase: detected/images)');
  lines.push('');
  for (const b of r.bars) lines.push(`${b.pass === null ? 'n/a ' : b.pass ? 'PASS' : 'FAIL'}  ${b.name}: ${b.detail}`);
  lines.push('');
  lines.push(`time: ${r.seconds.total} s (generation ${r.seconds.generate} s, ${r.seconds.perImage} s/image; scoring ${r.seconds.score} s)`);
  return lines.join('\n');
}
