// Write the sample grid of a text-to-image bundle of any family (loadTextToImage: flux-emoji,
// sd-emoji, a folder): chosen concepts (rows) x the three styles (columns: the real render, then
// generated seeds), prompts "an emoji of <a concept> in <style> style". Also times one image at the
// model's default steps; --record writes that timing into the manifest's quality section.
// Usage: node --import tsx scripts/sd-emoji-samples.ts [MODEL] [OUT.png] [--steps N] [--cfg X] [--seeds N]
//          [--concepts a,b,c] [--record] [--tiles DIR (also each generated image as DIR/<concept>-<style>-<k>.png, for mce detect)]
import { mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { useBackend } from '../src/engine/backend.js';
import { writeFileAtomic } from '../src/io/atomic.js';
import { writePng } from '../src/io/png.js';
import { imageGrid, loadTextToImage, type RgbImage } from '../src/generate/index.js';
import { machineDescription } from '../src/train/common.js';
import { buildDataset } from '../src/world/dataset.js';
import { fillTemplate, STYLE_TEMPLATES } from '../src/world/captions.js';
import { STYLES, VENDORS } from '../src/world/vendors.js';

const args = process.argv.slice(2);
const take = (name: string): string | undefined => {
  const i = args.indexOf(`--${name}`);
  if (i < 0) return undefined;
  const v = args[i + 1];
  args.splice(i, 2);
  return v;
};
const record = args.includes('--record');
if (record) args.splice(args.indexOf('--record'), 1);
const stepsRaw = take('steps');
const steps = stepsRaw === undefined ? undefined : Number(stepsRaw);
const cfgRaw = take('cfg');
const cfg = cfgRaw === undefined ? undefined : Number(cfgRaw);
const seeds = Number(take('seeds') ?? 2);
const concepts = (take('concepts') ?? 'kitchen knife,bomb,pill,vampire,superhero').split(',');
const tiles = take('tiles');
const name = args[0] ?? 'sd-emoji';
await useBackend();
const model = await loadTextToImage(name);
const out = args[1] ?? join(model.dir, 'samples.png');
const size = model.imageSize;
const ds = buildDataset({ size, concepts: (model.manifest['dataset'] as { concepts: number }).concepts ?? 320, seed: 0 });
const real = (concept: string, v: string): RgbImage => {
  const ci = ds.concepts.indexOf(concept);
  for (let i = 0; i < ds.n; i++) {
    if (ds.conceptIndex[i] === ci && ds.vendors[ds.vendorIndex[i]!] === v) return { width: size, height: size, data: ds.image(i).slice() };
  }
  return { width: size, height: size, data: new Uint8Array(size * size * 3).fill(255) };
};
if (tiles) mkdirSync(tiles, { recursive: true });
// 'an emoji of {A} in {s} style' (a train template).
const template = STYLE_TEMPLATES[1]!;
const rows: RgbImage[][] = [];
const t0 = performance.now();
for (const c of concepts) {
  const row: RgbImage[] = [];
  for (const v of VENDORS) {
    row.push(real(c, v));
    const prompt = fillTemplate(template, c, STYLES[v].name);
    const imgs = model.generate({ prompt, seed: 0, steps, cfg, n: seeds }).images;
    row.push(...imgs);
    if (tiles) {
      for (const [k, img] of imgs.entries()) {
        await writePng(join(tiles, `${c.replace(/\W+/g, '_')}-${STYLES[v].name}-${k}.png`), { width: img.width, height: img.height, channels: 3, data: img.data });
      }
    }
  }
  rows.push(row);
}
const grid = imageGrid(rows, 2);
await writePng(out, { width: grid.width, height: grid.height, channels: 3, data: grid.data });
process.stderr.write(`wrote ${out}: ${rows.length} concepts x ${VENDORS.length} styles (real render + ${seeds} seeds each), ${((performance.now() - t0) / 1000).toFixed(1)} s\n`);
// One image at the model's default steps and CFG (after warm-up), median of 5.
const times: number[] = [];
for (let i = 0; i < 5; i++) {
  const t = performance.now();
  model.generate({ prompt: 'an emoji of a kitchen knife in twemoji style', seed: i, n: 1 });
  times.push((performance.now() - t) / 1000);
}
times.sort((a, b) => a - b);
const line = `one image, ${model.defaults.steps} steps, cfg ${model.defaults.cfg}: median ${times[2]!.toFixed(3)} s of 5 (min ${times[0]!.toFixed(3)}, max ${times[4]!.toFixed(3)})`;
process.stderr.write(line + '\n');
if (record) {
  const mpath = join(model.dir, 'manifest.json');
  const m = JSON.parse(readFileSync(mpath, 'utf8')) as { quality?: Record<string, unknown> };
  m.quality = {
    ...(m.quality ?? {}),
    generate_one_image_seconds: {
      steps: model.defaults.steps, cfg: model.defaults.cfg,
      median: Number(times[2]!.toFixed(3)), min: Number(times[0]!.toFixed(3)), max: Number(times[4]!.toFixed(3)),
      machine: machineDescription(), note: 'in-process, after warm-up; excludes process start-up and model loading',
    },
  };
  await writeFileAtomic(mpath, JSON.stringify(m, null, 2) + '\n');
}
model.dispose();
