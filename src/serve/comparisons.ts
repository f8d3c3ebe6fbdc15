// Original vs erased images for one prompt and seed, with the predicted x0 of every sampling step.
// Models load once and stay cached (the original per model, the erased one per run and mask file
// version); comparisons run one at a time, because sampling holds the CPU and the tensor engine's
// memory. Runs in the sampler process (sampler-process.ts); the server bounds the queue (sampler.ts).
import { statSync } from 'node:fs';
import { join } from 'node:path';
import { useBackend } from '../engine/backend.js';
import { loadMaskedModel } from '../erase/mce/masked-model.js';
import { manifestCaptionWords } from '../generate/bundle.js';
import { loadTextToImage, type RgbImage, type TextToImageModel } from '../generate/index.js';
import { encodeRgbPng } from '../io/png.js';
import { wordsOutside } from '../world/captions.js';
import { HttpError } from './http.js';

export interface CompareRequest {
  /** Run folder (with summary.json and masks.safetensors). */
  dir: string;
  /** The model the run erased from (summary.json's `model`). */
  model: string;
  prompt: string;
  seed: number;
  steps?: number;
  trajectory: boolean;
}

export interface Side {
  /** PNG as a data: URL. */
  image: string;
  /** With trajectory: the predicted x0 after each step, as data: URLs. */
  trajectory?: string[];
}

export interface Comparison {
  prompt: string;
  seed: number;
  steps: number;
  timesteps: number[];
  original: Side;
  erased: Side;
  /** The prompt's words in none of the model's training captions (empty when it does not record them). */
  unreadWords: string[];
}

export function pngDataUrl(img: RgbImage): string {
  return 'data:image/png;base64,' + Buffer.from(encodeRgbPng(img.width, img.height, img.data)).toString('base64');
}

export class Comparisons {
  private originals = new Map<string, Promise<TextToImageModel>>();
  private erased = new Map<string, Promise<TextToImageModel>>();
  private tail: Promise<unknown> = Promise.resolve();
  private waiting = 0;
  private backend: Promise<unknown> | undefined;

  /** `maxErased`: erased models kept loaded; `maxQueued`: comparisons waiting before 503. */
  constructor(private readonly opts: { maxErased: number; maxQueued: number }) {}

  private original(model: string): Promise<TextToImageModel> {
    let m = this.originals.get(model);
    if (!m) {
      m = loadTextToImage(model);
      this.originals.set(model, m);
      m.catch(() => this.originals.delete(model));
    }
    return m;
  }

  private erasedModel(model: string, dir: string): Promise<TextToImageModel> {
    const masks = join(dir, 'masks.safetensors');
    // A rerun that finishes rewrites the masks: the key changes with the file.
    const key = `${dir}\0${statSync(masks).mtimeMs}`;
    let m = this.erased.get(key);
    if (!m) {
      m = loadMaskedModel(model, masks);
      this.erased.set(key, m);
      m.catch(() => this.erased.delete(key));
      while (this.erased.size > this.opts.maxErased) {
        const [oldest, old] = this.erased.entries().next().value as [string, Promise<TextToImageModel>];
        this.erased.delete(oldest);
        void old.then((o) => o.dispose(), () => undefined);
      }
    }
    return m;
  }

  /** Queue a comparison; rejects with 503 when `maxQueued` are already waiting. */
  compare(req: CompareRequest): Promise<Comparison> {
    if (this.waiting >= this.opts.maxQueued) return Promise.reject(new HttpError(503, `busy: ${this.waiting} comparisons queued, try again`));
    this.waiting++;
    const run = this.tail.then(() => this.run(req));
    this.tail = run.catch(() => undefined).finally(() => this.waiting--);
    return run;
  }

  private async run(req: CompareRequest): Promise<Comparison> {
    let original: TextToImageModel;
    let erased: TextToImageModel;
    try {
      // The tensor engine's backend, chosen once, on first use (as the CLI commands do).
      await (this.backend ??= useBackend());
      [original, erased] = await Promise.all([this.original(req.model), this.erasedModel(req.model, req.dir)]);
    } catch (e) {
      throw new HttpError(500, `cannot load the models of this run: ${(e as Error).message.split('\n')[0]}`);
    }
    const opts = { prompt: req.prompt, seed: req.seed, steps: req.steps, n: 1, trajectory: req.trajectory };
    const a = original.generate(opts);
    const b = erased.generate(opts);
    const side = (r: typeof a): Side => ({
      image: pngDataUrl(r.images[0]!),
      ...(r.trajectory ? { trajectory: r.trajectory.map((step) => pngDataUrl(step[0]!)) } : {}),
    });
    const words = manifestCaptionWords(original.manifest);
    const unreadWords = words ? wordsOutside(words, req.prompt) : [];
    return { prompt: req.prompt, seed: a.seed, steps: a.steps, timesteps: a.timesteps, original: side(a), erased: side(b), unreadWords };
  }
}
