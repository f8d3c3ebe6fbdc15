// `mce erase`: Minimalist Concept Erasure on a text-to-image model: flux-emoji (FLUX, Euler),
// sd-emoji (SD-style UNet, DDIM with CFG inside each step) or a bundle folder of either family
// (erase/mce/subject.ts). Trains neuron masks with losses on the final output only and gradients
// through every sampling step, then writes into --out: masks.safetensors (logits + binary keep-masks), sparsity.txt /
// sparsity.json, grid.png (original | erased, same noise, on erase / neighbour / preserve
// prompts), val-STEP.png, summary.json (settings, times, peak memory, loss curve, sparsity,
// trajectory divergence, held-out evaluation), report.html. Resumable: rerun the same command to continue from --out/checkpoints.
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { numericFlags, UsageError, UserError, type Command } from './command.js';
import { binarizeFlag } from './binarize-flag.js';
import { CFG_INTERVAL_HELP, cfgIntervalFlag } from './cfg-interval-flag.js';
import { formatGuidanceInterval } from '../sampling/guidance.js';

const TARGETS = ['neutral', 'empty', 'edit'] as const;
const OBJECTIVES = ['final', 'per-step'] as const;

/**
 * Default optimizer steps per erased concept. At 150 in all a three-concept run left the vampire
 * fully drawn (runs/s5-erase-three: detection 50% -> 50%). 300 per concept erased the kitchen knife
 * one held-out prompt further (17% -> 8%) but left the superhero, zombie and vampire where 150 did
 * and lowered their SSIM by 0.02-0.08 (runs/s7-erase-*, docs/erasure.md): not a better default.
 */
const ITERS_PER_CONCEPT = 150;

