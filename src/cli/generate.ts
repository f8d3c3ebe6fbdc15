// `mce generate`: text to image with a shipped model (flux-emoji, sd-emoji) or a model folder, any
// family (generate/index.ts loadTextToImage picks the loader from the manifest's format).
// `--n K --shard I/N` makes only shard I's images (generate/shard.ts); `mce generate merge` joins
// the shard folders into the image the unsharded run writes, byte for byte.
//
//   mce generate --prompt "a bomb" --n 16 --shard 2/4 --out bomb.png   -> bomb.shard-2-of-4/
//   mce generate merge bomb.shard-*-of-4 --out bomb.png
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { RgbImage } from '../generate/index.js';
import { writePng } from '../io/png.js';
import { numericFlags, UsageError, UserError, type Command, type FlagValues } from './command.js';
import { parseShard } from './shard-flag.js';
import { BINARIZE_HELP, binarizeFlag } from './binarize-flag.js';
import { CFG_INTERVAL_HELP, cfgIntervalFlag } from './cfg-interval-flag.js';

export const generateCommand: Command = {
  name: 'generate',
  summary: 'generate images from a text prompt (flux-emoji, sd-emoji or a model folder); same seed and flags, same bytes; `generate merge DIR...` joins shards',
  args: '[merge SHARD_DIR...]',
  flags: {
    model: { type: 'string', help: 'flux-emoji, sd-emoji, or the path of a model folder (with manifest.json)', default: 'flux-emoji' },
    prompt: { type: 'string', help: 'the text prompt' },
    seed: { type: 'number', help: 'noise seed', default: 0 },
    steps: { type: 'number', help: "sampling steps: Euler steps for flux-emoji, DDIM steps for sd-emoji (default: the model's)" },
    cfg: { type: 'number', help: "classifier-free guidance scale, 1 = off (default: the model's)" },
    'cfg-interval': { type: 'string', help: CFG_INTERVAL_HELP },
    n: { type: 'number', help: 'number of images; more than 1 writes a grid', default: 1 },
    out: { type: 'string', help: 'output PNG file', default: 'out.png' },
    masks: { type: 'string', help: 'masks.safetensors from mce erase or mce merge-masks, or an erase run folder: sample the erased model without folding the masks into its weights' },
    binarize: { type: 'string', help: `with --masks: ${BINARIZE_HELP}` },
    trajectory: { type: 'boolean', help: 'also write FILE.trajectory.png: the predicted x0 at every step' },
    shard: { type: 'string', help: 'make only shard I of N of the --n images (1-based, e.g. 2/4), as PNGs in FILE.shard-I-of-N/; join with mce generate merge' },
  },
  async run(args, flags) {
    if (args[0] === 'merge') return merge(args.slice(1), flags);
    if (args.length) throw new UsageError(`mce generate: unexpected argument '${args[0]}' (the prompt goes in --prompt)`);
    const prompt = flags['prompt'];
    if (typeof prompt !== 'string') throw new UsageError('mce generate: --prompt TEXT is required');
    const { int, num } = numericFlags('mce generate', flags);
    const seed = int('seed', 0, 2 ** 32 - 1)!;
    const steps = int('steps', 1, 200);
    const n = int('n', 1, 64)!;
    const cfg = num('cfg', 0, 50);
    const cfgInterval = cfgIntervalFlag('mce generate', flags);
    const out = flags['out'] as string;
    if (!out.toLowerCase().endsWith('.png')) throw new UsageError(`mce generate: --out must name a .png file, got '${out}'`);
    const modelName = flags['model'] as string;
    const shard = parseShard('mce generate', flags['shard']);
    if (shard && flags['trajectory']) throw new UsageError('mce generate: --trajectory does not combine with --shard');

    const { useBackend } = await import('../engine/backend.js');
    const gen = await import('../generate/index.js');
    await useBackend();
    let model;
    const masksPath = flags['masks'] as string | undefined;
    if (flags['binarize'] !== undefined && masksPath === undefined) throw new UsageError('mce generate: --binarize needs --masks');
    const binarize = await binarizeFlag('mce generate', flags);
    const { MaskFileError, maskFilePath } = await import('../erase/mce/maskfile.js');
    try {
      model = masksPath === undefined ? await gen.loadTextToImage(modelName) : await (await import('../erase/mce/masked-model.js')).loadMaskedModel(modelName, masksPath, { binarize });
    } catch (e) {
      if (e instanceof MaskFileError) throw new UserError((e as Error).message);
      if (e instanceof gen.ModelLoadError) {
        const known = gen.SHIPPED_MODELS.join(', ');
        throw new UserError(`${(e as Error).message}${modelName.includes('/') ? '' : ` (shipped models: ${known})`}`);
      }
      throw e;
    }
    await noteUnreadWords(model.manifest, model.name, prompt);
    const sweep = await import('../generate/shard.js');
    const t0 = performance.now();
    const opts = { prompt, seed, steps, cfg, cfgInterval, trajectory: Boolean(flags['trajectory']) };
    // (JSON leaves out an unset cfgInterval, so earlier shard folders keep their settings.)
    const used = { steps: steps ?? model.defaults.steps, cfg: cfg ?? model.defaults.cfg, cfgInterval };
    if (shard) {
      const dir = sweep.shardFolder(out, shard.i, shard.n);
      const sha = (file: string): string => createHash('sha256').update(readFileSync(file)).digest('hex');
      const settings = { prompt, seed, ...used, n, model: { name: model.name, manifest: sha(join(model.dir, 'manifest.json')) }, masks: masksPath === undefined ? null : sha(maskFilePath(masksPath)), ...(binarize ? { binarize } : {}) };
      const batches = sweep.sweepBatches(n, shard.i, shard.n);
      let made = 0;
      try {
        sweep.claimShardFolder(dir, settings);
        const todo = batches.filter((b) => !sweep.batchDone(dir, b));
        const { Progress } = await import('../train/progress.js');
        const todoImages = todo.reduce((a, b) => a + b.n, 0);
        const bar = todo.length > 1 ? new Progress({ total: todoImages, label: `generate shard ${shard.i + 1}/${shard.n}` }) : undefined;
        sweep.generateBatches(model.generate, opts, todo, (b, images) => {
          sweep.writeShardImages(dir, b.first, images);
          made += images.length;
          bar?.update(made);
        });
        bar?.finish();
      } catch (e) {
        throw new UserError((e as Error).message.split('\n')[0]!);
      } finally {
        model.dispose();
      }
      const mine = batches.reduce((a, b) => a + b.n, 0);
      process.stderr.write(`mce generate: shard ${shard.i + 1}/${shard.n}: ${made} of its ${mine} image(s) made (${mine - made} already there), ${((performance.now() - t0) / 1000).toFixed(2)} s -> ${dir}; join with: mce generate merge DIR... --out ${out}\n`);
      return 0;
    }
    const images: RgbImage[] = [];
    const trajectories: RgbImage[][] = [];
    const batches = sweep.sweepBatches(n);
    // One batch is one short call; more get a progress bar (sd-emoji: about 2 s an image here).
    const { Progress } = await import('../train/progress.js');
    const bar = batches.length > 1 ? new Progress({ total: n, label: 'generate' }) : undefined;
    sweep.generateBatches(model.generate, opts, batches, (_, imgs, traj) => {
      images.push(...imgs);
      if (traj) trajectories.push(...imgs.map((_, i) => traj.map((step) => step[i]!)));
      bar?.update(images.length);
    });
    bar?.finish();
    const ms = performance.now() - t0;
    const img = n === 1 ? images[0]! : gen.squareGrid(images);
    try {
      await writePng(out, { width: img.width, height: img.height, channels: 3, data: img.data });
      if (trajectories.length) {
        const strip = gen.imageGrid(trajectories);
        await writePng(out.replace(/\.png$/i, '.trajectory.png'), { width: strip.width, height: strip.height, channels: 3, data: strip.data });
      }
    } catch (e) {
      throw new UserError(`cannot write ${out}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
    }
    model.dispose();
    const { formatGuidanceInterval } = await import('../sampling/guidance.js');
    process.stderr.write(`mce generate: ${n} image(s), ${used.steps} steps, cfg ${used.cfg}${formatGuidanceInterval(cfgInterval)}, seed ${seed}, ${(ms / 1000).toFixed(2)} s -> ${out}\n`);
    return 0;
  },
};

/**
 * A model trained by mce on emoji-world records every word of its training captions
 * (manifest `dataset.caption_words`). Its text encoder was trained from scratch, so a prompt word
 * outside them ("a hocho") means nothing to it; say so rather than let the image puzzle the user.
 */
async function noteUnreadWords(manifest: Record<string, unknown>, name: string, prompt: string): Promise<void> {
  const { manifestCaptionWords } = await import('../generate/bundle.js');
  const vocabulary = manifestCaptionWords(manifest);
  if (!vocabulary) return;
  const { wordsOutside } = await import('../world/captions.js');
  const unread = wordsOutside(vocabulary, prompt);
  if (!unread.length) return;
  const list = unread.map((w) => `"${w}"`).join(', ');
  process.stderr.write(`mce generate: note: ${list} ${unread.length === 1 ? 'is' : 'are'} in none of ${name}'s training captions; its text encoder, trained from scratch, has never read ${unread.length === 1 ? 'it' : 'them'}\n`);
}

/** `mce generate merge DIR... --out FILE.png`: the unsharded run's image from its shard folders. */
async function merge(dirs: string[], flags: FlagValues): Promise<number> {
  if (!dirs.length) throw new UsageError('mce generate merge: give the shard folders (mce generate merge DIR... --out FILE.png)');
  const out = flags['out'] as string;
  if (!out.toLowerCase().endsWith('.png')) throw new UsageError(`mce generate merge: --out must name a .png file, got '${out}'`);
  const { mergeShards } = await import('../generate/shard.js');
  let r;
  try {
    r = mergeShards(dirs);
  } catch (e) {
    throw new UserError((e as Error).message.split('\n')[0]!);
  }
  try {
    await writePng(out, { ...r.image, channels: 3 });
  } catch (e) {
    throw new UserError(`cannot write ${out}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
  process.stderr.write(`mce generate merge: ${r.settings.n} image(s) from ${dirs.length} folders -> ${out}\n`);
  return 0;
}
