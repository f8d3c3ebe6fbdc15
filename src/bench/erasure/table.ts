// The benchmark's tables, in the paper's shape: per model family, one row per method with the
// detection rate on erase prompts, CLIP score, preservation (SSIM, LPIPS-style distance, FID/KID,
// neighbour accuracy), attack success per attack, and cost; then detection per case. Values are
// means over the cases a method ran; a blank cell means the unit did not run or failed (the
// failures are listed under the table). Also the side-by-side grid per (model, case).
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import { decodePng, writePng } from '../../io/png.js';
import { imageGrid, type RgbImage } from '../../generate/index.js';
import { BENCH_METHODS, type BenchSettings } from './plan.js';
import type { BenchRow } from './store.js';

type Num = number | null;
const mean = (xs: Num[]): Num => {
  const v = xs.filter((x): x is number => x !== null && Number.isFinite(x));
  return v.length ? v.reduce((a, b) => a + b, 0) / v.length : null;
};
const pct = (x: Num): string => (x === null ? '' : `${(100 * x).toFixed(0)}%`);
const fix = (x: Num, d = 2): string => (x === null ? '' : x.toFixed(d));
const get = (o: unknown, path: string): Num => {
  let v: unknown = o;
  for (const k of path.split('.')) v = v && typeof v === 'object' ? (v as Record<string, unknown>)[k] : undefined;
  return typeof v === 'number' ? v : null;
};

export function benchTables(rows: readonly BenchRow[], s: BenchSettings): string {
  const ok = rows.filter((r) => r.status === 'ok');
  const out: string[] = [];
  for (const model of s.models) {
    const methods = BENCH_METHODS.filter((m) => s.methods.includes(m) && ok.some((r) => r.model === model && r.method === m));
    if (!methods.length) continue;
    // A method's means run over the cases whose metrics unit finished, so a partial run compares like with like.
    const measured = (method: string): Set<string> => new Set(ok.filter((r) => r.model === model && r.method === method && r.kind === 'metrics').map((r) => r.case));
    const of = (method: string, kind: string, attack?: string): BenchRow[] => {
      const cases = measured(method);
      return ok.filter((r) => r.model === model && r.method === method && r.kind === kind && cases.has(r.case) && (attack === undefined || r.attack === attack));
    };
    const head = ['method', 'detection (erase prompts)', 'CLIP (erase)', 'SSIM (preserve)', 'LPIPS-style (preserve)', 'FID (preserve)', 'KID (preserve)', 'neighbour acc.', 'other acc.',
      ...s.attacks.map((a) => `ASR ${a}`), 'erase time (s)', 'peak RSS (MiB)', 'changed params'];
    out.push(`### ${model}`, '', `| ${head.join(' | ')} |`, `|${head.map(() => '---').join('|')}|`);
    for (const m of methods) {
      const mt = of(m, 'metrics').map((r) => r.data);
      const er = of(m, 'erase');
      const changed = mean(er.map((r) => {
        const c = r.data['changed'] as { params?: number; totalParams?: number } | undefined;
        // The original model and inference wrappers (SLD, FlowEdit) change no weight.
        return c && c.totalParams ? (c.params ?? 0) / c.totalParams : m === 'none' || r.data['kind'] === 'wrapper' ? 0 : null;
      }));
      const cells = [
        m,
        `${pct(mean(mt.map((d) => get(d, 'erase.before'))))} → ${pct(mean(mt.map((d) => get(d, 'erase.after'))))}`,
        fix(mean(mt.map((d) => get(d, 'erase.clip.after'))), 1),
        fix(mean(mt.map((d) => get(d, 'preserve.ssim'))), 3),
        fix(mean(mt.map((d) => get(d, 'preserve.featureDistance'))), 3),
        fix(mean(mt.map((d) => get(d, 'preserve.fid.erased'))), 1),
        fix(mean(mt.map((d) => get(d, 'preserve.kid.erased'))), 3),
        pct(mean(mt.map((d) => get(d, 'neighbours.after')))),
        pct(mean(mt.map((d) => get(d, 'others.after')))),
        ...s.attacks.map((a) => pct(mean(of(m, 'attack', a).map((r) => get(r.data, 'asr'))))),
        fix(mean(er.map((r) => r.seconds)), 0),
        fix(Math.max(0, ...[...er, ...of(m, 'metrics')].map((r) => get(r.data, 'peakRssMiB') ?? 0)), 0),
        changed === null ? '' : `${(100 * changed).toFixed(2)}%`,
      ];
      out.push(`| ${cells.join(' | ')} |`);
    }
    out.push('', `Detection rate of the target on held-out erase prompts, per case (original → erased):`, '');
    out.push(`| method | ${s.cases.join(' | ')} |`, `|---|${s.cases.map(() => '---').join('|')}|`);
    for (const m of methods) {
      out.push(`| ${m} | ${s.cases.map((c) => {
        const d = ok.find((r) => r.model === model && r.method === m && r.case === c && r.kind === 'metrics')?.data;
        return d ? `${pct(get(d, 'erase.before'))} → ${pct(get(d, 'erase.after'))}` : '';
      }).join(' | ')} |`);
    }
    out.push('');
  }
  const failed = rows.filter((r) => r.status === 'error');
  if (failed.length) {
    out.push('Units that failed:', '');
    for (const r of failed) out.push(`- ${r.unit}: ${r.error}`);
    out.push('');
  }
  out.push('Metrics: detection rate and accuracy by the emoji classifier (top-1); CLIP score by the emoji dual encoder; SSIM and the LPIPS-style feature distance (emoji classifier stages) to the original model\'s image from the same seed; FID/KID on emoji classifier features against real renders; ASR = share of the attack\'s generations on the erased model in which the classifier detects the target.');
  return out.join('\n') + '\n';
}

/** Per (model, case): methods as rows (original first), the first erase prompts as columns, from the metrics units' strips. */
export async function writeCaseGrids(dir: string, rows: readonly BenchRow[], s: BenchSettings): Promise<string[]> {
  const files: string[] = [];
  for (const model of s.models) {
    for (const c of s.cases) {
      const strips: RgbImage[] = [];
      for (const m of BENCH_METHODS) {
        const r = rows.find((x) => x.status === 'ok' && x.kind === 'metrics' && x.model === model && x.method === m && x.case === c);
        const file = (r?.data['grid'] as { file?: string } | undefined)?.file;
        if (!file || !existsSync(file)) continue;
        const img = decodePng(readFileSync(file));
        strips.push({ width: img.width, height: img.height, data: img.data });
      }
      if (!strips.length) continue;
      mkdirSync(join(dir, 'grids'), { recursive: true });
      const out = join(dir, 'grids', `${basename(model)}--${c}.png`);
      await writePng(out, { ...imageGrid(strips.map((x) => [x]), 2), channels: 3 });
      files.push(out);
    }
  }
  return files;
}
