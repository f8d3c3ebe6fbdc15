// `mce erase`: Minimalist Concept Erasure on a FLUX model (flux-emoji or a model folder). Trains
// neuron masks with losses on the final output only and gradients through every sampling step,
// then writes into --out: masks.safetensors (logits + binary keep-masks), sparsity.txt /
// sparsity.json, grid.png (original | erased, same noise, on erase / neighbour / preserve
// prompts), summary.json (settings, times, peak memory, loss curve, sparsity, trajectory
// divergence, held-out evaluation), report.html. Resumable: rerun the same command to continue from --out/checkpoints.
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { UsageError, UserError, type Command } from './command.js';

const TARGETS = ['neutral', 'empty', 'edit'] as const;
const OBJECTIVES = ['final', 'per-step'] as const;

export const eraseCommand: Command = {
  name: 'erase',
  summary: 'erase a concept with MCE (neuron masks, loss on the final output, backprop through every step)',
  flags: {
    concept: { type: 'string', help: 'what to erase: an emoji-world target ("kitchen knife", "vampire", "twemoji style"); several comma-separated' },
    model: { type: 'string', help: 'flux-emoji, or the path of a model folder (with manifest.json)', default: 'flux-emoji' },
    out: { type: 'string', help: 'run folder (masks, tables, grid, summary, checkpoints)' },
    neutral: { type: 'string', help: "neutral phrase erase prompts map to (default: the catalogue's, e.g. 'a spoon')" },
    target: { type: 'string', help: 'erase target: neutral (original model on the neutral prompt, same noise) | empty (the paper formula) | edit (FlowEdit of the original image toward the neutral prompt)', default: 'neutral' },
    objective: { type: 'string', help: 'final (MCE) | per-step (losses on every step\'s predicted x0, the contrast of the paper)', default: 'final' },
    beta: { type: 'number', help: 'preservation weight', default: 0.1 },
    steps: { type: 'number', help: "sampling steps (default: the model's)" },
    cfg: { type: 'number', help: "classifier-free guidance inside each step (default: the model's)" },
    iters: { type: 'number', help: 'optimizer steps', default: 40 },
    accumulate: { type: 'number', help: 'micro-batches per optimizer step', default: 1 },
    batch: { type: 'number', help: 'erase and preserve items per micro-batch (each)', default: 2 },
    noises: { type: 'number', help: 'shared initial noises per prompt (Monte Carlo; 1 = one fixed noise as the original code)', default: 2 },
    prompts: { type: 'number', help: 'erase prompts per concept (train templates and synonyms); as many preserve prompts', default: 12 },
    'lr-ffn': { type: 'number', help: 'learning rate of the FFN masks (both streams)', default: 0.5 },
    'lr-mod': { type: 'number', help: 'learning rate of the text-modulation masks', default: 0.5 },
    'lr-heads': { type: 'number', help: 'learning rate of the head masks (reference: frozen)', default: 0 },
    'lr-single': { type: 'number', help: 'learning rate of the single-block MLP masks (reference: not masked)', default: 0 },
    sparsity: { type: 'number', help: 'weight of a sparsity term (0 = off, as the reference)', default: 0 },
    'sparsity-kind': { type: 'string', help: 'l1 (mean sigmoid(logit)) | l0 (expected L0 of the hard-concrete gate)', default: 'l1' },
    seed: { type: 'number', help: 'run seed (prompt sampling, noises, batches, mask noise)', default: 0 },
    'no-grid': { type: 'boolean', help: 'skip the before/after grid.png' },
    eval: { type: 'number', help: 'held-out prompts per group for the before/after evaluation (detection, neighbour/other accuracy, SSIM); 0 = off', default: 12 },
    filter: { type: 'number', help: 'pair filter: keep the erase pairs whose background-consistency score (emoji CLIP) is within this quantile (reference 0.9); 1 = off', default: 1 },
    classifier: { type: 'string', help: 'emoji classifier weights for detection/accuracy (default: the shipped one, when present)' },
    'val-every': { type: 'number', help: 'every K iterations write val-STEP.png: original | continuous masks | binary masks on erase and preserve prompts (0 = off)', default: 20 },
  },
  async run(args, flags) {
    if (args.length) throw new UsageError(`mce erase: unexpected argument '${args[0]}' (the concept goes in --concept)`);
    const conceptFlag = flags['concept'];
    if (typeof conceptFlag !== 'string' || !conceptFlag.trim()) throw new UsageError('mce erase: --concept NAME is required');
    const out = flags['out'];
    if (typeof out !== 'string' || !out) throw new UsageError('mce erase: --out DIR is required');
    const int = (name: string, lo: number, hi: number): number | undefined => {
      const v = flags[name];
      if (v === undefined) return undefined;
      if (typeof v !== 'number' || !Number.isInteger(v) || v < lo || v > hi) throw new UsageError(`mce erase: --${name} must be an integer in [${lo}, ${hi}], got ${String(v)}`);
      return v;
    };
    const num = (name: string, lo: number, hi: number): number => {
      const v = flags[name] as number;
      if (!(v >= lo && v <= hi)) throw new UsageError(`mce erase: --${name} must be in [${lo}, ${hi}], got ${String(v)}`);
      return v;
    };
    const target = flags['target'] as string;
    if (!(TARGETS as readonly string[]).includes(target)) throw new UsageError(`mce erase: --target must be one of ${TARGETS.join(', ')}, got '${target}'`);
    if (target === 'edit' && flags['objective'] !== 'final') throw new UsageError('mce erase: --target edit (FlowEdit) works with --objective final only');
    const objective = flags['objective'] as string;
    if (!(OBJECTIVES as readonly string[]).includes(objective)) throw new UsageError(`mce erase: --objective must be one of ${OBJECTIVES.join(', ')}, got '${objective}'`);
    const seed = int('seed', 0, 2 ** 32 - 1)!;
    const steps = int('steps', 1, 100);
    const iters = int('iters', 0, 100000)!;
    const accumulate = int('accumulate', 1, 64)!;
    const batch = int('batch', 1, 64)!;
    const noises = int('noises', 1, 64)!;
    const nPrompts = int('prompts', 1, 1000)!;
    const valEvery = int('val-every', 0, 1000000)!;
    const nEval = int('eval', 0, 1000)!;
    const beta = num('beta', 0, 1e6);
    const sparsityW = num('sparsity', 0, 1e6);
    const sparsityKind = flags['sparsity-kind'] as string;
    if (sparsityKind !== 'l1' && sparsityKind !== 'l0') throw new UsageError(`mce erase: --sparsity-kind must be l1 or l0, got '${sparsityKind}'`);
    const lr = { ffn: num('lr-ffn', 0, 100), txt_mod: num('lr-mod', 0, 100), heads: num('lr-heads', 0, 100), single_mlp: num('lr-single', 0, 100) };
    const cfgFlag = flags['cfg'] as number | undefined;
    if (cfgFlag !== undefined && !(cfgFlag >= 0 && cfgFlag <= 50)) throw new UsageError(`mce erase: --cfg must be in [0, 50], got ${cfgFlag}`);
    const concepts = conceptFlag.split(',').map((s) => s.trim()).filter(Boolean);

    // Prompt sets first: an unknown concept fails before any model loads.
    const { buildPromptSets } = await import('../erase/mce/prompts.js');
    const { UnknownConceptError } = await import('../world/catalogue.js');
    let sets;
    try {
      sets = buildPromptSets(concepts, { erasePerTarget: nPrompts, preserve: nPrompts * concepts.length, neutral: flags['neutral'] as string | undefined, seed });
    } catch (e) {
      if (e instanceof UnknownConceptError) throw new UserError(e.message);
      throw e;
    }

    const { useBackend } = await import('../engine/backend.js');
    const { tf } = await import('../engine/tf.js');
    const gen = await import('../generate/flux-emoji.js');
    const { fluxSchedule } = await import('../sampling/schedule.js');
    const mce = await import('../erase/mce/train.js');
    const obj = await import('../erase/mce/objective.js');
    const masksMod = await import('../erase/mce/masks.js');
    const { saveMasks } = await import('../erase/mce/maskfile.js');
    const { writePng } = await import('../io/png.js');
    const { writeFileAtomic } = await import('../io/atomic.js');
    const backend = await useBackend();
    const modelName = flags['model'] as string;
    let model;
    try {
      model = await gen.loadFluxEmoji(modelName);
    } catch (e) {
      if (e instanceof gen.ModelLoadError) throw new UserError(`${(e as Error).message}${modelName.includes('/') ? '' : ` (shipped models: ${gen.SHIPPED_FLUX_MODELS.join(', ')})`}`);
      throw e;
    }
    const m = model.manifest;
    const emodel: import('../erase/mce/objective.js').FluxEraseModel = {
      cfg: model.cfg,
      weights: model.weights,
      latent: m.latent.shape,
      encode: (p) => model.text.encode(p),
    };
    const nSteps = steps ?? m.sampling.steps;
    const sampler = { timesteps: fluxSchedule(nSteps, { imageSeqLen: m.latent.packed_tokens, shift: m.sampling.shift }), cfg: cfgFlag ?? m.sampling.cfg };
    const settings = mce.defaultMceSettings(sampler, {
      target: target as 'neutral' | 'empty' | 'edit', objective: objective as 'final' | 'per-step', beta, iters, accumulate,
      eraseBatch: batch, preserveBatch: batch, noises, seed, lr, sparsity: { kind: sparsityW > 0 ? sparsityKind : 'none', weight: sparsityW },
    });
    try {
      await mkdir(out, { recursive: true });
    } catch (e) {
      throw new UserError(`cannot create ${out}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
    }
    const log = (s: string): void => void process.stderr.write(s + '\n');
    const filterQ = num('filter', 0.01, 1);
    if (filterQ < 1) {
      const { pairScores } = await import('../erase/mce/evaluate.js');
      const { filterPairs } = await import('../erase/mce/prompts.js');
      let scores: number[];
      try {
        scores = await pairScores(emodel, (p) => gen.decodePacked(model, p), sets.erase, sampler, { seed });
      } catch (e) {
        throw new UserError((e as Error).message);
      }
      const keep = filterPairs(scores, filterQ);
      log(`mce erase: pair filter kept ${keep.length}/${sets.erase.length} erase pairs (quantile ${filterQ})`);
      sets = { ...sets, erase: keep.map((i) => sets!.erase[i]!) };
    }
    log(`mce erase: ${sets.targets.map((t) => t.name).join(' + ')} on ${modelName} (${backend}): ${sets.erase.length} erase / ${sets.preserve.length} preserve prompts, ${nSteps} steps, cfg ${sampler.cfg}, target ${target}, objective ${objective}, beta ${beta}, ${iters} iters`);
    // Validation grids: a fixed noise per prompt; rows = 2 erase + 2 preserve prompts.
    const valPrompts = [...sets.erase.slice(0, 2).map((p) => p.prompt), ...sets.preserve.slice(0, 2)];
    const valCache = new obj.PromptCache(emodel);
    const upscale = (img: import('../generate/flux-emoji.js').RgbImage, f: number): import('../generate/flux-emoji.js').RgbImage => {
      const W = img.width * f;
      const H = img.height * f;
      const data = new Uint8Array(W * H * 3);
      for (let y = 0; y < H; y++) for (let x = 0; x < W; x++) {
        const src = ((Math.floor(y / f) * img.width) + Math.floor(x / f)) * 3;
        data.set(img.data.subarray(src, src + 3), (y * W + x) * 3);
      }
      return { width: W, height: H, data };
    };
    const scale = Math.max(1, Math.floor(128 / m.image_size));
    const valImages: { step: number; image: import('../generate/flux-emoji.js').RgbImage }[] = [];
    const onEval = async ({ step, logits }: { step: number; logits: Record<string, import('../engine/tf.js').tf.Variable> }): Promise<void> => {
      if (!valEvery || (step % valEvery !== 0 && step !== iters)) return;
      const noise = tf.concat(valPrompts.map((_, i) => obj.packedNoise(emodel, obj.noiseSeed(seed + 104729, i))), 0);
      const cols: import('../generate/flux-emoji.js').RgbImage[][] = [];
      for (const mode of [null, 'continuous', 'binary'] as const) {
        const masks = mode ? masksMod.fluxMasksFrom(logits, mode, 0) : undefined;
        const r = obj.sampleFinal(emodel, valCache, valPrompts, noise, sampler, masks);
        cols.push(gen.decodePacked(model, r.final).map((im) => upscale(im, scale)));
        tf.dispose([r.final, ...Object.values(masks ?? {})]);
      }
      noise.dispose();
      const g = gen.imageGrid(valPrompts.map((_, i) => cols.map((c) => c[i]!)));
      valImages.push({ step, image: g });
      await writePng(join(out, `val-${String(step).padStart(5, '0')}.png`), { width: g.width, height: g.height, channels: 3, data: g.data });
    };
    let peak = process.memoryUsage().rss;
    const memTimer = setInterval(() => (peak = Math.max(peak, process.memoryUsage().rss)), 500);
    const t0 = performance.now();
    let res;
    try {
      res = await mce.trainMce(emodel, sets, settings, { dir: join(out, 'checkpoints'), checkpointEvery: 10, log, evalEvery: valEvery ? Math.min(10, valEvery) : 10, onEval });
    } finally {
      clearInterval(memTimer);
      valCache.dispose();
    }
    const trainSeconds = (performance.now() - t0) / 1000;
    const rep = masksMod.sparsityReport(res.binary);
    const table = masksMod.formatSparsity(rep);
    await saveMasks(join(out, 'masks.safetensors'), {
      logits: res.logits, keep: res.binary, cfg: model.cfg,
      metadata: { concepts: JSON.stringify(sets.targets.map((t) => t.name)), binarize: 'threshold 0', model: modelName },
    });
    await writeFileAtomic(join(out, 'sparsity.txt'), table + '\n');
    await writeFileAtomic(join(out, 'sparsity.json'), JSON.stringify(rep, null, 1) + '\n');

    // Before/after on a few prompts with the same noise; trajectory divergence (mean |x_t orig - x_t erased| per step).
    const cache = new obj.PromptCache(emodel);
    const rows: { kind: string; prompt: string }[] = [
      ...sets.erase.slice(0, 3).map((p) => ({ kind: 'erase', prompt: p.prompt })),
      ...sets.preserve.slice(0, 3).map((p) => ({ kind: sets.neighbours.length ? 'neighbour/preserve' : 'preserve', prompt: p })),
    ];
    const binMasks = masksMod.fluxMasksFrom(res.logits, 'binary', 0);
    const divergence: Record<string, number[]> = {};
    const gridRows: import('../generate/flux-emoji.js').RgbImage[][] = [];
    for (const kind of ['erase', 'preserve'] as const) {
      const prompts = kind === 'erase' ? sets.erase.slice(0, 4).map((p) => p.prompt) : sets.preserve.slice(0, 4);
      if (!prompts.length) continue;
      const noise = tf.concat(prompts.map((_, i) => obj.packedNoise(emodel, obj.noiseSeed(seed + 7919, i))), 0);
      const a = obj.sampleFinal(emodel, cache, prompts, noise, sampler, undefined, true);
      const b = obj.sampleFinal(emodel, cache, prompts, noise, sampler, binMasks, true);
      divergence[kind] = a.xs!.map((x, k) => {
        const d = tf.tidy(() => tf.mean(tf.abs(tf.sub(x, b.xs![k]!))));
        const v = d.dataSync()[0]!;
        d.dispose();
        return Number(v.toFixed(6));
      });
      if (flags['no-grid'] !== true) {
        const ia = gen.decodePacked(model, a.final);
        const ib = gen.decodePacked(model, b.final);
        prompts.slice(0, 3).forEach((_, i) => gridRows.push([upscale(ia[i]!, scale), upscale(ib[i]!, scale)]));
      }
      tf.dispose([noise, ...a.xs!, ...a.x0Preds!, ...b.xs!, ...b.x0Preds!]);
    }
    tf.dispose(Object.values(binMasks));
    cache.dispose();
    let gridImage: import('../generate/flux-emoji.js').RgbImage | null = null;
    if (gridRows.length) {
      const g = gen.imageGrid(gridRows);
      gridImage = g;
      await writePng(join(out, 'grid.png'), { width: g.width, height: g.height, channels: 3, data: g.data });
    }
    let evaluation: import('../erase/mce/evaluate.js').ErasureEval | null = null;
    if (nEval > 0) {
      const { evaluateErasure } = await import('../erase/mce/evaluate.js');
      evaluation = await evaluateErasure(emodel, (p) => gen.decodePacked(model, p), sets, res.logits, sampler, {
        n: nEval, seed, classifier: flags['classifier'] as string | undefined,
      });
      const f = (x: number | null): string => (x === null ? 'n/a' : `${(100 * x).toFixed(0)}%`);
      log(`mce erase: held-out eval: target detection ${f(evaluation.erase.before)} -> ${f(evaluation.erase.after)}` +
        (evaluation.neighbours ? `, neighbour accuracy ${f(evaluation.neighbours.before)} -> ${f(evaluation.neighbours.after)} (SSIM ${evaluation.neighbours.ssim.toFixed(3)})` : '') +
        `, other accuracy ${f(evaluation.others.before)} -> ${f(evaluation.others.after)} (SSIM ${evaluation.others.ssim.toFixed(3)})` +
        (evaluation.classifier ? '' : ' [no classifier weights: detection/accuracy not measured]'));
    }
    const summary = {
      command: 'mce erase',
      concepts: sets.targets.map((t) => ({ name: t.name, kind: t.kind, neutral: flags['neutral'] ?? t.neutral, members: t.members })),
      model: modelName,
      backend,
      settings: { ...settings, sampler: { steps: nSteps, cfg: sampler.cfg, timesteps: sampler.timesteps } },
      prompts: { erase: sets.erase, preserve: sets.preserve, neighbours: sets.neighbours },
      seconds: { total: Number(trainSeconds.toFixed(1)), targets: Number(res.seconds.targets.toFixed(1)), train: Number(res.seconds.train.toFixed(1)) },
      resumedFrom: res.train.resumedFrom,
      peakRssMiB: Math.round(peak / 2 ** 20),
      loss: { last: res.train.loss, curve: res.history },
      sparsity: { groups: rep.groups, total: rep.total },
      trajectoryDivergence: { note: 'mean |x_t(original) - x_t(erased, binary masks)| at every state x_0..x_N, same noise', ...divergence },
      grid: gridRows.length ? { file: 'grid.png', columns: ['original', 'erased (binary masks)'], rows } : null,
      validation: valEvery ? { files: 'val-STEP.png', every: valEvery, columns: ['original', 'continuous masks', 'binary masks'], rows: valPrompts } : null,
      evaluation,
    };
    await writeFileAtomic(join(out, 'summary.json'), JSON.stringify(summary, null, 1) + '\n');
    const { mceReportHtml } = await import('../erase/mce/report.js');
    await writeFileAtomic(join(out, 'report.html'), mceReportHtml({
      title: `mce erase: ${sets.targets.map((t) => t.name).join(' + ')} (${modelName})`,
      settings: summary.settings as unknown as Record<string, unknown>,
      history: res.history,
      sparsity: rep,
      divergence,
      grid: gridImage ? { image: gridImage, rows } : null,
      validation: valImages,
      evaluation,
      seconds: (performance.now() - t0) / 1000,
    }));
    model.dispose();
    log(`mce erase: done in ${trainSeconds.toFixed(1)} s; pruned ${rep.groups.map((g) => `${g.group} ${(100 * g.fraction).toFixed(1)}%`).join(', ')} -> ${out}`);
    await writeFile(join(out, '.done'), '');
    return 0;
  },
};
