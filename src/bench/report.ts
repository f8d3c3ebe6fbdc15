// The benchmark table (stdout): one row per workload, then the notes, targets and how it was measured.
import { availableParallelism, loadavg } from 'node:os';
import { NOMINAL_PEAK_GFLOPS, PRACTICAL_PEAK_GFLOPS, CHECK_RTOL, type BenchRun } from './harness.js';
import { TORCH_THREADS, TORCH_INTRA_OP_THREADS } from './torch.js';

function num(x: number | null | undefined, digits = 1): string {
  return x === null || x === undefined || !Number.isFinite(x) ? '-' : x.toFixed(digits);
}

export function formatTable(run: BenchRun): string {
  const head = ['workload', 'backend', 'ours ms', 'torch ms', 'ratio', 'GFLOP/s', 'torch GFLOP/s', '% peak nom/prac', 'peak MiB ours', 'peak MiB torch', 'check'];
  const rows = run.records.map((r) => [
    r.name,
    r.backend,
    num(r.ours_ms, 2),
    num(r.torch_ms, 2),
    r.ratio === null ? '-' : `${r.ratio.toFixed(2)}x`,
    num(r.gflops),
    num(r.torch_gflops),
    `${r.pct_peak.toFixed(0)}% / ${r.pct_practical_peak.toFixed(0)}%`,
    num(r.peak_mb),
    num(r.torch_peak_mb),
    r.check.ok === null ? '-' : r.check.ok ? 'ok' : 'MISMATCH',
  ]);
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (cells: string[]): string => '| ' + cells.map((c, i) => (i < 2 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join(' | ') + ' |';
  const out = [line(head), '|' + widths.map((w, i) => (i < 2 ? ':' : '') + '-'.repeat(w + 1) + (i < 2 ? '' : ':')).join('|') + '|', ...rows.map(line)];
  out.push('');
  if (!run.torch.ok) out.push(`PyTorch absent (${run.torch.reason}): torch columns and ratio are null.`);
  else
    out.push(
      `PyTorch ${run.torch.version} (${run.torch.python}), OPENBLAS_NUM_THREADS=${TORCH_THREADS.OPENBLAS_NUM_THREADS}, ` +
        `torch.set_num_threads(${TORCH_INTRA_OP_THREADS}) (its best 2-thread setting here; both pools at 2 oversubscribe).`,
    );
  out.push(
    `ours: backend ${run.backend}${run.backend === 'native' ? ' (OpenBLAS kernels on 2 threads, other kernels wasm)' : run.backend === 'wasm' ? ' (wasm SIMD, 1 thread: tfjs has no wasm threads in Node)' : ' (pure JS, 1 thread)'}.` +
      ` Medians of timed repetitions after warm-up${run.smoke ? ' (--smoke: few repetitions, noisy)' : ''}.`,
  );
  out.push(
    `% peak: of ${NOMINAL_PEAK_GFLOPS} GFLOP/s nominal (2 cores x 2.596 GHz x 32 flop/cycle) / of ~${PRACTICAL_PEAK_GFLOPS} GFLOP/s measured practical (boost ~3.6 GHz).` +
      ' GFLOP/s counts matmul FLOPs only.',
  );
  out.push(
    'peak MiB ours: peak bytes of live tensors during one repetition above those alive before it (tf.profile);' +
      ' torch: peak RSS growth during one repetition (VmHWM, MALLOC_MMAP_THRESHOLD_=65536). Inputs and weights excluded in both.',
  );
  out.push(
    'fastest repetitions (ours / torch, ms): ' +
      run.records.map((r) => `${r.name} ${num(r.ours_min_ms, 2)} / ${num(r.torch_min_ms, 2)}`).join(', ') +
      ` (machine load average at the end: ${loadavg()[0]!.toFixed(2)} on ${availableParallelism()} CPUs)`,
  );
  out.push(`check: loss and gradient norms of both engines on the same inputs agree to ${CHECK_RTOL} relative.`);
  for (const r of run.records) {
    for (const n of r.notes) out.push(`${r.name}: ${n}`);
    if (r.target) out.push(`${r.name}: target ${r.target.text}: ${r.target.met === null ? 'not decided in this run' : r.target.met ? 'MET' : 'NOT MET'}`);
  }
  return out.join('\n');
}
