// FlowEdit as an inference-time eraser: prompts naming the concept get the neutral in their target
// prompt; a wrapper bundle samples other prompts exactly as the base, edits concept prompts
// deterministically, and refuses UNet bundles.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { tf } from '../../../src/engine/tf.js';
import { useBackend } from '../../../src/engine/backend.js';
import { flowEditWrapper, FLOWEDIT_PUBLISHED } from '../../../src/erase/baselines/flowedit.js';
import { writeWrapperBundle } from '../../../src/erase/baselines/bundle.js';
import { loadTextToImage, readManifest } from '../../../src/generate/index.js';
import { replaceConcept } from '../../../src/generate/wrapped.js';
import { writeTinyFluxBundle } from './fixture.js';

test('replaceConcept: the longest phrase, with its article, becomes the neutral', () => {
  const c = ['knife', 'kitchen knife'];
  assert.equal(replaceConcept('an emoji of a kitchen knife in noto style', c, 'spoon'), 'an emoji of a spoon in noto style');
  assert.equal(replaceConcept('Kitchen knife, flat icon', c, 'apple'), 'apple, flat icon');
  assert.equal(replaceConcept('the knife on a table', c, 'apple'), 'the apple on a table');
  assert.equal(replaceConcept('a pocketknife', c, 'spoon'), null);
  assert.equal(replaceConcept('a spoon', c, 'spoon'), null);
  assert.deepEqual(FLOWEDIT_PUBLISHED, { srcGuidance: 1.5, tarGuidance: 5.5, nMax: 24, nMin: 0, nAvg: 1 });
});

test('a FlowEdit wrapper bundle: other prompts as the base, concept prompts edited, deterministic', async () => {
  await useBackend();
  const dir = mkdtempSync(join(tmpdir(), 'mce-flowedit-'));
  try {
    const base = join(dir, 'base');
    await writeTinyFluxBundle(base, ['an emoji of a kitchen knife', 'spoon', 'a cat']);
    const out = join(dir, 'fe');
    const { manifest } = readManifest(base);
    await writeWrapperBundle({ baseDir: base, baseManifest: manifest, outDir: out, wrapper: { ...flowEditWrapper(['kitchen knife'], 'spoon') }, record: { method: 'flowedit', concept: 'kitchen knife', settings: {} } });
    const before = tf.memory().numTensors;
    const plain = await loadTextToImage(base);
    const fe = await loadTextToImage(out);
    const opts = { seed: 2, steps: 4, cfg: 3, n: 2 };
    assert.deepEqual(fe.generate({ ...opts, prompt: 'a cat' }).images.map((i) => i.data), plain.generate({ ...opts, prompt: 'a cat' }).images.map((i) => i.data));
    const a = fe.generate({ ...opts, prompt: 'an emoji of a kitchen knife' });
    const b = fe.generate({ ...opts, prompt: 'an emoji of a kitchen knife' });
    const p = plain.generate({ ...opts, prompt: 'an emoji of a kitchen knife' });
    assert.equal(a.images.length, 2);
    assert.deepEqual(a.images.map((i) => i.data), b.images.map((i) => i.data));
    assert.notDeepEqual(a.images[0]!.data, p.images[0]!.data);
    plain.dispose();
    fe.dispose();
    assert.equal(tf.memory().numTensors, before);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
