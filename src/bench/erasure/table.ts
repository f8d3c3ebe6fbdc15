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
import { benchSummary } from './summary.js';
import { benchTime } from './time.js';
import { formatDuration } from '../../train/progress.js';

type Num = number | null;
const pct = (x: Num): string => (x === null ? '' : `${(100 * x).toFixed(0)}%`);
const fix = (x: Num, d = 2): string => (x === null ? '' : x.toFixed(d));

export function benchTables(rows: readonly BenchRow[], s: BenchSettings): string {
  const summary = benchSummary(rows, { ...s, methods: BENCH_METHODS.filter((m) => s.methods.includes(m)) });
  const out: string[] = [];
  for (const { model, methods } of summary.models) {
    const head = ['method', 'detection (erase prompts)', 'CLIP (erase)', 'SSIM (preserve)', 'LPIPS-style (preserve)', 'FID (preserve)', 'KID (preserve)', 'neighbour acc.', 'other acc.',
      ...s.attacks.map((a) => `ASR ${a}`), 'erase time (s)', 'peak RSS (MiB)', 'changed params'];
    out.push(`### ${model}`, '', `| ${head.join(' | ')} |`, `|${head.map(() => '---').join('|')}|`);
    for (const m of methods) {
      const cells = [
        m.method,
        `${pct(m.detection.before)} → ${pct(m.detection.after)}`,
        fix(m.clip, 1),
        fix(m.ssim, 3),
        fix(m.lpips, 3),
        fix(m.fid, 1),
        fix(m.kid, 3),
        pct(m.neighbours),
        pct(m.others),
        ...s.attacks.map((a) => pct(m.asr[a] ?? null)),
        fix(m.eraseSeconds, 0),
        fix(m.peakRssMiB, 0),
        m.changed === null ? '' : `${(100 * m.changed).toFixed(2)}%`,
      ];
      out.push(`| ${cells.join(' | ')} |`);
    }
    out.push('', `Detection rate of the target on held-out erase prompts, per case (original → erased):`, '');
    out.push(`| method | ${s.cases.join(' | ')} |`, `|---|${s.cases.map(() => '---').join('|')}|`);
    for (const m of methods) {
      out.push(`| ${m.method} | ${s.cases.map((c) => {
        const d = m.cases[c];
        return d ? `${pct(d.before)} → ${pct(d.after)}` : '';
      }).join(' | ')} |`);
    }
    // Issue 6's acceptance reads these two attacks against preservation, case by case.
    const pair = ['ring-a-bell', 'p4d'].filter((a) => s.attacks.includes(a as (typeof s.attacks)[number]));
    if (pair.length) {
      out.push('', `${pair.map((a) => `ASR ${a}`).join(' / ')} / preserve SSIM, per case:`, '');
      out.push(`| method | ${s.cases.join(' | ')} |`, `|---|${s.cases.map(() => '---').join('|')}|`);
      for (const m of methods) {
        out.push(`| ${m.method} | ${s.cases.map((c) => {
          const d = m.cases[c];
          return d ? [...pair.map((a) => pct(d.asr[a] ?? null)), fix(d.ssim, 3)].join(' / ') : '';
        }).join(' | ')} |`);
      }
    }
    out.push('');
  }
  const t = benchTime(rows, s);
  const hm = formatDuration;
  out.push(
    `Time: ${t.units} units${t.complete ? '' : ' (not all of the plan yet)'}, ${hm(t.seconds)} of unit time (${Object.entries(t.byModel).map(([m, x]) => `${m} ${hm(x)}`).join(', ')}; ${Object.entries(t.byKind).map(([k, x]) => `${k} ${hm(x)}`).join(', ')}). ` +
      `Split by --shard over n one-thread processes on free cores or machines, the slowest shard's units take: ${t.shards.map((x) => `n = ${x.n}: ${hm(x.slowest)}`).join(', ')}.`,
    '',
  );
  if (summary.failed.length) {
    out.push('Units that failed:', '');
    for (const r of summary.failed) out.push(`- ${r.unit}: ${r.error}`);
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
