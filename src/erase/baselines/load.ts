// A model bundle (flux-emoji, sd-emoji or a folder) loaded as the baselines' family view, with its
// sampling defaults and what writing an erased bundle needs (folder, manifest).
import { readManifest } from '../../generate/bundle.js';
import { FLUX_EMOJI_FORMAT, ModelLoadError, loadFluxEmoji } from '../../generate/flux-emoji.js';
import { SD_EMOJI_FORMAT, loadSdEmoji } from '../../generate/sd-emoji.js';
import { fluxBaselineModel, unetBaselineModel, type BaselineModel } from './family.js';

export interface LoadedBaselineModel {
  model: BaselineModel;
  dir: string;
  manifest: Record<string, unknown>;
  defaults: { steps: number; cfg: number };
  dispose(): void;
}

/** `wrappers: 'base'` loads a wrapper bundle's unchanged weights (its base model) instead of refusing it. */
export async function loadBaselineModel(nameOrPath: string, opts: { wrappers?: 'refuse' | 'base' } = {}): Promise<LoadedBaselineModel> {
  const { manifest } = readManifest(nameOrPath);
  if (manifest['wrapper'] !== undefined && opts.wrappers !== 'base') throw new ModelLoadError(`${nameOrPath}: an inference wrapper bundle (erase from its base model instead)`);
  const format = String(manifest['format']);
  if (format === FLUX_EMOJI_FORMAT) {
    const m = await loadFluxEmoji(nameOrPath);
    const parts = { weights: m.weights, encode: (p: readonly string[]) => m.text.encode(p), eot: (p: string) => m.text.tokenizer.one(p).eot, latent: m.manifest.latent.shape, text: m.text };
    return {
      model: fluxBaselineModel(m.cfg, parts, { shift: m.manifest.sampling.shift }),
      dir: m.dir, manifest: m.manifest, defaults: { steps: m.manifest.sampling.steps, cfg: m.manifest.sampling.cfg }, dispose: () => m.dispose(),
    };
  }
  if (format === SD_EMOJI_FORMAT) {
    const m = await loadSdEmoji(nameOrPath);
    const parts = { weights: m.weights, encode: (p: readonly string[]) => m.text.encode(p), eot: (p: string) => m.text.tokenizer.one(p).eot, latent: m.manifest.latent.shape, text: m.text };
    return {
      model: unetBaselineModel(m.cfg, parts),
      dir: m.dir, manifest: m.manifest, defaults: { steps: m.manifest.sampling.steps, cfg: m.manifest.sampling.cfg }, dispose: () => m.dispose(),
    };
  }
  throw new ModelLoadError(`${nameOrPath}: unknown model format '${format}' (known: ${FLUX_EMOJI_FORMAT}, ${SD_EMOJI_FORMAT})`);
}
