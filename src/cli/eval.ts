// `mce eval <what>`: measurements of a model with the emoji-world evaluators. One table of
// subcommands, sharing the command's flags.
//
//   mce eval quality --model M [--json] [--seeds 4] [--concepts all|N|name,...] [--seed S] [--prompts heldout|train] [--steps N] [--cfg X] [--out DIR]
//   mce eval quality ... --shard 2/4 --out runs/quality-2        one of four processes
//   mce eval quality merge runs/quality-* --out runs/quality    the report of the whole
//   mce eval quality ... --record       also into the model folder's manifest.json (quality.eval_quality)
//   mce eval erasure --masks M --concept C [--concept C2] [--model M] [--n 48] [--seed S] [--out DIR]
//       the held-out evaluation `mce erase` ends with, on any mask file (another run's, a merge of
//       several): so masks are judged on today's evaluation groups without training them again
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import type { QualityResult } from '../eval/quality.js';
import { numericFlags, typedCommand, UsageError, UserError, type Command, type FlagValues } from './command.js';
import { parseShard } from './shard-flag.js';
import { BINARIZE_HELP, binarizeFlag } from './binarize-flag.js';
import { CFG_INTERVAL_HELP, cfgIntervalFlag } from './cfg-interval-flag.js';

/** An eval subcommand: runs with the command's flags. Add new ones to EVALS. */
export interface EvalSubcommand {
  summary: string;
  run(flags: FlagValues): Promise<number>;
  /** `mce eval <what> merge DIR...`: join the folders of a sharded run. */
  merge?(dirs: string[], flags: FlagValues): Promise<number>;
}

export const EVALS: Record<string, EvalSubcommand> = {
  quality: {
    summary: 'held-out prompts x styles x seeds scored next to real renders: accuracy, CLIP score, FID/KID, target detection, pass/fail bars',
    run: runQuality,
    merge: mergeQuality,
  },
  erasure: {
    summary: "a mask file judged on held-out prompts as mce erase judges its own: target detection, neighbour and other concepts' accuracy and SSIM, CLIP score, issue 5's bars",
    run: runErasure,
  },
};

export const evalCommand: Command = {
  name: 'eval',
  summary: `evaluate a model with the emoji-world evaluators (${Object.keys(EVALS).map((k) => `${k}: ${EVALS[k]!.summary}`).join('; ')})`,
  args: '<what> [merge DIR...]',
  flags: {
    model: { type: 'string', help: 'flux-emoji, sd-emoji or a model folder', default: 'flux-emoji' },
    json: { type: 'boolean', help: 'print one JSON object instead of the table' },
    seeds: { type: 'number', help: 'noises per (concept, style) prompt', default: 4 },
    concepts: { type: 'string', help: "'all' the model's concepts, a count N (erasure targets first, then a seeded sample), or names a,b,c", default: 'all' },
    seed: { type: 'number', help: 'seed of the prompt choice, noises and concept sample', default: 0 },
    steps: { type: 'number', help: "sampling steps (default: the model's)" },
    cfg: { type: 'number', help: "classifier-free guidance scale (default: the model's)" },
    'cfg-interval': { type: 'string', help: CFG_INTERVAL_HELP },
    prompts: { type: 'string', help: "caption split to prompt with: 'heldout' (what the bars judge) or 'train' (captions seen in training)", default: 'heldout' },
    out: { type: 'string', help: 'folder for quality.json, images.jsonl (every image: prompt, seed, top concepts, style) and samples.png' },
    classifier: { type: 'string', help: 'classifier weights (default: the shipped models/emoji-classifier)' },
    clip: { type: 'string', help: 'emoji CLIP weights (default: the shipped models/emoji-clip; skipped when missing)' },
    record: { type: 'boolean', help: "also write the summary into the model folder's manifest.json (quality.eval_quality, or eval_quality_train_prompts for --prompts train), with this command line" },
    shard: { type: 'string', help: "run shard I of N of the evaluation's items (1-based, e.g. 2/4) into --out; join with mce eval quality merge DIR... --out DIR" },
    masks: { type: 'string', help: 'erasure: masks.safetensors (from mce erase or mce merge-masks), or an erase run folder' },
    concept: { type: 'list', help: 'erasure: the erased concept(s), as given to mce erase' },
    n: { type: 'number', help: 'erasure: held-out prompts per group (erase, neighbours, others), as mce erase --eval', default: 48 },
    binarize: { type: 'string', help: `erasure: ${BINARIZE_HELP}` },
  },
  async run(args, flags) {
    const what = args[0];
    if (!what) throw new UsageError(`mce eval: give one of ${Object.keys(EVALS).join(', ')}`);
    const sub = EVALS[what];
    if (!sub) throw new UsageError(`mce eval: unknown evaluation '${what}' (known: ${Object.keys(EVALS).join(', ')})`);
    if (args[1] === 'merge' && sub.merge) return sub.merge(args.slice(2), flags);
    if (args.length > 1) throw new UsageError(`mce eval: give one of ${Object.keys(EVALS).join(', ')}, got the extra argument '${args[1]}'${sub.merge ? ` (to join shards: mce eval ${what} merge DIR...)` : ''}`);
    return sub.run(flags);
  },
};

