// mce bench: the engine benchmark (src/bench/), our engine against PyTorch on the same workloads.
import { join } from 'node:path';
import { UsageError, type Command } from './command.js';
import { runBench, writeResults } from '../bench/harness.js';
import { formatTable } from '../bench/report.js';
import { PACKAGE_ROOT } from '../bench/torch.js';
import { workloads } from '../bench/workloads/index.js';
import { BACKENDS, type BackendName } from '../engine/backend.js';

export const DEFAULT_RESULTS = join(PACKAGE_ROOT, 'bench', 'results.json');

export const benchCommand: Command = {
  name: 'bench',
  summary: 'benchmark the engine against PyTorch (sgemm, transformer block, checkpointed Euler steps)',
  flags: {
    smoke: { type: 'boolean', help: 'quick run (under a minute): few repetitions, same workloads' },
    reps: { type: 'number', help: 'timed repetitions per workload and engine (default: per workload, with a time budget)' },
    only: { type: 'string', help: `comma-separated workloads to run (${workloads.map((w) => w.name).join(', ')})` },
    out: { type: 'string', help: `results JSON path (default: ${DEFAULT_RESULTS})` },
    'no-torch': { type: 'boolean', help: 'skip PyTorch (torch_ms and ratio are null)' },
    backend: { type: 'string', help: `our backend: ${BACKENDS.join('|')} (default: MCE_BACKEND, else the best available)` },
  },
  async run(args, flags) {
    if (args.length) throw new UsageError(`mce bench: unexpected argument '${args[0]}'`);
    const reps = flags['reps'] as number | undefined;
    if (reps !== undefined && (!Number.isInteger(reps) || reps < 1)) throw new UsageError('mce bench: --reps must be a positive integer');
    const backend = flags['backend'] as string | undefined;
    if (backend !== undefined && !(BACKENDS as readonly string[]).includes(backend)) {
      throw new UsageError(`mce bench: --backend must be one of ${BACKENDS.join(', ')}`);
    }
    const onlyFlag = flags['only'] as string | undefined;
    const only = onlyFlag ? onlyFlag.split(',').map((s) => s.trim()).filter(Boolean) : undefined;
    const unknown = (only ?? []).filter((n) => !workloads.some((w) => w.name === n));
    if (unknown.length) throw new UsageError(`mce bench: unknown workload '${unknown[0]}'; known: ${workloads.map((w) => w.name).join(', ')}`);
    const out = (flags['out'] as string | undefined) ?? DEFAULT_RESULTS;
    const run = await runBench({
      smoke: !!flags['smoke'],
      ...(reps !== undefined ? { reps } : {}),
      ...(only ? { only } : {}),
      torch: !flags['no-torch'],
      ...(backend ? { backend: backend as BackendName } : {}),
    });
    writeResults(out, run.records);
    process.stdout.write(formatTable(run) + '\n');
    process.stderr.write(`[bench] wrote ${out}\n`);
    return 0;
  },
};
