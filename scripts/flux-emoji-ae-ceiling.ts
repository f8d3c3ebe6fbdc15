// What the latent costs the evaluators: the emoji classifier's concept top-1 (among the model's
// concepts) and style accuracy on the real renders of a flux-emoji bundle's dataset, and on the
// same renders passed through its autoencoder (encode -> decode). The second is the ceiling a flow
// model on that latent can reach, however well it is trained. Given a quality run's images.jsonl
// (`mce eval quality --out DIR`), it also splits that run's style accuracy by whether the autoencoder
// keeps the style of the prompt's (concept, style) render: what the generator misses on its own.
// Usage: node --import tsx scripts/flux-emoji-ae-ceiling.ts [MODEL_DIR] [QUALITY_DIR/images.jsonl]
import { readFileSync } from 'node:fs';
import { useBackend } from '../src/engine/backend.js';
import { tf } from '../src/engine/tf.js';
import { loadFluxEmoji, toRgbImages, type RgbImage } from '../src/generate/flux-emoji.js';
import { evaluatorPath, loadClassifier } from '../src/eval/evaluators.js';
import { score, trainedConcepts, type Scores } from '../src/eval/quality.js';
import { datasetImages } from '../src/train/common.js';
import { buildDataset } from '../src/world/dataset.js';
import { VENDORS } from '../src/world/vendors.js';

await useBackend();
const model = await loadFluxEmoji(process.argv[2] ?? 'flux-emoji');
if (!model.ae) throw new Error('this bundle has no autoencoder (packed-pixel latent): nothing to measure');
const ae = model.ae;
const clf = await loadClassifier(evaluatorPath('classifier'));
const concepts = trainedConcepts(model.manifest as unknown as Record<string, unknown>);
const trainedIdx = Int32Array.from(concepts, (c) => clf.config.concepts.indexOf(c));
const data = buildDataset({ size: model.manifest.image_size, concepts, vendors: [...VENDORS] });
const real: RgbImage[] = Array.from({ length: data.n }, (_, r) => ({ width: data.size, height: data.size, data: data.image(r) }));
const truth = Array.from({ length: data.n }, (_, r) => concepts.indexOf(data.concepts[data.conceptIndex[r]!]!));
const styleTruth = Array.from({ length: data.n }, (_, r) => clf.config.styles.indexOf(data.vendors[data.vendorIndex[r]!]!));

/** Concept top-1 among the model's concepts and style accuracy of the renders' scores (`score`, as `mce eval quality` scores). */
function accuracy(s: Scores): { top1: number; style: number } {
  return {
    top1: truth.filter((t, i) => s.top[i * s.k] === t).length / data.n,
    style: styleTruth.filter((t, i) => s.style[i] === t).length / data.n,
  };
}

const recon: RgbImage[] = [];
for (let i0 = 0; i0 < data.n; i0 += 64) {
  const x = datasetImages(data, Array.from({ length: Math.min(64, data.n - i0) }, (_, j) => i0 + j));
  const y = ae.reconstruct(x);
  recon.push(...toRgbImages(y));
  tf.dispose([x, y]);
}
const pct = (x: number): string => `${(100 * x).toFixed(1)}%`;
const reconScores = score(clf, recon, trainedIdx);
const [asRendered, throughAe] = [accuracy(score(clf, real, trainedIdx)), accuracy(reconScores)];
console.log(`${data.n} real renders (${concepts.length} concepts x ${VENDORS.length} styles):`);
console.log(`  as rendered:          concept top-1 ${pct(asRendered.top1)}, style ${pct(asRendered.style)}`);
console.log(`  through the autoencoder: concept top-1 ${pct(throughAe.top1)}, style ${pct(throughAe.style)}`);

const imagesFile = process.argv[3];
if (imagesFile) {
  const kept = new Map<string, boolean>();
  for (let r = 0; r < data.n; r++) kept.set(`${data.concepts[data.conceptIndex[r]!]}|${data.vendors[data.vendorIndex[r]!]}`, reconScores.style[r] === styleTruth[r]);
  const rows = readFileSync(imagesFile, 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { concept: string; style: string; predictedStyle: string });
  console.log(`${imagesFile}: style accuracy of its ${rows.length} generated images`);
  for (const keep of [true, false]) {
    const part = rows.filter((x) => kept.get(`${x.concept}|${x.style}`) === keep);
    const hits = part.filter((x) => x.predictedStyle === x.style).length;
    console.log(`  where the autoencoder ${keep ? 'keeps' : 'loses'} the render's style: ${part.length} images, ${pct(part.length ? hits / part.length : 0)}`);
  }
}
model.dispose();
