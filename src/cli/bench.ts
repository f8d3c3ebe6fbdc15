// `mce bench`: the side-by-side erasure benchmark (methods x cases x metrics x attacks on both model
// families; src/bench/erasure/), `mce bench merge` to join sharded results, and `mce bench engine`:
// the engine benchmark (src/bench/), our engine against PyTorch on the same workloads (what
// `npm run bench` runs).
//
//   mce bench --quick --out runs/bench-quick                 a CI-sized slice, under 5 minutes
//   mce bench --out runs/bench --shard 2/4                   one of four machines
//   mce bench --out runs/bench --jobs 2                      two processes on this machine
//   mce bench merge runs/bench-1 runs/bench-2 --out runs/bench
import { availableParallelism } from 'node:os';
import { join } from 'node:path';
import { numericFlags, UsageError, UserError, type Command, type FlagValues } from './command.js';
import { parseShard } from './shard-flag.js';
import type { BenchRunResult } from '../bench/erasure/run.js';
import { runBench, writeResults } from '../bench/harness.js';
import { formatTable } from '../bench/report.js';
import { PACKAGE_ROOT } from '../bench/torch.js';
import { workloads } from '../bench/workloads/index.js';
import { BACKENDS, type BackendName } from '../engine/backend.js';

export const DEFAULT_RESULTS = join(PACKAGE_ROOT, 'bench', 'results.json');

export const benchCommand: Command = {
  name: 'bench',
  summary: 'the erasure benchmark (methods x concepts x metrics x attacks); `bench merge DIR...` joins shards; `bench engine` benchmarks the engine against PyTorch',
  args: '[merge DIR... | engine]',
  flags: {
    quick: { type: 'boolean', help: 'erasure: a small slice for CI smoke (flux-emoji; none, mce, uce, sld; kitchen knife; i2p and ring-a-bell)' },
    models: { type: 'list', help: 'erasure: comma-separated models (default flux-emoji,sd-emoji)' },
    methods: { type: 'list', help: 'erasure: comma-separated methods (default: none,mce,uce,sld,esd-x,esd-u,ca,eap,flowedit; mce-decay and mce-text run only when named)' },
    cases: { type: 'list', help: 'erasure: comma-separated cases (default: kitchen-knife,vampire,twemoji-style,knife-dagger-vampire)' },
    attacks: { type: 'list', help: 'erasure: comma-separated attacks, or none (default: ring-a-bell,p4d,unlearndiff,mma,inversion,edit,i2p)' },
    shard: { type: 'string', help: 'erasure: run shard I of N (1-based, e.g. 2/4); shards of one sweep take the same flags and may share --out' },
    jobs: { type: 'number', help: `erasure: worker processes on this machine, one thread each (default: the CPUs available, ${availableParallelism()} here); results do not depend on it` },
    n: { type: 'number', help: 'erasure: held-out prompts per evaluation group (default 12; --quick 4)' },
    'mce-iters': { type: 'number', help: 'erasure: MCE optimizer steps per concept of a cell (default 150, as mce erase; --quick 10)' },
    budget: { type: 'string', help: 'erasure: attack budget quick|full (default quick)' },
    'attack-seeds': { type: 'number', help: 'erasure: images per adversarial prompt when measuring attack success (default 8; --quick 2)' },
    seed: { type: 'number', help: 'erasure: seed of every random choice', default: 0 },
    out: { type: 'string', help: `erasure: results folder (default runs/bench, --quick runs/bench-quick); engine: results JSON (default ${DEFAULT_RESULTS})` },
    smoke: { type: 'boolean', help: 'engine: quick run (under a minute): few repetitions, same workloads' },
    reps: { type: 'number', help: 'engine: timed repetitions per workload and engine (default: per workload, with a time budget)' },
    only: { type: 'list', help: `engine: comma-separated workloads to run (${workloads.map((w) => w.name).join(', ')})` },
    'no-torch': { type: 'boolean', help: 'engine: skip PyTorch (torch_ms and ratio are null)' },
    backend: { type: 'string', help: `engine: our backend: ${BACKENDS.join('|')} (default: MCE_BACKEND, else the best available)` },
  },
  async run(args, flags) {
    if (args[0] === 'engine') return engine(args.slice(1), flags);
    if (args[0] === 'merge') return merge(args.slice(1), flags);
    if (args.length) throw new UsageError(`mce bench: unexpected argument '${args[0]}' (subcommands: merge, engine)`);
    return erasure(flags);
  },
};

const list = (v: FlagValues[string]): string[] | undefined => v as string[] | undefined;

