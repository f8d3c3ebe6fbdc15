// Compare erased models (mce baseline / mce erase bundles) with their base on the erasure target's
// TRAIN-split captions (the prompts the methods saw or their templates) and on near-neighbour
// captions: per model, the emoji classifier's top-1 detection of the target and its mean
// probability on erase prompts (top-1 among the 320 concepts flux-emoji was trained on), the target's detection on preserve prompts, and the mean SSIM of
// each image to the base model's image from the same seed.
//
//   node --import tsx scripts/baselines-compare.ts --concept "kitchen knife" --seeds 2 --prompts 8 flux-emoji runs/uce runs/esd-x ...
// The first model is the base.
import { parseArgs } from 'node:util';
import { useBackend } from '../src/engine/backend.js';
import { classify } from '../src/eval/evaluators.js';
import { ssim } from '../src/eval/ssim.js';
import { buildPromptSets } from '../src/erase/mce/prompts.js';
import { loadTextToImage, type RgbImage } from '../src/generate/index.js';
import { selectConcepts } from '../src/world/dataset.js';

const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: { concept: { type: 'string', default: 'kitchen knife' }, seeds: { type: 'string', default: '2' }, prompts: { type: 'string', default: '8' } },
});
const seeds = Number(values.seeds);
const n = Number(values.prompts);
const concept = values.concept!;
if (positionals.length < 1) throw new Error('give the base model first, then the erased ones');
await useBackend();
const sets = buildPromptSets([concept], { erasePerTarget: n, preserve: n, seed: 0 });
const erase = sets.erase.map((p) => p.prompt);
const members = new Set(sets.targets[0]!.members);
// Classified among the concepts flux-emoji was trained on, as `mce eval quality` does.
const trained = new Set(selectConcepts(320, 0));

async function render(dir: string, prompts: readonly string[]): Promise<RgbImage[]> {
  const m = await loadTextToImage(dir);
  const out: RgbImage[] = [];
  for (const prompt of prompts) for (let s = 0; s < seeds; s++) out.push(m.generate({ prompt, seed: s, n: 1 }).images[0]!);
  m.dispose();
  return out;
}

async function targetScores(images: RgbImage[]): Promise<{ detected: number; p: number }> {
  const c = await classify(images);
  const k = c.concepts.length;
  const idx = c.concepts.map((name, i) => (members.has(name) ? i : -1)).filter((i) => i >= 0);
  let det = 0;
  let p = 0;
  for (let r = 0; r < images.length; r++) {
    const row = c.conceptProbs.subarray(r * k, (r + 1) * k);
    let best = -1;
    for (let j = 0; j < k; j++) if (trained.has(c.concepts[j]!) && (best < 0 || row[j]! > row[best]!)) best = j;
    if (idx.includes(best)) det++;
    p += idx.reduce((a, j) => a + row[j]!, 0);
  }
  return { detected: det / images.length, p: p / images.length };
}

const meanSsim = (a: RgbImage[], b: RgbImage[]): number => a.reduce((acc, img, i) => acc + ssim(img, b[i]!), 0) / a.length;
let baseE: RgbImage[] = [];
let baseP: RgbImage[] = [];
console.log(`concept "${concept}": ${erase.length} erase prompts, ${sets.preserve.length} preserve prompts (neighbours first), ${seeds} seeds each`);
console.log('model | erase: detected, mean p(target), SSIM to base | preserve: target detected, SSIM to base');
for (const [i, dir] of positionals.entries()) {
  const e = await render(dir, erase);
  const p = await render(dir, sets.preserve);
  if (i === 0) {
    baseE = e;
    baseP = p;
  }
  const se = await targetScores(e);
  const sp = await targetScores(p);
  console.log(`${dir} | ${(100 * se.detected).toFixed(1)}%, ${se.p.toFixed(3)}, ${meanSsim(e, baseE).toFixed(3)} | ${(100 * sp.detected).toFixed(1)}%, ${meanSsim(p, baseP).toFixed(3)}`);
}
