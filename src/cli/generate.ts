// `mce generate`: text to image with a shipped model (flux-emoji, sd-emoji) or a model folder, any
// family (generate/index.ts loadTextToImage picks the loader from the manifest's format).
import { writePng } from '../io/png.js';
import { UsageError, UserError, type Command } from './command.js';

export const generateCommand: Command = {
  name: 'generate',
  summary: 'generate images from a text prompt (flux-emoji, sd-emoji or a model folder); same seed and flags, same bytes',
  flags: {
    model: { type: 'string', help: 'flux-emoji, sd-emoji, or the path of a model folder (with manifest.json)', default: 'flux-emoji' },
    prompt: { type: 'string', help: 'the text prompt' },
    seed: { type: 'number', help: 'noise seed', default: 0 },
    steps: { type: 'number', help: "sampling steps: Euler steps for flux-emoji, DDIM steps for sd-emoji (default: the model's)" },
    cfg: { type: 'number', help: "classifier-free guidance scale, 1 = off (default: the model's)" },
    n: { type: 'number', help: 'number of images; more than 1 writes a grid', default: 1 },
    out: { type: 'string', help: 'output PNG file', default: 'out.png' },
    masks: { type: 'string', help: 'masks.safetensors from mce erase: sample the erased model without folding the masks into its weights' },
    trajectory: { type: 'boolean', help: 'also write FILE.trajectory.png: the predicted x0 at every step' },
  },
  async run(args, flags) {
    if (args.length) throw new UsageError(`mce generate: unexpected argument '${args[0]}' (the prompt goes in --prompt)`);
    const prompt = flags['prompt'];
    if (typeof prompt !== 'string') throw new UsageError('mce generate: --prompt TEXT is required');
    const int = (name: string, lo: number, hi: number): number | undefined => {
      const v = flags[name];
      if (v === undefined) return undefined;
      if (typeof v !== 'number' || !Number.isInteger(v) || v < lo || v > hi) throw new UsageError(`mce generate: --${name} must be an integer in [${lo}, ${hi}], got ${String(v)}`);
      return v;
    };
    const seed = int('seed', 0, 2 ** 32 - 1)!;
    const steps = int('steps', 1, 200);
    const n = int('n', 1, 64)!;
    const cfg = flags['cfg'] as number | undefined;
    if (cfg !== undefined && !(cfg >= 0 && cfg <= 50)) throw new UsageError(`mce generate: --cfg must be in [0, 50], got ${cfg}`);
    const out = flags['out'] as string;
    if (!out.toLowerCase().endsWith('.png')) throw new UsageError(`mce generate: --out must name a .png file, got '${out}'`);
    const modelName = flags['model'] as string;

    const { useBackend } = await import('../engine/backend.js');
    const gen = await import('../generate/index.js');
    await useBackend();
    let model;
    const masksPath = flags['masks'] as string | undefined;
    const { MaskFileError } = await import('../erase/mce/maskfile.js');
    try {
      model = masksPath === undefined ? await gen.loadTextToImage(modelName) : await (await import('../erase/mce/masked-model.js')).loadMaskedModel(modelName, masksPath);
    } catch (e) {
      if (e instanceof MaskFileError) throw new UserError((e as Error).message);
      if (e instanceof gen.ModelLoadError) {
        const known = gen.SHIPPED_MODELS.join(', ');
        throw new UserError(`${(e as Error).message}${modelName.includes('/') ? '' : ` (shipped models: ${known})`}`);
      }
      throw e;
    }
    const t0 = performance.now();
    const res = model.generate({ prompt, seed, steps, cfg, n, trajectory: Boolean(flags['trajectory']) });
    const ms = performance.now() - t0;
    const img = n === 1 ? res.images[0]! : gen.squareGrid(res.images);
    try {
      await writePng(out, { width: img.width, height: img.height, channels: 3, data: img.data });
      if (res.trajectory) {
        const strip = gen.imageGrid(res.images.map((_, i) => res.trajectory!.map((step) => step[i]!)));
        await writePng(out.replace(/\.png$/i, '.trajectory.png'), { width: strip.width, height: strip.height, channels: 3, data: strip.data });
      }
    } catch (e) {
      throw new UserError(`cannot write ${out}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
    }
    model.dispose();
    process.stderr.write(`mce generate: ${n} image(s), ${res.steps} steps, cfg ${res.cfg}, seed ${seed}, ${(ms / 1000).toFixed(2)} s -> ${out}\n`);
    return 0;
  },
};
