// Write the sample grid of a flux-emoji bundle: every concept erasure target (rows) x the three
// styles (columns: real render, then generated), canonical train prompts "<a concept> in <style> style".
// Also times one 4-step image; --record writes that into the manifest's quality section.
// Usage: node --import tsx scripts/flux-emoji-samples.ts [MODEL_DIR] [OUT.png] [--steps N] [--cfg X] [--seed N] [--record]
import { readFileSync } from 'node:fs';
import { useBackend } from '../src/engine/backend.js';
import { writeFileAtomic } from '../src/io/atomic.js';
import { machineDescription } from '../src/train/common.js';
import { writePng } from '../src/io/png.js';
import { generate, imageGrid, loadFluxEmoji, type RgbImage } from '../src/generate/flux-emoji.js';
import { buildDataset } from '../src/world/dataset.js';
import { canonicalCaption, erasureTargets, VENDORS } from '../src/world/index.js';

const args = process.argv.slice(2);
const record = args.includes('--record');
if (record) args.splice(args.indexOf('--record'), 1);
const flag = (name: string): number | undefined => {
  const i = args.indexOf(`--${name}`);
  if (i < 0) return undefined;
  const v = Number(args[i + 1]);
  args.splice(i, 2);
  return v;
};
const steps = flag('steps');
const cfg = flag('cfg');
const seed = flag('seed') ?? 0;
const dir = args[0] ?? 'models/flux-emoji';
const out = args[1] ?? `${dir}/samples.png`;
await useBackend();
const model = await loadFluxEmoji(dir);
const size = model.manifest.image_size;
const ds = buildDataset({ size, concepts: (model.manifest['dataset'] as { concepts: number }).concepts ?? 320, seed: 0 });
const real = (concept: string, v: string): RgbImage => {
  const ci = ds.concepts.indexOf(concept);
  for (let i = 0; i < ds.n; i++) {
    if (ds.conceptIndex[i] === ci && ds.vendors[ds.vendorIndex[i]!] === v) return { width: size, height: size, data: ds.image(i).slice() };
  }
  return { width: size, height: size, data: new Uint8Array(size * size * 3).fill(255) };
};
const rows: RgbImage[][] = [];
const t0 = performance.now();
for (const t of erasureTargets().filter((x) => x.kind === 'concept')) {
  const row: RgbImage[] = [];
  for (const v of VENDORS) {
    row.push(real(t.concept!, v));
    row.push(...generate(model, { prompt: canonicalCaption(t.concept!, v), seed, steps, cfg, n: 2 }).images);
  }
  rows.push(row);
}
const grid = imageGrid(rows, 2);
// Timing of one 4-step image with CFG (after the first call warmed the kernels), median of 5.
const times: number[] = [];
for (let i = 0; i < 5; i++) {
  const t = performance.now();
  generate(model, { prompt: 'a kitchen knife in twemoji style', seed: i, steps: 4, n: 1 });
  times.push((performance.now() - t) / 1000);
}
times.sort((a, b) => a - b);
process.stderr.write(`one 4-step image (CFG, batch 2 through the transformer, AE decode): median ${times[2]!.toFixed(3)} s of 5 (min ${times[0]!.toFixed(3)}, max ${times[4]!.toFixed(3)})\n`);
if (record) {
  const mpath = `${dir}/manifest.json`;
  const m = JSON.parse(readFileSync(mpath, 'utf8')) as { quality?: Record<string, unknown> };
  m.quality = { ...(m.quality ?? {}), generate_one_4step_image_seconds: { median: Number(times[2]!.toFixed(3)), min: Number(times[0]!.toFixed(3)), max: Number(times[4]!.toFixed(3)), machine: machineDescription(), note: 'in-process, after warm-up; CFG on; excludes process start-up and model loading' } };
  await writeFileAtomic(mpath, JSON.stringify(m, null, 2) + '\n');
}
await writePng(out, { width: grid.width, height: grid.height, channels: 3, data: grid.data });
process.stderr.write(`wrote ${out}: ${rows.length} targets x ${VENDORS.length} styles (real render + 2 seeds each), ${((performance.now() - t0) / 1000).toFixed(1)} s\n`);
model.dispose();
