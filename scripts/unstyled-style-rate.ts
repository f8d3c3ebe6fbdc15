// Which style a model draws when the prompt names none: the floor a style erasure reaches when its
// erase prompts map to the plain caption (`mce erase --concept "twemoji style"`'s default neutral).
// One held-out plain caption per concept (seeded), one image each, the style classifier's verdict.
// Usage: node --import tsx scripts/unstyled-style-rate.ts [MODEL] [CONCEPTS] [SEED]
import { useBackend } from '../src/engine/backend.js';
import { mixSeed, Rng } from '../src/engine/rng.js';
import { detect } from '../src/eval/evaluators.js';
import { loadTextToImage } from '../src/generate/index.js';
import { captions } from '../src/world/captions.js';
import { selectConcepts } from '../src/world/dataset.js';

await useBackend();
const model = await loadTextToImage(process.argv[2] ?? 'flux-emoji');
const count = Number(process.argv[3] ?? 96);
const seed = Number(process.argv[4] ?? 0);
const rng = new Rng(seed);
const concepts = selectConcepts(320, 0).slice(0, count);
const tally = new Map<string, number>();
for (const [i, c] of concepts.entries()) {
  const options = captions(c, null, 'heldout');
  const prompt = options[rng.int(options.length)]!;
  const { images } = model.generate({ prompt, seed: mixSeed(seed, i) });
  const [p] = await detect(images);
  tally.set(p!.style.name, (tally.get(p!.style.name) ?? 0) + 1);
}
console.log(`${model.name}: the style of ${concepts.length} images from held-out captions that name no style (seed ${seed})`);
for (const [style, n] of [...tally].sort(([a], [b]) => a.localeCompare(b))) {
  console.log(`  ${style.padEnd(8)} ${String(n).padStart(3)}  ${((100 * n) / concepts.length).toFixed(1)}%`);
}
model.dispose();
