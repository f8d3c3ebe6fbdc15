// What the latent costs the evaluators: the emoji classifier's concept top-1 (among the model's
// concepts) on the real renders of a flux-emoji bundle's dataset, and on the same renders passed
// through its autoencoder (encode -> decode). The second is the ceiling a flow model on that latent
// can reach, however well it is trained.
// Usage: node --import tsx scripts/flux-emoji-ae-ceiling.ts [MODEL_DIR]
import { useBackend } from '../src/engine/backend.js';
import { tf } from '../src/engine/tf.js';
import { loadFluxEmoji, toRgbImages, type RgbImage } from '../src/generate/flux-emoji.js';
import { evaluatorPath, loadClassifier } from '../src/eval/evaluators.js';
import { trainedConcepts } from '../src/eval/quality.js';
import { imagesToInput } from '../src/models/classifier/images.js';
import { buildDataset } from '../src/world/dataset.js';
import { VENDORS } from '../src/world/vendors.js';

await useBackend();
const model = await loadFluxEmoji(process.argv[2] ?? 'flux-emoji');
if (!model.ae) throw new Error('this bundle has no autoencoder (packed-pixel latent): nothing to measure');
const ae = model.ae;
const clf = await loadClassifier(evaluatorPath('classifier'));
const concepts = trainedConcepts(model.manifest as unknown as Record<string, unknown>);
const idx = Int32Array.from(concepts, (c) => clf.config.concepts.indexOf(c));
const data = buildDataset({ size: model.manifest.image_size, concepts, vendors: [...VENDORS] });
const real: RgbImage[] = Array.from({ length: data.n }, (_, r) => ({ width: data.size, height: data.size, data: data.image(r) }));
const truth = Array.from({ length: data.n }, (_, r) => data.conceptIndex[r]!);

/** Concept top-1 among the model's concepts. */
function top1(images: readonly RgbImage[]): number {
  const nc = clf.config.concepts.length;
  let ok = 0;
  for (let i0 = 0; i0 < images.length; i0 += 128) {
    const part = images.slice(i0, i0 + 128);
    const x = imagesToInput(part, clf.size);
    const o = clf.forward(x);
    const logits = o.conceptLogits.dataSync();
    tf.dispose([x, o.features, o.conceptLogits, o.styleLogits]);
    for (let j = 0; j < part.length; j++) {
      let best = 0;
      for (let q = 1; q < idx.length; q++) if (logits[j * nc + idx[q]!]! > logits[j * nc + idx[best]!]!) best = q;
      if (best === truth[i0 + j]) ok++;
    }
  }
  return ok / images.length;
}

const recon: RgbImage[] = [];
for (let i0 = 0; i0 < real.length; i0 += 64) {
  const part = real.slice(i0, i0 + 64);
  const s = data.size;
  const pixels = new Float32Array(part.length * s * s * 3);
  part.forEach((p, i) => pixels.set(Float32Array.from(p.data, (v) => v / 127.5 - 1), i * s * s * 3));
  const x = tf.tidy(() => tf.tensor4d(pixels, [part.length, s, s, 3]).transpose([0, 3, 1, 2]));
  const y = ae.reconstruct(x);
  recon.push(...toRgbImages(y));
  tf.dispose([x, y]);
}
console.log(`${data.n} real renders (${concepts.length} concepts x ${VENDORS.length} styles): concept top-1 ${(100 * top1(real)).toFixed(1)}% as rendered, ${(100 * top1(recon)).toFixed(1)}% through the autoencoder`);
model.dispose();
