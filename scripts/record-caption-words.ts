// Writes `dataset.caption_words` (every word of the model's TRAIN captions, as `mce train flow` and
// `mce train diffusion` now record it) into the manifest of a model trained before the field
// existed. The words are a function of the manifest's dataset config alone (size, concepts, seed),
// so this gives the bytes a retraining would. Nothing else in the manifest changes.
// Usage: node --import tsx scripts/record-caption-words.ts MODEL_DIR...
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { trainCaptionWords } from '../src/train/run-record.js';
import { trainCaptionLists } from '../src/train/world-data.js';
import { buildDataset } from '../src/world/dataset.js';

for (const dir of process.argv.slice(2)) {
  const path = join(dir, 'manifest.json');
  const manifest = JSON.parse(readFileSync(path, 'utf8')) as { dataset: { size: number; concepts: number; seed: number; hash: string; caption_words?: string[] } };
  const { size, concepts, seed, hash } = manifest.dataset;
  const ds = buildDataset({ size, concepts, seed });
  if (ds.hash !== hash) throw new Error(`${path}: dataset hash ${hash}, but this world builds ${ds.hash}`);
  manifest.dataset.caption_words = trainCaptionWords(trainCaptionLists(ds));
  writeFileSync(path, `${JSON.stringify(manifest, null, 2)}\n`);
  console.log(`${path}: ${manifest.dataset.caption_words.length} caption words`);
}
