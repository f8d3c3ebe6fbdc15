// The sd-emoji bundle loader and sampler: bad bundles fail with one ModelLoadError line; the shipped
// model (when present) samples deterministically through the family-independent loader, with a
// predicted-x0 trajectory per DDIM step, and frees every tensor it makes.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { useBackend } from '../../src/engine/backend.js';
import { tf } from '../../src/engine/tf.js';
import { loadTextToImage, ModelLoadError, SHIPPED_MODELS } from '../../src/generate/index.js';
import { loadSdEmoji, SD_EMOJI_FORMAT } from '../../src/generate/sd-emoji.js';
import { resolveModelDir } from '../../src/generate/flux-emoji.js';

const SHIPPED = fileURLToPath(new URL('../../models/sd-emoji/manifest.json', import.meta.url));

test('sd-emoji is a shipped model name that resolves to models/sd-emoji', () => {
  assert.ok((SHIPPED_MODELS as readonly string[]).includes('sd-emoji'));
  assert.equal(join(resolveModelDir('sd-emoji'), 'manifest.json'), SHIPPED);
});

test('bad sd-emoji bundles: one ModelLoadError line naming the problem', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'mce-sdload-'));
  try {
    await assert.rejects(loadSdEmoji(join(dir, 'none')), (e: Error) => e instanceof ModelLoadError && /^no model at .*manifest\.json not found$/.test(e.message));
    const wrong = join(dir, 'wrong');
    mkdirSync(wrong);
    writeFileSync(join(wrong, 'manifest.json'), JSON.stringify({ format: 'mce-flux-emoji/1' }));
    await assert.rejects(loadSdEmoji(wrong), (e: Error) => e instanceof ModelLoadError && /format 'mce-flux-emoji\/1', expected 'mce-sd-emoji\/1'/.test(e.message));
    const other = join(dir, 'other');
    mkdirSync(other);
    writeFileSync(join(other, 'manifest.json'), JSON.stringify({ format: 'mce-dalle/9' }));
    await assert.rejects(loadTextToImage(other), (e: Error) => e instanceof ModelLoadError && /unknown model format 'mce-dalle\/9' \(known: mce-flux-emoji\/1, mce-sd-emoji\/1\)/.test(e.message));
    const empty = join(dir, 'empty');
    mkdirSync(empty);
    writeFileSync(join(empty, 'manifest.json'), JSON.stringify({ format: SD_EMOJI_FORMAT }));
    await assert.rejects(loadSdEmoji(empty), (e: Error) => e instanceof ModelLoadError && /missing unet\.safetensors$/.test(e.message));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('the shipped sd-emoji samples deterministically, with a trajectory, without leaking tensors', { skip: !existsSync(SHIPPED) && 'models/sd-emoji not shipped yet' }, async () => {
  await useBackend();
  const before = tf.memory().numTensors;
  const model = await loadTextToImage('sd-emoji');
  assert.equal(model.family, 'diffusion');
  assert.equal(model.name, 'sd-emoji');
  const opts = { prompt: 'an emoji of a bomb in noto style', seed: 5, steps: 4, cfg: 4 };
  const a = model.generate({ ...opts, n: 2, trajectory: true });
  const b = model.generate({ ...opts, n: 2 });
  const c = model.generate({ ...opts, seed: 6, n: 1 });
  assert.deepEqual(a.timesteps, [751, 501, 251, 1]);
  assert.equal(a.images[0]!.width, model.imageSize);
  assert.equal(a.images[0]!.height, model.imageSize);
  assert.deepEqual(a.images[0]!.data, b.images[0]!.data);
  assert.deepEqual(a.images[1]!.data, b.images[1]!.data);
  assert.notDeepEqual(a.images[0]!.data, c.images[0]!.data);
  assert.equal(a.trajectory!.length, 4);
  assert.equal(a.trajectory![3]!.length, 2);
  model.dispose();
  assert.equal(tf.memory().numTensors, before, 'sd-emoji generation leaked tensors');
});
