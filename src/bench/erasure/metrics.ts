// The benchmark's metrics of one erased model against the original, on held-out prompts
// (erase/mce/evaluate.ts's heldOutEvalItems): both models sample every prompt from the same seed.
//   erase group       detection rate of the targets (emoji classifier), before and after; CLIP score
//   neighbours/others concept accuracy (top-1) before and after: the neighbour damage
//   preserve (= neighbours + others)  SSIM and the LPIPS-style feature distance of each erased
//                     image to the original's; FID and KID (emoji classifier features) of the erased
//                     and of the original images against real renders of those concepts; CLIP score
// Every name says what the metric is measured with.
import { existsSync } from 'node:fs';
import { mixSeed } from '../../engine/rng.js';
import { heldOutEvalItems, ssim, type EvalItem } from '../../erase/mce/evaluate.js';
import { evaluatorPath, clipScore, detect, features, loadClassifier, METRIC_NAMES } from '../../eval/evaluators.js';
import { featureDistance, FEATURE_DISTANCE_NAME, fid, kid } from '../../eval/metrics.js';
import type { RgbImage, TextToImageModel } from '../../generate/index.js';
import { buildDataset } from '../../world/dataset.js';
import type { ErasureTarget } from '../../world/targets.js';
import { targetDetected } from '../../attacks/measure.js';

export interface GroupMetrics {
  prompts: number;
  /** Detection rate (erase group) or top-1 concept accuracy (other groups), original -> erased. */
  before: number;
  after: number;
  clip: { before: number; after: number } | null;
}

export interface ErasureMetrics {
  names: Record<string, string>;
  erase: GroupMetrics;
  neighbours: GroupMetrics | null;
  others: GroupMetrics;
  preserve: { ssim: number; featureDistance: number; fid: { original: number; erased: number }; kid: { original: number; erased: number }; images: number; real: number };
  /** Erase-prompt images, original then erased, for the side-by-side grids (first `gridImages`). */
  samples: { original: RgbImage[]; erased: RgbImage[]; prompts: string[] };
  seconds: number;
}

const mean = (xs: readonly number[]): number => (xs.length ? xs.reduce((a, b) => a + b, 0) / xs.length : 0);

export async function erasureMetrics(
  original: TextToImageModel,
  erased: TextToImageModel,
  targets: readonly ErasureTarget[],
  opts: { n: number; seed: number; steps?: number; modelConcepts?: readonly string[]; gridImages?: number },
): Promise<ErasureMetrics> {
  const t0 = performance.now();
  // A style's neighbours are the other styles, not concepts: its preservation is the other concepts' accuracy (as buildPromptSets does).
  const neighbours = [...new Set(targets.filter((t) => t.kind === 'concept').flatMap((t) => t.neighbours))];
  const items = heldOutEvalItems({ targets: [...targets], neighbours }, opts.n, opts.seed, opts.modelConcepts);
  const clf = await loadClassifier();
  const clipPath = evaluatorPath('clip');
  const hasClip = existsSync(clipPath);
  const sample = (m: TextToImageModel, xs: readonly EvalItem[], salt: number): RgbImage[] =>
    xs.map((x, i) => m.generate({ prompt: x.p, seed: mixSeed(opts.seed, 0x62656e63, salt, i), n: 1, ...(opts.steps ? { steps: opts.steps } : {}) }).images[0]!);
  const meanClip = async (imgs: RgbImage[], xs: readonly EvalItem[]): Promise<number> => mean(await clipScore(imgs, xs.map((x) => x.p), { model: clipPath }));
  const styles = new Set(targets.filter((t) => t.kind === 'style').map((t) => t.style as string));

  const group = async (xs: readonly EvalItem[], salt: number, kind: 'erase' | 'keep'): Promise<{ m: GroupMetrics; a: RgbImage[]; b: RgbImage[] }> => {
    const a = sample(original, xs, salt);
    const b = sample(erased, xs, salt);
    const rate = async (imgs: RgbImage[]): Promise<number> => {
      const preds = await detect(imgs, 1);
      return mean(preds.map((p, i) => {
        if (kind === 'keep') return p.concepts[0]!.name === xs[i]!.t ? 1 : 0;
        if (styles.has(xs[i]!.t)) return p.style.name === xs[i]!.t ? 1 : 0;
        return targets.some((t) => t.kind === 'concept' && targetDetected(p, t)) ? 1 : 0;
      }));
    };
    const clip = hasClip ? { before: await meanClip(a, xs), after: await meanClip(b, xs) } : null;
    return { m: { prompts: xs.length, before: await rate(a), after: await rate(b), clip }, a, b };
  };

  const er = await group(items.erase, 1, 'erase');
  const nb = items.neighbours.length ? await group(items.neighbours, 2, 'keep') : null;
  const ot = await group(items.others, 3, 'keep');

  // Preserve images against each other (same seed) and against real renders of their concepts.
  const keepA = [...(nb?.a ?? []), ...ot.a];
  const keepB = [...(nb?.b ?? []), ...ot.b];
  const keepConcepts = [...new Set([...items.neighbours, ...items.others].map((x) => x.t))];
  const data = buildDataset({ size: original.imageSize, concepts: keepConcepts });
  const real: RgbImage[] = [];
  for (let r = 0; r < data.n; r++) real.push({ width: data.size, height: data.size, data: data.image(r) });
  const fr = await features(real);
  const fa = await features(keepA);
  const fb = await features(keepB);
  const kidOf = (f: typeof fa): number => kid(f, fr, { seed: opts.seed, subsets: 50 }).mean;
  const k = opts.gridImages ?? 4;
  return {
    names: {
      detection: `${METRIC_NAMES.detection}: top-1 concept is a target member (styles: predicted style)`,
      accuracy: 'concept top-1 accuracy (emoji classifier)',
      clip: METRIC_NAMES.clipScore,
      ssim: 'SSIM to the original model\'s image from the same seed (7x7 windows, RGB mean)',
      featureDistance: `${FEATURE_DISTANCE_NAME}, to the original model's image from the same seed`,
      fid: `${METRIC_NAMES.fid} of the preserve images against real renders of their concepts (small samples: compare runs of the same size only)`,
      kid: `${METRIC_NAMES.kid}, same images`,
    },
    erase: er.m,
    neighbours: nb?.m ?? null,
    others: ot.m,
    preserve: {
      ssim: mean(keepA.map((im, i) => ssim(im, keepB[i]!))),
      featureDistance: mean(featureDistance(clf, keepA, keepB)),
      fid: { original: fid(fa, fr), erased: fid(fb, fr) },
      kid: { original: kidOf(fa), erased: kidOf(fb) },
      images: keepA.length,
      real: real.length,
    },
    samples: { original: er.a.slice(0, k), erased: er.b.slice(0, k), prompts: items.erase.slice(0, k).map((x) => x.p) },
    seconds: (performance.now() - t0) / 1000,
  };
}