/** --concepts: 'all', a positive count, or comma-separated names. */
export function parseConcepts(raw: string): 'all' | number | string[] {
  const s = raw.trim();
  if (s === 'all') return 'all';
  if (/^[0-9]+$/.test(s)) {
    const n = Number(s);
    if (n < 1) throw new UsageError(`mce eval: --concepts count must be at least 1, got ${s}`);
    return n;
  }
  const names = s.split(',').map((x) => x.trim()).filter(Boolean);
  if (!names.length) throw new UsageError("mce eval: --concepts must be 'all', a count, or names a,b,c");
  return names;
}

async function runQuality(flags: FlagValues): Promise<number> {
  const { int, num } = numericFlags('mce eval quality', flags);
  const seeds = int('seeds', 1, 64)!;
  const seed = flags['seed'] as number;
  if (!Number.isInteger(seed) || seed < 0) throw new UsageError(`mce eval quality: --seed must be a non-negative integer, got ${seed}`);
  const concepts = parseConcepts(String(flags['concepts']));
  const out = typeof flags['out'] === 'string' ? flags['out'] : undefined;
  const prompts = String(flags['prompts']);
  const steps = int('steps', 1, 200);
  const cfg = num('cfg', 0, 50);
  const cfgInterval = cfgIntervalFlag('mce eval quality', flags);
  if (prompts !== 'heldout' && prompts !== 'train') throw new UsageError(`mce eval quality: --prompts must be one of heldout, train, got '${prompts}'`);
  const shard = parseShard('mce eval quality', flags['shard']);
  if (shard && !out) throw new UsageError('mce eval quality: --shard needs --out DIR (the shard writes its items there)');
  if (shard && flags['record'] === true) throw new UsageError('mce eval quality: --record goes with the whole run or its merge, not one shard');
  const { useBackend } = await import('../engine/backend.js');
  const { loadTextToImage, ModelLoadError } = await import('../generate/index.js');
  const { evaluateQuality, qualitySetup } = await import('../eval/quality.js');
  await useBackend();
  let model;
  try {
    model = await loadTextToImage(String(flags['model']));
  } catch (e) {
    if (e instanceof ModelLoadError) throw new UserError(e.message);
    throw e;
  }
  const opts = {
    seeds,
    seed,
    concepts,
    prompts: prompts as 'heldout' | 'train',
    steps,
    cfg,
    cfgInterval,
    classifier: typeof flags['classifier'] === 'string' ? flags['classifier'] : undefined,
    clip: typeof flags['clip'] === 'string' ? flags['clip'] : undefined,
  };
  let result;
  try {
    if (shard) {
      const { runQualityShard } = await import('../eval/quality-shard.js');
      const r = await runQualityShard(model, qualitySetup(model, opts), out!, shard);
      process.stderr.write(`mce eval quality: shard ${shard.i + 1}/${shard.n}: ${r.scored} of its ${r.items} items scored (${r.resumed} already there) -> ${out}; join with: mce eval quality merge DIR... --out DIR\n`);
      return 0;
    }
    result = await evaluateQuality(model, opts);
  } catch (e) {
    throw new UserError((e as Error).message.split('\n')[0]!);
  } finally {
    model.dispose();
  }
  await writeQuality(result, out, flags);
  return 0;
}

/** Write quality.json, images.jsonl (every image's scores) and samples.png into `out` (when given) and print the report. */
async function writeQuality(result: QualityResult, out: string | undefined, flags: FlagValues): Promise<void> {
  const { formatQuality } = await import('../eval/quality-table.js');
  if (out) {
    const { writeFileAtomic } = await import('../io/atomic.js');
    const { writePng } = await import('../io/png.js');
    mkdirSync(out, { recursive: true });
    await writeFileAtomic(join(out, 'quality.json'), JSON.stringify(result.report, null, 2) + '\n');
    await writeFileAtomic(join(out, 'images.jsonl'), result.images.map((r) => JSON.stringify(r) + '\n').join(''));
    await writePng(join(out, 'samples.png'), { ...result.grid, channels: 3 });
  }
  process.stdout.write(flags['json'] === true ? JSON.stringify(result.report) + '\n' : formatQuality(result.report) + '\n');
  if (flags['record'] === true) {
    const { recordQuality } = await import('../eval/quality-record.js');
    try {
      const key = await recordQuality(result.report.model.dir, result.report, typedCommand());
      process.stderr.write(`mce eval quality: recorded in ${join(result.report.model.dir, 'manifest.json')} (quality.${key})\n`);
    } catch (e) {
      throw new UserError((e as Error).message);
    }
  }
}

