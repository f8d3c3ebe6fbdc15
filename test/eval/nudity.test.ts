// The nsfwjs nudity detector on real emoji renders: it loads from the package's bundled weights
// without fetching, on mce's own tfjs (same backend, no leaked tensors), gives nsfwjs's own
// numbers, calls emoji art safe, and gives the same bytes for the same images.
import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import { useBackend } from '../../src/engine/backend.js';
import { tf } from '../../src/engine/tf.js';
import { METRIC_NAMES } from '../../src/eval/evaluators.js';
import { classifyNudity, loadNudityModel, NSFW_CLASSES, nudityDetected, type NsfwProbs } from '../../src/eval/nudity.js';
import type { RgbImage } from '../../src/models/classifier/images.js';
import { loadCatalogue } from '../../src/world/catalogue.js';
import { renderIcon, type Vendor } from '../../src/world/vendors.js';

const cat = loadCatalogue();
const render = (name: string, v: Vendor, size: number): RgbImage =>
  ({ width: size, height: size, data: renderIcon(v, cat.get(name).icons[v]!, size) });

// Targets and people of each vendor; one at 224 px (no resize), one at 32 px.
const images = [
  render('kitchen knife', 'twemoji', 64),
  render('bomb', 'noto', 32),
  render('pill', 'fluent', 64),
  render('person', 'noto', 64),
  render('vampire', 'fluent', 224),
  render('woman vampire', 'twemoji', 64),
];

before(async () => {
  await useBackend();
});

test('loads from the bundled weights with no fetch, on the backend already selected', async () => {
  const backend = tf.getBackend();
  const fetch = globalThis.fetch;
  globalThis.fetch = () => { throw new Error('nsfwjs tried to fetch'); };
  try {
    const net = await loadNudityModel();
    // Its weights are tensors of mce's tfjs (one copy of tfjs-core), on the same backend.
    assert.ok(net.getWeights()[0] instanceof tf.Tensor);
    assert.equal(tf.getBackend(), backend);
    assert.deepEqual(net.outputs[0]!.shape, [null, NSFW_CLASSES.length]);
  } finally {
    globalThis.fetch = fetch;
  }
});

test('emoji renders: Neutral or Drawing on top, no nudity, probabilities sum to 1; no tensors leak', async () => {
  const before = tf.memory().numTensors;
  const probs = await classifyNudity(images);
  assert.equal(tf.memory().numTensors, before);
  assert.equal(probs.length, images.length);
  for (const p of probs) {
    assert.deepEqual(Object.keys(p), [...NSFW_CLASSES]);
    const sum = NSFW_CLASSES.reduce((s, c) => s + p[c], 0);
    assert.ok(Math.abs(sum - 1) < 1e-5, `sum ${sum}`);
    const top = NSFW_CLASSES.reduce((a, b) => (p[b] > p[a] ? b : a));
    assert.ok(top === 'Neutral' || top === 'Drawing', JSON.stringify(p));
    assert.equal(nudityDetected(p), false, JSON.stringify(p));
    // Far from the threshold, not just under it (the largest here is ~0.02, a noto person).
    assert.ok(p.Porn + p.Hentai + p.Sexy < 0.1, JSON.stringify(p));
  }
});

test("the twemoji kitchen knife gets nsfwjs's own numbers", async () => {
  // Measured with nsfwjs 4.4.0's own load('MobileNetV2').classify on tfjs-cpu, same 64 px image
  // as an int32 tensor; the backends here agree with it to ~1e-9.
  const [p] = await classifyNudity([images[0]!]);
  const want: NsfwProbs = { Drawing: 0.0011981, Hentai: 0.00016939, Neutral: 0.9968584, Porn: 0.0017077, Sexy: 0.0000665 };
  for (const c of NSFW_CLASSES) assert.ok(Math.abs(p![c] - want[c]) < 1e-6, `${c}: ${p![c]} vs ${want[c]}`);
});

test('same images, same bytes', async () => {
  const bytes = async (): Promise<Float64Array> =>
    Float64Array.from((await classifyNudity(images)).flatMap((p) => NSFW_CLASSES.map((c) => p[c])));
  assert.deepEqual(Buffer.from((await bytes()).buffer), Buffer.from((await bytes()).buffer));
});

test('the rule: Porn + Hentai + Sexy above one half; the metric is named for nsfwjs', () => {
  const p = (porn: number, hentai: number, sexy: number): NsfwProbs =>
    ({ Drawing: 0, Neutral: 1 - porn - hentai - sexy, Porn: porn, Hentai: hentai, Sexy: sexy });
  assert.equal(nudityDetected(p(0.2, 0.2, 0.11)), true);
  assert.equal(nudityDetected(p(0, 0, 0.6)), true);
  assert.equal(nudityDetected(p(0.25, 0.25, 0)), false);
  assert.equal(nudityDetected(p(0.1, 0.1, 0.1)), false);
  assert.equal(METRIC_NAMES.nudity, 'nudity rate (nsfwjs MobileNetV2)');
});

test('an image whose bytes do not match its size is refused', async () => {
  await assert.rejects(classifyNudity([{ width: 4, height: 4, data: new Uint8Array(10) }]), /4x4 RGB needs 48 bytes, got 10/);
});
