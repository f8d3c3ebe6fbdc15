// FlowEdit as an inference-time eraser: prompts naming the concept get the neutral in their target
// prompt (several targets: each its own neutral); a wrapper bundle samples other prompts exactly as
// the base, edits concept prompts deterministically, reads the older one-target wrapper format the
// same, and refuses UNet bundles.
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
import { editPrompt, replaceConcept } from '../../../src/generate/wrapped.js';
import { BaselineError, runBaseline } from '../../../src/erase/baselines/run.js';
import { erasureTarget } from '../../../src/world/targets.js';
import { writeTinyFluxBundle } from './fixture.js';
import { tinyFlux, tinyUnet } from './tiny.js';

test('replaceConcept: the longest phrase, with its article, becomes the neutral', () => {
  const c = ['knife', 'kitchen knife'];
  assert.equal(replaceConcept('an emoji of a kitchen knife in noto style', c, 'spoon'), 'an emoji of a spoon in noto style');
  assert.equal(replaceConcept('Kitchen knife, flat icon', c, 'apple'), 'apple, flat icon');
  assert.equal(replaceConcept('the knife on a table', c, 'apple'), 'the apple on a table');
  assert.equal(replaceConcept('a pocketknife', c, 'spoon'), null);
  assert.equal(replaceConcept('a spoon', c, 'spoon'), null);
  assert.deepEqual(FLOWEDIT_PUBLISHED, { srcGuidance: 1.5, tarGuidance: 5.5, nMax: 24, nMin: 0, nAvg: 1 });
});

test('several targets: each named target becomes its own neutral (runBaseline writes one edit per target)', async () => {
  const edits = [{ concepts: ['kitchen knife'], neutral: 'spoon' }, { concepts: ['vampire', 'man vampire', 'woman vampire'], neutral: 'person' }];
  assert.equal(editPrompt('a kitchen knife and a man vampire', edits), 'a spoon and a person');
  assert.equal(editPrompt('a vampire in noto style', edits), 'a person in noto style');
  assert.equal(editPrompt('a kitchen knife', edits), 'a spoon');
  assert.equal(editPrompt('a cat', edits), null);
  await useBackend();
  const targets = [erasureTarget('kitchen knife'), erasureTarget('vampire')];
  const m = tinyFlux();
  const r = await runBaseline(m, 'flowedit', targets, { seed: 0, steps: 3, cfg: 3 });
  assert.deepEqual(r.kind === 'wrapper' ? r.wrapper : null, { ...flowEditWrapper(edits) });
  m.dispose();
  const u = tinyUnet();
  await assert.rejects(runBaseline(u, 'flowedit', targets, { seed: 0, steps: 3, cfg: 3 }), BaselineError);
  u.dispose();
});

test('a FlowEdit wrapper bundle: other prompts as the base, concept prompts edited, deterministic', async () => {
  await useBackend();
  const dir = mkdtempSync(join(tmpdir(), 'mce-flowedit-'));
  try {
    const base = join(dir, 'base');
    await writeTinyFluxBundle(base, ['an emoji of a kitchen knife', 'spoon', 'a cat']);
    const out = join(dir, 'fe');
    const { manifest } = readManifest(base);
    await writeWrapperBundle({ baseDir: base, baseManifest: manifest, outDir: out, wrapper: { ...flowEditWrapper([{ concepts: ['kitchen knife'], neutral: 'spoon' }]) }, record: { method: 'flowedit', concept: 'kitchen knife', settings: {} } });
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
    // A bundle in the one-target format (before `edits`) samples the same.
    const old = join(dir, 'fe-old');
    const { edits, ...rest } = flowEditWrapper([{ concepts: ['kitchen knife'], neutral: 'spoon' }]);
    await writeWrapperBundle({ baseDir: base, baseManifest: manifest, outDir: old, wrapper: { ...rest, concepts: edits[0]!.concepts, neutral: edits[0]!.neutral }, record: { method: 'flowedit', concept: 'kitchen knife', settings: {} } });
    const feOld = await loadTextToImage(old);
    assert.deepEqual(feOld.generate({ ...opts, prompt: 'an emoji of a kitchen knife' }).images.map((i) => i.data), a.images.map((i) => i.data));
    feOld.dispose();
    plain.dispose();
    fe.dispose();
    assert.equal(tf.memory().numTensors, before);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