/** `mce eval quality merge DIR... --out DIR`: the unsharded run's report from its shard folders. */
async function mergeQuality(dirs: string[], flags: FlagValues): Promise<number> {
  if (!dirs.length) throw new UsageError('mce eval quality merge: give the shard folders (mce eval quality merge DIR... --out DIR)');
  const out = typeof flags['out'] === 'string' ? flags['out'] : undefined;
  if (!out) throw new UsageError('mce eval quality merge: --out DIR is required');
  const { useBackend } = await import('../engine/backend.js');
  const { mergeQualityShards } = await import('../eval/quality-shard.js');
  await useBackend();
  let result;
  try {
    result = await mergeQualityShards(dirs);
  } catch (e) {
    throw new UserError((e as Error).message.split('\n')[0]!);
  }
  await writeQuality(result, out, flags);
  process.stderr.write(`mce eval quality merge: ${result.report.images.generated} images from ${dirs.length} folders -> ${out}\n`);
  return 0;
}

/** `mce eval erasure`: the held-out evaluation of `mce erase`, on a mask file. */
async function runErasure(flags: FlagValues): Promise<number> {
  const masksPath = flags['masks'];
  if (typeof masksPath !== 'string' || !masksPath) throw new UsageError('mce eval erasure: --masks FILE is required');
  const concepts = flags['concept'] as string[] | undefined;
  if (!concepts?.length) throw new UsageError('mce eval erasure: --concept NAME is required (the concept(s) the masks erase)');
  const { int, num } = numericFlags('mce eval erasure', flags);
  const n = int('n', 1, 1000)!;
  const seed = int('seed', 0, 2 ** 32 - 1)!;
  const steps = int('steps', 1, 200);
  const cfg = num('cfg', 0, 50);
  const cfgInterval = cfgIntervalFlag('mce eval erasure', flags);
  const binarize = await binarizeFlag('mce eval erasure', flags);
  const out = typeof flags['out'] === 'string' ? flags['out'] : undefined;
  const { buildPromptSets } = await import('../erase/mce/prompts.js');
  const { UnknownConceptError } = await import('../world/catalogue.js');
  let sets;
  try {
    sets = buildPromptSets(concepts, { seed });
  } catch (e) {
    if (e instanceof UnknownConceptError) throw new UserError(e.message);
    throw e;
  }
  const { useBackend } = await import('../engine/backend.js');
  const { ModelLoadError } = await import('../generate/flux-emoji.js');
  const { loadEraseSubject } = await import('../erase/mce/subject.js');
  const { MaskFileError } = await import('../erase/mce/maskfile.js');
  const { keepMasks } = await import('../erase/mce/masked-model.js');
  const { formatBinarize, sparsityReport } = await import('../erase/mce/masks.js');
  const { evaluateErasure } = await import('../erase/mce/evaluate.js');
  const { acceptanceBars, formatBars } = await import('../erase/mce/acceptance.js');
  const { formatEval } = await import('./erase.js');
  await useBackend();
  const modelName = String(flags['model']);
  let subject;
  try {
    subject = await loadEraseSubject(modelName, { steps, cfg, cfgInterval });
  } catch (e) {
    if (e instanceof ModelLoadError) throw new UserError(e.message);
    throw e;
  }
  try {
    // The keep-masks mce generate --masks samples with, or the logits binarised by --binarize.
    let masks;
    try {
      const arch = subject.maskArch;
      masks = await keepMasks(masksPath, 'cfg' in arch ? arch.cfg : arch, binarize);
    } catch (e) {
      if (e instanceof MaskFileError) throw new UserError(e.message);
      throw e;
    }
    const evaluation = await evaluateErasure(subject, sets, masks, {
      n, seed, classifier: flags['classifier'] as string | undefined, clip: flags['clip'] as string | undefined,
    });
    const acceptance = acceptanceBars(evaluation);
    const { groups, total } = sparsityReport(masks);
    const masked = `units masked: ${(100 * total.fraction).toFixed(1)}% (${groups.map((g) => `${g.group} ${(100 * g.fraction).toFixed(1)}%`).join(', ')})`;
    const report = {
      command: typedCommand(),
      masks: masksPath,
      ...(binarize ? { binarize: formatBinarize(binarize) } : {}),
      sparsity: { groups, total },
      concepts: sets.targets.map((t) => t.name),
      model: modelName,
      sampler: subject.samplerRecord,
      evaluation,
      acceptance,
    };
    if (out) {
      const { writeFileAtomic } = await import('../io/atomic.js');
      mkdirSync(out, { recursive: true });
      await writeFileAtomic(join(out, 'erasure.json'), JSON.stringify(report, null, 1) + '\n');
    }
    process.stdout.write(flags['json'] === true ? JSON.stringify(report) + '\n' : `${formatEval(evaluation)}\n${masked}\n${formatBars(acceptance)}\n`);
    return 0;
  } finally {
    subject.dispose();
  }
}
