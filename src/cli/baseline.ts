// `mce baseline <method>`: erase one or more concepts with a baseline method (UCE, SLD, ESD-x, ESD-u, CA, FlowEdit, EAP) and
// write the result as a bundle that `mce generate --model DIR` and `mce eval quality --model DIR`
// load: an erased copy of the model (UCE, ESD, CA, EAP) or an inference wrapper (SLD, FlowEdit), plus
// summary.json (settings beside the published ones, time, process peak RSS, what changed).
//
//   mce baseline uce --concept "kitchen knife" --out runs/uce-knife
//   mce baseline esd-x --concept "kitchen knife, dagger" --out runs/esd-x-blades   (erased together)
import { join } from 'node:path';
import { numericFlags, UsageError, UserError, type Command } from './command.js';

const METHODS = ['uce', 'sld', 'esd-x', 'esd-u', 'ca', 'flowedit', 'eap'] as const;
const PRESETS = ['WEAK', 'MEDIUM', 'STRONG', 'MAX'] as const;

export const baselineCommand: Command = {
  name: 'baseline',
  summary: `erase one or more concepts with a baseline (${METHODS.join(', ')}); writes an erased bundle or a sampling wrapper bundle (sld, flowedit) and summary.json`,
  args: '<method>',
  flags: {
    model: { type: 'string', help: 'flux-emoji, sd-emoji or a model folder', default: 'flux-emoji' },
    concept: { type: 'list', help: 'the erasure target (mce concepts --targets); several (repeat the flag or separate them by commas) are erased together' },
    neutral: { type: 'string', help: "what the concepts map to (UCE guide, CA anchor, FlowEdit); default: each target's neutral" },
    seed: { type: 'number', help: 'seed of every random choice', default: 0 },
    preset: { type: 'string', help: `SLD preset: ${PRESETS.join(', ')}`, default: 'MEDIUM' },
    iters: { type: 'number', help: 'ESD / EAP: fine-tuning iterations (default 30); CA (default 60)' },
    lr: { type: 'number', help: 'ESD / EAP: AdamW learning rate (default 3e-5); CA (default 1e-4)' },
    eta: { type: 'number', help: 'ESD / EAP: negative guidance (default 1)' },
    steps: { type: 'number', help: "sampler steps for training / capture (default: the model's)" },
    prompts: { type: 'number', help: 'CA: erase/anchor prompt pairs', default: 8 },
    out: { type: 'string', help: 'output bundle folder' },
  },
  async run(args, flags) {
    const method = args[0];
    if (!method || args.length > 1) throw new UsageError(`mce baseline: give one method: ${METHODS.join(', ')}`);
    if (!(METHODS as readonly string[]).includes(method)) throw new UsageError(`mce baseline: unknown method '${method}' (known: ${METHODS.join(', ')})`);
    const concepts = flags['concept'] as string[] | undefined;
    if (!concepts) throw new UsageError('mce baseline: --concept NAME is required');
    const out = flags['out'];
    if (typeof out !== 'string' || !out) throw new UsageError('mce baseline: --out DIR is required');
    const { int, num } = numericFlags('mce baseline', flags);
    const seed = int('seed', 0, 2 ** 31 - 1)!;
    const iters = int('iters', 1, 100000);
    const steps = int('steps', 1, 200);
    const prompts = int('prompts', 1, 1000)!;
    const lr = num('lr', 0, 10);
    const eta = num('eta', 0, 100);
    const preset = String(flags['preset']).toUpperCase();
    if (!(PRESETS as readonly string[]).includes(preset)) throw new UsageError(`mce baseline: --preset must be one of ${PRESETS.join(', ')}, got '${String(flags['preset'])}'`);

    const { erasureTarget } = await import('../world/targets.js');
    const { UnknownConceptError } = await import('../world/catalogue.js');
    let targets;
    try {
      targets = concepts.map((c) => erasureTarget(c));
    } catch (e) {
      if (e instanceof UnknownConceptError || (e as Error).name === 'UnknownConceptError') throw new UserError((e as Error).message);
      throw e;
    }
    const { useBackend } = await import('../engine/backend.js');
    const { ModelLoadError } = await import('../generate/flux-emoji.js');
    const { loadBaselineModel } = await import('../erase/baselines/load.js');
    const { runBaseline, BaselineError, writeBaselineOutput } = await import('../erase/baselines/run.js');
    const { writeFileAtomic } = await import('../io/atomic.js');
    await useBackend();
    const modelName = flags['model'] as string;
    let loaded;
    try {
      loaded = await loadBaselineModel(modelName);
    } catch (e) {
      if (e instanceof ModelLoadError) throw new UserError(e.message);
      throw e;
    }
    const sampleSteps = steps ?? loaded.defaults.steps;
    const t0 = performance.now();
    const rssBefore = process.resourceUsage().maxRSS;
    let result;
    try {
      result = await runBaseline(loaded.model, method as (typeof METHODS)[number], targets, {
        seed, steps: sampleSteps, cfg: loaded.defaults.cfg, neutral: flags['neutral'] as string | undefined,
        preset: preset as (typeof PRESETS)[number], iters, lr, eta, prompts, progress: { label: `baseline ${method}` },
      });
    } catch (e) {
      loaded.dispose();
      if (e instanceof BaselineError) throw new UserError(`${method}: ${e.message}`);
      throw e;
    }
    // Process peak RSS (a high-water mark: the loaded model and the runtime included). tf.profile's
    // tensor peak is not used: it keeps a record of every kernel and overflows on long runs.
    const rssPeak = process.resourceUsage().maxRSS;
    const seconds = (performance.now() - t0) / 1000;
    const concept = targets.map((t) => t.name).join(', ');
    const record = { method, concept, settings: result.settings, published: result.published, seed, steps: sampleSteps };
    let changed;
    try {
      changed = await writeBaselineOutput({ dir: loaded.dir, manifest: loaded.manifest, family: loaded.model.family }, result, out, record);
    } catch (e) {
      throw new UserError(`cannot write ${out}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
    } finally {
      loaded.dispose();
    }
    const summary = {
      method, concept, model: modelName, kind: result.kind === 'wrapper' ? 'inference wrapper' : 'erased bundle',
      settings: result.settings, published: result.published, seed, steps: sampleSteps,
      seconds: Number(seconds.toFixed(3)),
      peak_rss_bytes: rssPeak * 1024,
      peak_rss_before_run_bytes: rssBefore * 1024,
      changed, trained_params: result.kind === 'weights' ? result.trainedParams : 0,
      losses: result.kind === 'weights' ? result.losses ?? null : null,
      argv: ['mce', 'baseline', ...process.argv.slice(process.argv.indexOf('baseline') + 1)],
    };
    await writeFileAtomic(join(out, 'summary.json'), `${JSON.stringify(summary, null, 2)}\n`);
    process.stderr.write(`mce baseline ${method}: "${concept}" in ${seconds.toFixed(1)} s, ${changed.params} params changed (${changed.bytes} bytes) -> ${out}\n`);
    return 0;
  },
};
