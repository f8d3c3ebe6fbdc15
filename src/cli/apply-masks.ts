// `mce apply-masks --weights W --masks M --out OUT`: fold binary masks into a checkpoint, streaming
// tensor by tensor, any float dtype. FLUX masks into a FLUX transformer (reference or diffusers
// names): pruned FFN units' rows and columns zeroed, pruned heads' output-projection columns
// zeroed, pruned modulation channels dropped (rows of txt_mod.lin zeroed). UNet masks (from an
// sd-emoji run) into a diffusers UNet (e.g. a bundle's unet.safetensors): the rows of to_q / to_k /
// to_v / to_out.0 and the columns of to_out.0 (heads) and ff.net.2 (FFN units). The result
// generates what the masked model does.
import { UsageError, UserError, type Command } from './command.js';

export const applyMasksCommand: Command = {
  name: 'apply-masks',
  summary: 'fold MCE masks into FLUX or UNet weights (streaming; reference or diffusers names)',
  flags: {
    weights: { type: 'string', help: 'input .safetensors: a FLUX transformer, or a diffusers UNet for masks from an sd-emoji run' },
    masks: { type: 'string', help: 'masks.safetensors from mce erase or mce merge-masks, or an erase run folder (keep-masks; or logits binarised at --threshold)' },
    out: { type: 'string', help: 'output .safetensors' },
    threshold: { type: 'number', help: 'binarise logits at this threshold when the file has no keep-masks, or with --from-logits', default: 0 },
    'from-logits': { type: 'boolean', help: 'binarise the logits at --threshold instead of using the stored keep-masks' },
  },
  async run(args, flags) {
    if (args.length) throw new UsageError(`mce apply-masks: unexpected argument '${args[0]}'`);
    for (const f of ['weights', 'masks', 'out']) {
      if (typeof flags[f] !== 'string' || !flags[f]) throw new UsageError(`mce apply-masks: --${f} is required`);
    }
    const weights = flags['weights'] as string;
    const out = flags['out'] as string;
    if (!out.endsWith('.safetensors')) throw new UsageError(`mce apply-masks: --out must name a .safetensors file, got '${out}'`);
    const { loadMasks, MaskFileError } = await import('../erase/mce/maskfile.js');
    const { binarize } = await import('../erase/mce/masks.js');
    const { applyMasksToFile, ApplyMasksError } = await import('../erase/mce/apply.js');
    const { SafetensorsError } = await import('../io/safetensors.js');
    try {
      const mf = await loadMasks(flags['masks'] as string);
      const useLogits = flags['from-logits'] === true || Object.keys(mf.keep).length === 0;
      const keep = useLogits ? binarize(mf.logits, { kind: 'threshold', threshold: flags['threshold'] as number }) : mf.keep;
      if (Object.keys(keep).length === 0) throw new UserError(`${String(flags['masks'])}: no masks in the file`);
      const t0 = performance.now();
      const { Progress } = await import('../train/progress.js');
      let bar: InstanceType<typeof Progress> | undefined;
      const r = await applyMasksToFile(weights, keep, out, { mce_masks: String(flags['masks']) }, (done, total) => {
        bar ??= new Progress({ total, label: 'apply-masks' });
        bar.update(done);
      });
      bar?.finish();
      let pruned = 0;
      let units = 0;
      for (const m of Object.values(keep)) for (const v of m) { units++; if (v === 0) pruned++; }
      process.stderr.write(`mce apply-masks: ${r.naming} names${r.prefix ? ` (prefix ${r.prefix})` : ''}, ${r.changed}/${r.tensors} tensors changed, ${pruned}/${units} units pruned, ${((performance.now() - t0) / 1000).toFixed(2)} s -> ${out}\n`);
      return 0;
    } catch (e) {
      if (e instanceof MaskFileError || e instanceof ApplyMasksError || e instanceof SafetensorsError) throw new UserError((e as Error).message);
      throw e;
    }
  },
};