async function erasure(flags: FlagValues): Promise<number> {
  for (const f of ['smoke', 'reps', 'only', 'no-torch', 'backend']) if (flags[f] !== undefined) throw new UsageError(`mce bench: --${f} belongs to 'mce bench engine'`);
  const plan = await import('../bench/erasure/plan.js');
  const { ATTACK_NAMES } = await import('../attacks/types.js');
  const s = flags['quick'] ? plan.quickSettings() : plan.fullSettings();
  const pick = <T extends string>(name: string, known: readonly T[]): T[] | undefined => {
    const v = list(flags[name]);
    if (!v) return undefined;
    if (name === 'attacks' && v.length === 1 && v[0] === 'none') return [];
    const bad = v.find((x) => !(known as readonly string[]).includes(x));
    if (bad !== undefined) throw new UsageError(`mce bench: unknown ${name.slice(0, -1)} '${bad}' (known: ${known.join(', ')})`);
    return v as T[];
  };
  s.methods = pick('methods', plan.BENCH_METHODS) ?? s.methods;
  s.cases = pick('cases', plan.BENCH_CASES.map((c) => c.id)) ?? s.cases;
  s.attacks = pick('attacks', ATTACK_NAMES) ?? s.attacks;
  const models = list(flags['models']);
  if (models) {
    // A model that does not load would fail every unit of its cells: say so once, before the plan.
    const { readManifest } = await import('../generate/bundle.js');
    for (const m of models) {
      try {
        readManifest(m);
      } catch (e) {
        throw new UserError(`bench --models ${m}: ${(e as Error).message}`);
      }
    }
    s.models = models;
    s.steps = Object.fromEntries(models.map((m) => [m, s.steps[m] ?? null]));
  }
  const { int } = numericFlags('mce bench', flags);
  s.seed = int('seed', 0, 2 ** 31 - 1) ?? s.seed;
  s.n = int('n', 1, 1000) ?? s.n;
  s.mceIters = int('mce-iters', 1, 100000) ?? s.mceIters;
  s.attackSeeds = int('attack-seeds', 1, 1000) ?? s.attackSeeds;
  const jobs = int('jobs', 1, 256) ?? availableParallelism();
  const budget = flags['budget'];
  if (budget !== undefined) {
    if (budget !== 'quick' && budget !== 'full') throw new UsageError(`mce bench: --budget must be quick or full, got '${String(budget)}'`);
    s.budget = budget;
  }
  const shard = parseShard('mce bench', flags['shard']);
  const dir = (flags['out'] as string | undefined) ?? (flags['quick'] ? 'runs/bench-quick' : 'runs/bench');
  // With --jobs the workers load the backend; this process only waits for them and writes the tables.
  const runHere = async (): Promise<BenchRunResult> => {
    await (await import('../engine/backend.js')).useBackend();
    return (await import('../bench/erasure/run.js')).runErasureBench(s, { dir, shard });
  };
  let r;
  try {
    r = jobs > 1 ? await (await import('../bench/erasure/jobs.js')).runBenchJobs(s, { dir, shard, jobs }) : await runHere();
  } catch (e) {
    throw new UserError((e as Error).message.split('\n')[0]!);
  }
  process.stderr.write(`mce bench: ${r.ran} units run (${r.failed} failed), ${r.resumed} resumed from ${dir}, in ${r.seconds.toFixed(0)} s\n`);
  if (!shard || shard.n === 1) await writeSummary(dir);
  else process.stderr.write(`mce bench: shard ${shard.i + 1}/${shard.n} done; join the shards with: mce bench merge DIR...\n`);
  return r.failed ? 1 : 0;
}

/** Write table.md and the per-case grids of a results folder, and print the table. */
async function writeSummary(dir: string): Promise<void> {
  const { readRows, readFolderSettings } = await import('../bench/erasure/store.js');
  const { benchTables, writeCaseGrids } = await import('../bench/erasure/table.js');
  const { writeFileAtomic } = await import('../io/atomic.js');
  const { settings } = readFolderSettings(dir);
  const rows = readRows(dir);
  const table = benchTables(rows, settings);
  await writeFileAtomic(join(dir, 'table.md'), table);
  const grids = await writeCaseGrids(dir, rows, settings);
  const report = await (await import('../report/run-report.js')).writeReport(dir);
  process.stdout.write(table);
  process.stderr.write(`mce bench: wrote ${join(dir, 'table.md')}${grids.length ? `, ${grids.length} grids in ${join(dir, 'grids')}` : ''} and ${report.path}\n`);
}

async function merge(dirs: string[], flags: FlagValues): Promise<number> {
  if (!dirs.length) throw new UsageError('mce bench merge: give the shard results folders (mce bench merge DIR... --out DIR)');
  const out = flags['out'] as string | undefined;
  if (!out) throw new UsageError('mce bench merge: --out DIR is required');
  const { mergeResults } = await import('../bench/erasure/merge.js');
  let r;
  try {
    r = await mergeResults(dirs, out);
  } catch (e) {
    throw new UserError((e as Error).message.split('\n')[0]!);
  }
  process.stderr.write(`mce bench merge: ${r.rows} rows from ${dirs.length} folders -> ${out}${r.missing.length ? `; ${r.missing.length} units missing (first: ${r.missing[0]})` : ', complete'}\n`);
  await writeSummary(out);
  return r.missing.length ? 1 : 0;
}

async function engine(args: string[], flags: FlagValues): Promise<number> {
  if (args.length) throw new UsageError(`mce bench engine: unexpected argument '${args[0]}'`);
  const reps = flags['reps'] as number | undefined;
  if (reps !== undefined && (!Number.isInteger(reps) || reps < 1)) throw new UsageError('mce bench: --reps must be a positive integer');
  const backend = flags['backend'] as string | undefined;
  if (backend !== undefined && !(BACKENDS as readonly string[]).includes(backend)) {
    throw new UsageError(`mce bench: --backend must be one of ${BACKENDS.join(', ')}`);
  }
  const only = list(flags['only']);
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
}
