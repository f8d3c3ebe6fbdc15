// Text-to-image models behind one interface, whatever their family: `mce generate`, `mce eval` and
// the erasure code ask for a model by name or folder and get a TextToImageModel. The manifest's
// `format` picks the family; each family's loader lives in its own file (flux-emoji.ts, sd-emoji.ts).
import {
  FLUX_EMOJI_FORMAT, generate as fluxGenerate, loadFluxEmoji, ModelLoadError, SHIPPED_MODEL_NAMES,
  type GenerateOptions, type GenerateResult,
} from './flux-emoji.js';
import { readManifest } from './bundle.js';
import { generateSd, loadSdEmoji, SD_EMOJI_FORMAT } from './sd-emoji.js';

export { readManifest } from './bundle.js';

export { imageGrid, squareGrid, ModelLoadError, type GenerateOptions, type GenerateResult, type RgbImage } from './flux-emoji.js';

/** Names `--model` accepts besides a path (each is a folder under models/). */
export const SHIPPED_MODELS = SHIPPED_MODEL_NAMES;

export interface TextToImageModel {
  /** The manifest's name (e.g. 'flux-emoji'). */
  name: string;
  /** 'flow' (FLUX, Euler) or 'diffusion' (UNet, DDIM). */
  family: 'flow' | 'diffusion';
  /** The bundle folder. */
  dir: string;
  /** The parsed manifest.json. */
  manifest: Record<string, unknown>;
  /** Output images are imageSize x imageSize RGB. */
  imageSize: number;
  /** Sampling defaults from the manifest. */
  defaults: { steps: number; cfg: number };
  /** n images for one prompt; image k of a call uses noise seeded by mixSeed(seed, (opts.first ?? 0) + k). */
  generate(opts: GenerateOptions): GenerateResult;
  dispose(): void;
}

/** Load any shipped model or bundle folder. */
export async function loadTextToImage(nameOrPath: string): Promise<TextToImageModel> {
  const { manifest } = readManifest(nameOrPath);
  // A wrapper bundle (erase/baselines: SLD) samples through its wrapper (wrapped.ts).
  if (manifest['wrapper'] !== undefined) return (await import('./wrapped.js')).loadWrapped(nameOrPath);
  const format = String(manifest['format']);
  if (format === FLUX_EMOJI_FORMAT) {
    const m = await loadFluxEmoji(nameOrPath);
    return bundleModel('flow', m, (opts) => fluxGenerate(m, opts));
  }
  if (format === SD_EMOJI_FORMAT) {
    const m = await loadSdEmoji(nameOrPath);
    return bundleModel('diffusion', m, (opts) => generateSd(m, opts));
  }
  throw new ModelLoadError(`${nameOrPath}: unknown model format '${format}' (known: ${FLUX_EMOJI_FORMAT}, ${SD_EMOJI_FORMAT})`);
}

/** A loaded bundle of either family as a TextToImageModel. */
function bundleModel(
  family: TextToImageModel['family'],
  m: { dir: string; manifest: { name: string; image_size: number; sampling: { steps: number; cfg: number } }; dispose(): void },
  generate: TextToImageModel['generate'],
): TextToImageModel {
  return {
    name: m.manifest.name,
    family,
    dir: m.dir,
    manifest: m.manifest as unknown as Record<string, unknown>,
    imageSize: m.manifest.image_size,
    defaults: { steps: m.manifest.sampling.steps, cfg: m.manifest.sampling.cfg },
    generate,
    dispose: () => m.dispose(),
  };
}