export const eraseCommand: Command = {
  name: 'erase',
  summary: 'erase a concept with MCE (neuron masks, loss on the final output, backprop through every step)',
  flags: {
    concept: { type: 'list', help: 'what to erase: an emoji-world target ("kitchen knife", "vampire", "twemoji style"); several: repeat the flag or separate them by commas' },
    model: { type: 'string', help: 'flux-emoji, sd-emoji, or the path of a model folder (with manifest.json)', default: 'flux-emoji' },
    out: { type: 'string', help: 'run folder (masks, tables, grid, summary, checkpoints)' },
    neutral: { type: 'string', help: "neutral phrase erase prompts map to (default: the catalogue's, e.g. 'a spoon')" },
    target: { type: 'string', help: 'erase target: neutral (original model on the neutral prompt, same noise) | empty (the paper formula) | edit (FlowEdit of the original image toward the neutral prompt)', default: 'neutral' },
    objective: { type: 'string', help: 'final (MCE) | per-step (losses on every step\'s predicted x0, the contrast of the paper)', default: 'final' },
    beta: { type: 'number', help: 'preservation weight', default: 0.1 },
    steps: { type: 'number', help: "sampling steps (default: the model's)" },
    cfg: { type: 'number', help: "classifier-free guidance inside each step (default: the model's)" },
    'cfg-interval': { type: 'string', help: CFG_INTERVAL_HELP },
    iters: { type: 'number', help: `optimizer steps (default ${ITERS_PER_CONCEPT} per concept: the reference trains 400 at batch 4; ${ITERS_PER_CONCEPT} keeps one concept under 10 minutes on 2 cores)` },
    epochs: { type: 'number', help: 'run length in epochs instead of --iters: shuffled passes over the erase samples (prompts x noises), --batch of them per micro-batch (the reference trains 5)' },
    accumulate: { type: 'number', help: 'micro-batches per optimizer step', default: 1 },
    batch: { type: 'number', help: 'erase and preserve items per micro-batch (each)', default: 2 },
    noises: { type: 'number', help: 'shared initial noises per prompt (Monte Carlo; 1 = one fixed noise as the original code)', default: 2 },
    prompts: { type: 'number', help: 'erase prompts per concept (train templates and synonyms); as many preserve prompts unless --preserve', default: 12 },
    preserve: { type: 'number', help: 'preserve prompts in all: the near neighbours first, then a seeded sample of other concepts (default: --prompts per concept)' },
    'lr-ffn': { type: 'number', help: 'learning rate of the FFN masks (both streams)', default: 0.5 },
    'lr-mod': { type: 'number', help: 'learning rate of the text-modulation masks', default: 0.5 },
    'lr-heads': { type: 'number', help: 'learning rate of the head masks (reference: frozen)', default: 0 },
    // flux-emoji has 2 double blocks to FLUX.1's 19, so most of its depth is single-stream: with these
    // masks frozen (the reference), "kitchen knife" detection went 25% -> 17%; trained, 25% -> 8%
    // (runs/erase-A vs erase-B, docs/erasure.md).
    'lr-single': { type: 'number', help: 'learning rate of the single-block MLP masks (reference: 0, not masked; on by default here because flux-emoji is mostly single blocks)', default: 0.5 },
    'lr-attn': { type: 'number', help: 'UNet only: learning rate of the attention linear-output masks (to_q/to_k/to_v/to_out; the reference SD hooker masks them with the FFN rate)', default: 0.5 },
    hooks: { type: 'list', help: "train only the hook points matching these globs ('*' matches anything), within the groups above; 'text' is the units that act on the text alone: FLUX's text stream ('*.txt_mlp,*.txt_mod'), a UNet's cross-attention keys and values ('*.attn2.to_k,*.attn2.to_v') (default: every hook point of the groups)" },
    sparsity: { type: 'number', help: 'weight of a sparsity term (0 = off, as the reference)', default: 0 },
    'sparsity-kind': { type: 'string', help: 'l1 (mean sigmoid(logit)) | l0 (expected L0 of the hard-concrete gate): both push units toward masked | edit (expected fraction of units masked: keeps the edit small)', default: 'l1' },
    'weight-decay': { type: 'number', help: 'AdamW decoupled weight decay of the mask logits (reference: 0.01)', default: 0.01 },
    'adam-eps': { type: 'number', help: "AdamW epsilon of the mask logits (reference: 1e-8); near the gradients' size (1e-6 to 1e-5 on flux-emoji) it slows units with faint gradients", default: 1e-8 },
    'decay-to': { type: 'string', help: 'what the weight decay pulls the logits toward: zero (the reference: mask 0.5) | init (the original model)', default: 'zero' },
    binarize: { type: 'string', help: 'how the trained logits become the stored keep-masks (and the grids and evaluation): threshold:T, topk-layer:F or topk-global:F (reference: threshold:0)', default: 'threshold:0' },
    seed: { type: 'number', help: 'run seed (prompt sampling, noises, batches, mask noise)', default: 0 },
    'no-grid': { type: 'boolean', help: 'skip the before/after grid.png' },
    eval: { type: 'number', help: 'held-out prompts per group for the before/after evaluation (detection, neighbour/other accuracy, SSIM, CLIP score); 0 = off', default: 48 },
    filter: { type: 'number', help: 'pair filter: keep the erase pairs whose background-consistency score (emoji CLIP) is within this quantile (reference 0.9); 1 = off', default: 1 },
    classifier: { type: 'string', help: 'emoji classifier weights for detection/accuracy (default: the shipped one, when present)' },
    clip: { type: 'string', help: 'emoji dual encoder weights for the CLIP score and the pair filter (default: the shipped one, when present)' },
    'val-every': { type: 'number', help: 'every K iterations write val-STEP.png: original | continuous masks | binary masks on erase and preserve prompts (0 = off)', default: 20 },
  },
  async run(args, flags) {
    if (args.length) throw new UsageError(`mce erase: unexpected argument '${args[0]}' (the concept goes in --concept)`);
    const concepts = flags['concept'] as string[] | undefined;
    if (!concepts) throw new UsageError('mce erase: --concept NAME is required');
    const out = flags['out'];
    if (typeof out !== 'string' || !out) throw new UsageError('mce erase: --out DIR is required');
    const { int, num: optionalNum } = numericFlags('mce erase', flags);
    // Flags with a default are always there.
    const num = (name: string, lo: number, hi: number): number => optionalNum(name, lo, hi)!;
    const target = flags['target'] as string;
    if (!(TARGETS as readonly string[]).includes(target)) throw new UsageError(`mce erase: --target must be one of ${TARGETS.join(', ')}, got '${target}'`);
    if (target === 'edit' && flags['objective'] !== 'final') throw new UsageError('mce erase: --target edit (FlowEdit) works with --objective final only');
    const objective = flags['objective'] as string;
    if (!(OBJECTIVES as readonly string[]).includes(objective)) throw new UsageError(`mce erase: --objective must be one of ${OBJECTIVES.join(', ')}, got '${objective}'`);
    const seed = int('seed', 0, 2 ** 32 - 1)!;
    const steps = int('steps', 1, 100);
    const accumulate = int('accumulate', 1, 64)!;
    const batch = int('batch', 1, 64)!;
    const noises = int('noises', 1, 64)!;
    const nPrompts = int('prompts', 1, 1000)!;
    const nPreserve = int('preserve', 1, 10000) ?? nPrompts * concepts.length;
    const valEvery = int('val-every', 0, 1000000)!;
    const nEval = int('eval', 0, 1000)!;
    const beta = num('beta', 0, 1e6);
    const sparsityW = num('sparsity', 0, 1e6);
    const sparsityKind = flags['sparsity-kind'] as string;
    if (sparsityKind !== 'l1' && sparsityKind !== 'l0' && sparsityKind !== 'edit') throw new UsageError(`mce erase: --sparsity-kind must be l1, l0 or edit, got '${sparsityKind}'`);
    const weightDecay = num('weight-decay', 0, 1);
    const decayTo = flags['decay-to'] as string;
    if (decayTo !== 'zero' && decayTo !== 'init') throw new UsageError(`mce erase: --decay-to must be zero or init, got '${decayTo}'`);
    const adamEps = num('adam-eps', 0, 1);
    const binarizeRule = (await binarizeFlag('mce erase', flags))!;
    const lr = { ffn: num('lr-ffn', 0, 100), txt_mod: num('lr-mod', 0, 100), heads: num('lr-heads', 0, 100), single_mlp: num('lr-single', 0, 100), attn_linear: num('lr-attn', 0, 100) };
    const cfgFlag = optionalNum('cfg', 0, 50);
    const cfgInterval = cfgIntervalFlag('mce erase', flags);
    // Erase samples are spread over the concepts, so each concept gets as many as a run of its own.
    const epochs = int('epochs', 1, 10000);
    if (epochs !== undefined && flags['iters'] !== undefined) throw new UsageError('mce erase: give --iters or --epochs, not both');
    const itersFlag = int('iters', 0, 100000) ?? ITERS_PER_CONCEPT * concepts.length;

    // Prompt sets first: an unknown concept fails before any model loads.
    const { buildPromptSets } = await import('../erase/mce/prompts.js');
    const { UnknownConceptError } = await import('../world/catalogue.js');
    let sets;
    try {
      sets = buildPromptSets(concepts, { erasePerTarget: nPrompts, preserve: nPreserve, neutral: flags['neutral'] as string | undefined, seed });
    } catch (e) {
      if (e instanceof UnknownConceptError) throw new UserError(e.message);
      throw e;
    }

    const { useBackend } = await import('../engine/backend.js');
    const { ModelLoadError, SHIPPED_MODEL_NAMES } = await import('../generate/flux-emoji.js');
    const { loadEraseSubject } = await import('../erase/mce/subject.js');
    const mce = await import('../erase/mce/train.js');
    const masksMod = await import('../erase/mce/masks.js');
    const grids = await import('../erase/mce/grids.js');
    const { saveMasks } = await import('../erase/mce/maskfile.js');
    const { evaluateErasure, pairScores } = await import('../erase/mce/evaluate.js');
    const { acceptanceBars, formatBars } = await import('../erase/mce/acceptance.js');
    const { filterPairs } = await import('../erase/mce/prompts.js');
    const { writeReport } = await import('../report/run-report.js');
    const { writePng } = await import('../io/png.js');
    const { writeFileAtomic } = await import('../io/atomic.js');
    const backend = await useBackend();
    const modelName = flags['model'] as string;
    let subject;
    try {
      subject = await loadEraseSubject(modelName, { steps, cfg: cfgFlag, cfgInterval });
    } catch (e) {
      if (e instanceof ModelLoadError) throw new UserError(`${(e as Error).message}${modelName.includes('/') ? '' : ` (shipped models: ${SHIPPED_MODEL_NAMES.join(', ')})`}`);
      throw e;
    }
    if (subject.family === 'diffusion' && target === 'edit') {
      subject.dispose();
      throw new UsageError('mce erase: --target edit (FlowEdit) works on flow models (flux-emoji) only; use neutral or empty on a UNet');
    }
    const { samplerRecord: sampler } = subject;
    const hooksFlag = flags['hooks'] as string[] | undefined;
    const hooks = hooksFlag?.flatMap((g) => (g === 'text' ? masksMod.TEXT_ONLY_HOOKS[subject.family] : [g]));
    for (const glob of hooks ?? []) {
      const matches = masksMod.hookMatcher([glob]);
      if (subject.maskSpecs.some((m) => matches(m.name))) continue;
      const kinds = [...new Set(subject.maskSpecs.map((m) => `*.${m.name.split('.').slice(-2).filter((x) => !/^\d+$/.test(x)).join('.')}`))];
      subject.dispose();
      throw new UsageError(`mce erase: --hooks '${glob}' matches no hook point of ${modelName} (its hook points: ${kinds.join(', ')})`);
    }
    if (hooks && mce.trainedHookPoints(subject.maskSpecs.map((m) => m.name), { lr, hooks }).length === 0) {
      subject.dispose();
      throw new UsageError(`mce erase: --hooks ${hooks.join(',')} selects only hook points of groups at learning rate 0 (${Object.entries(lr).filter(([, v]) => v === 0).map(([g]) => g).join(', ')})`);
    }
    try {
      await mkdir(out, { recursive: true });
    } catch (e) {
      throw new UserError(`cannot create ${out}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
    }
    const log = (s: string): void => void process.stderr.write(s + '\n');
    const savePng = (file: string, g: { width: number; height: number; data: Uint8Array }): Promise<void> =>
      writePng(join(out, file), { width: g.width, height: g.height, channels: 3, data: g.data });

    // Optional pair filter: drop the erase pairs whose backgrounds differ most.
    const filterQ = num('filter', 0.01, 1);
    if (filterQ < 1) {
      let scores: number[];
      try {
        scores = await pairScores(subject, sets.erase, { seed, clip: flags['clip'] as string | undefined });
      } catch (e) {
        throw new UserError((e as Error).message);
      }
      const keep = filterPairs(scores, filterQ);
      log(`mce erase: pair filter kept ${keep.length}/${sets.erase.length} erase pairs (quantile ${filterQ})`);
      sets = { ...sets, erase: keep.map((i) => sets!.erase[i]!) };
    }
    const run = { iters: itersFlag, ...(epochs !== undefined ? { epochs } : {}), eraseBatch: batch, accumulate };
    const iters = mce.mceSteps(run, sets.erase.length * noises);
    const settings = mce.defaultMceSettings(subject.sampler, {
      target: target as 'neutral' | 'empty' | 'edit', objective: objective as 'final' | 'per-step', beta, ...run, iters,
      noises, preserveBatch: batch, seed, lr, ...(hooks ? { hooks } : {}), weightDecay, decayTo, adamEps, sparsity: { kind: sparsityW > 0 ? (sparsityKind as 'l1' | 'l0' | 'edit') : 'none', weight: sparsityW },
    });
    log(`mce erase: ${sets.targets.map((t) => t.name).join(' + ')} on ${modelName} (${backend}): ${sets.erase.length} erase / ${sets.preserve.length} preserve prompts (${Math.min(sets.neighbours.length, sets.preserve.length)} of them near neighbours), ${sampler.steps} steps, cfg ${sampler.cfg}${formatGuidanceInterval(cfgInterval)}, target ${target}, objective ${objective}, beta ${beta}, ${epochs !== undefined ? `${epochs} epochs = ` : ''}${iters} iters`);

    // Training, with a validation grid every --val-every steps (rows: 2 erase + 2 preserve prompts, fixed noise).
    const valPrompts = [...sets.erase.slice(0, 2).map((p) => p.prompt), ...sets.preserve.slice(0, 2)];
    const valSampler = subject.newSampler();
    const onEval = async ({ step, logits }: { step: number; logits: Record<string, import('../engine/tf.js').Tensor> }): Promise<void> => {
      if (!valEvery || (step % valEvery !== 0 && step !== iters)) return;
      const image = grids.validationGrid(subject, valSampler, valPrompts, seed, logits);
      await savePng(`val-${String(step).padStart(5, '0')}.png`, image);
    };
    let peak = process.memoryUsage().rss;
    const memTimer = setInterval(() => (peak = Math.max(peak, process.memoryUsage().rss)), 500);
    const t0 = performance.now();
    let res;
    try {
      res = await mce.trainMce(subject.model, sets, settings, { dir: join(out, 'checkpoints'), checkpointEvery: 10, log, evalEvery: valEvery ? Math.min(10, valEvery) : 10, onEval });
    } finally {
      clearInterval(memTimer);
      valSampler.dispose();
    }
    const trainSeconds = (performance.now() - t0) / 1000;

    // Masks (binarised by --binarize; a rerun of a finished run binarises again without training) and the sparsity table.
    const keep = masksMod.binarize(res.logits, binarizeRule);
    const ruleText = masksMod.formatBinarize(binarizeRule);
    const rep = masksMod.sparsityReport(keep);
    await saveMasks(join(out, 'masks.safetensors'), {
      logits: res.logits, keep, ...subject.maskArch,
      metadata: { concepts: JSON.stringify(sets.targets.map((t) => t.name)), binarize: ruleText, model: modelName },
    });
    await writeFileAtomic(join(out, 'sparsity.txt'), masksMod.formatSparsity(rep) + '\n');
    await writeFileAtomic(join(out, 'sparsity.json'), JSON.stringify(rep, null, 1) + '\n');

    // Before/after on a few training prompts (same noise) and the trajectory divergence curve.
    const ba = grids.beforeAfter(subject, sets, keep, seed, { grid: flags['no-grid'] !== true });
    if (ba.grid) await savePng('grid.png', ba.grid);

    // Held-out evaluation: detection, neighbour and other accuracy, SSIM, CLIP score.
    let evaluation: import('../erase/mce/evaluate.js').ErasureEval | null = null;
    if (nEval > 0) {
      evaluation = await evaluateErasure(subject, sets, keep, {
        n: nEval, seed, classifier: flags['classifier'] as string | undefined, clip: flags['clip'] as string | undefined,
      });
      log(`mce erase: held-out eval: ${formatEval(evaluation)}`);
    }
    const acceptance = evaluation ? acceptanceBars(evaluation) : null;
    if (acceptance) log(`mce erase: ${formatBars(acceptance)}`);

    const summary = {
      command: 'mce erase',
      concepts: sets.targets.map((t) => ({ name: t.name, kind: t.kind, neutral: flags['neutral'] ?? t.neutral, members: t.members })),
      model: modelName,
      family: subject.family,
      backend,
      settings: { ...settings, sampler, binarize: ruleText },
      prompts: { erase: sets.erase, preserve: sets.preserve, neighbours: sets.neighbours },
      seconds: { total: Number(trainSeconds.toFixed(1)), targets: Number(res.seconds.targets.toFixed(1)), train: Number(res.seconds.train.toFixed(1)), earlierProcesses: Number(res.seconds.earlier.toFixed(1)) },
      resumedFrom: res.train.resumedFrom,
      peakRssMiB: Math.round(peak / 2 ** 20),
      loss: { last: res.train.loss, curve: res.history },
      sparsity: { groups: rep.groups, total: rep.total },
      trajectoryDivergence: { note: 'mean |x_t(original) - x_t(erased, binary masks)| at every state x_0..x_N, same noise', ...ba.divergence },
      grid: ba.grid ? { file: 'grid.png', columns: ['original', 'erased (binary masks)'], rows: ba.rows } : null,
      validation: valEvery ? { files: 'val-STEP.png', every: valEvery, columns: ['original', 'continuous masks', 'binary masks'], rows: valPrompts } : null,
      evaluation,
      acceptance,
    };
    await writeFileAtomic(join(out, 'summary.json'), JSON.stringify(summary, null, 1) + '\n');
    // The report is built from the files just written, exactly as `mce report OUT` builds it.
    await writeReport(out);
    subject.dispose();
    log(`mce erase: done in ${trainSeconds.toFixed(1)} s; pruned ${rep.groups.map((g) => `${g.group} ${(100 * g.fraction).toFixed(1)}%`).join(', ')} -> ${out}`);
    await writeFileAtomic(join(out, '.done'), '');
    return 0;
  },
};

/** The evaluation as one log line. */
export function formatEval(e: import('../erase/mce/evaluate.js').ErasureEval): string {
  const f = (x: number | null): string => (x === null ? 'n/a' : `${(100 * x).toFixed(0)}%`);
  const clip = (g: { clip: { before: number; after: number } | null }): string => (g.clip ? `, CLIP ${g.clip.before.toFixed(1)} -> ${g.clip.after.toFixed(1)}` : '');
  const phrases = e.erase.byConceptPhrase.map((g) => `${g.phrase} ${f(g.before)} -> ${f(g.after)} of ${g.prompts}`).join(', ');
  return `target detection ${f(e.erase.before)} -> ${f(e.erase.after)}${phrases ? ` (${phrases})` : ''}${clip(e.erase)}` +
    (e.neighbours ? `, neighbour accuracy ${f(e.neighbours.before)} -> ${f(e.neighbours.after)} (SSIM ${e.neighbours.ssim.toFixed(3)}${clip(e.neighbours)})` : '') +
    `, other accuracy ${f(e.others.before)} -> ${f(e.others.after)} (SSIM ${e.others.ssim.toFixed(3)}${clip(e.others)})` +
    (e.notes.length ? ` [${e.notes.join('; ')}]` : '');
}
