// A model bundle with an MCE mask file applied, as an ordinary TextToImageModel (for
// `mce generate --masks M`): the keep-masks scale the weights they feed, in memory, by the same fold
// plans `mce apply-masks` streams through a checkpoint (FLUX: apply.ts foldPlan; UNet: apply-unet.ts),
// so the family's own generator samples the erased model and the images equal those of the folded
// checkpoint. No file is written.
import { tf, type Tensor } from '../../engine/tf.js';
import { readManifest } from '../../generate/bundle.js';
import {
  FLUX_EMOJI_FORMAT, ModelLoadError, generate as fluxGenerate, loadFluxEmoji, type GenerateOptions, type GenerateResult,
} from '../../generate/flux-emoji.js';
import type { TextToImageModel } from '../../generate/index.js';
import { SD_EMOJI_FORMAT, generateSd, loadSdEmoji } from '../../generate/sd-emoji.js';
import { foldPlan, type FoldOp } from './apply.js';
import { unetFoldPlan } from './apply-unet.js';
import { loadMasks, MaskFileError } from './maskfile.js';
import { binarize, type Binarize, type HostMasks } from './masks.js';

export interface MaskedModelOptions {
  /** Binarise the stored logits by this rule instead of using the stored keep-masks. */
  binarize?: Binarize;
}

/** Weights with fold ops applied: new tensors for the changed ones (listed in `made`), the others as they are. */
export function foldIntoTensors(weights: Readonly<Record<string, Tensor>>, ops: readonly FoldOp[]): { weights: Record<string, Tensor>; made: Tensor[] } {
  const out: Record<string, Tensor> = { ...weights };
  const made = new Set<Tensor>();
  for (const o of ops) {
    if (o.scale.every((v) => v === 1)) continue; // keeps every unit: nothing to scale
    const w = out[o.tensor];
    if (!w) throw new MaskFileError(`the masks need weight '${o.tensor}', which the model does not have`);
    // The scale runs along axis o.axis and broadcasts over the others.
    const shape = w.shape.map((_, i) => (i === o.axis ? o.scale.length : 1));
    const next = tf.tidy(() => tf.mul(w, tf.tensor(o.scale, shape)));
    if (made.delete(w)) w.dispose();
    made.add(next);
    out[o.tensor] = next;
  }
  return { weights: out, made: [...made] };
}

/** The keep-masks of a mask file: the stored ones, or its logits binarised by `rule` (or at 0 when it stores none). */
export async function keepMasks(path: string, cfg: Parameters<typeof loadMasks>[1], rule?: Binarize): Promise<HostMasks> {
  const mf = await loadMasks(path, cfg);
  if (rule && Object.keys(mf.logits).length === 0) throw new MaskFileError(`${path}: stores keep-masks only (a merge of runs has no logits), so there is nothing to binarise; leave out --binarize`);
  const keep = rule || Object.keys(mf.keep).length === 0 ? binarize(mf.logits, rule ?? { kind: 'threshold', threshold: 0 }) : mf.keep;
  if (Object.keys(keep).length === 0) throw new MaskFileError(`${path}: no masks in the file`);
  return keep;
}

/**
 * Load a shipped model or bundle folder with the masks of `masksPath` applied. Masks that do not
 * belong to the model (other family, other size) are one MaskFileError line.
 */
export async function loadMaskedModel(nameOrPath: string, masksPath: string, opts: MaskedModelOptions = {}): Promise<TextToImageModel> {
  const format = String(readManifest(nameOrPath).manifest['format']);
  if (format === FLUX_EMOJI_FORMAT) {
    return withFolded(await loadFluxEmoji(nameOrPath), 'flow', fluxGenerate, async (m) => foldPlan(m.cfg, await keepMasks(masksPath, m.cfg, opts.binarize)));
  }
  if (format === SD_EMOJI_FORMAT) {
    return withFolded(await loadSdEmoji(nameOrPath), 'diffusion', generateSd, async (m) => {
      const shapes = new Map(Object.entries(m.weights).map(([n, t]) => [n, t.shape]));
      return unetFoldPlan(shapes, await keepMasks(masksPath, { unet: m.cfg }, opts.binarize));
    });
  }
  throw new ModelLoadError(`${nameOrPath}: masks apply to ${FLUX_EMOJI_FORMAT} and ${SD_EMOJI_FORMAT} bundles, this one is '${format}'`);
}

/** What withFolded needs of a loaded family model. */
interface LoadedBundle {
  dir: string;
  manifest: { name: string; image_size: number; sampling: { steps: number; cfg: number } } & Record<string, unknown>;
  weights: Record<string, Tensor>;
  dispose(): void;
}

/** A loaded model with `plan` folded into its weights, as a TextToImageModel sampled by the family's `generate`. */
async function withFolded<M extends LoadedBundle>(
  m: M,
  family: TextToImageModel['family'],
  generate: (m: M, o: GenerateOptions) => GenerateResult,
  plan: (m: M) => Promise<FoldOp[]>,
): Promise<TextToImageModel> {
  try {
    const f = foldIntoTensors(m.weights, await plan(m));
    const masked = { ...m, weights: f.weights };
    return {
      name: m.manifest.name, family, dir: m.dir, manifest: m.manifest, imageSize: m.manifest.image_size,
      defaults: { steps: m.manifest.sampling.steps, cfg: m.manifest.sampling.cfg },
      generate: (o) => generate(masked, o),
      dispose: () => {
        tf.dispose(f.made);
        m.dispose();
      },
    };
  } catch (e) {
    m.dispose();
    throw e;
  }
}
