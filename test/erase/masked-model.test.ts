// loadMaskedModel (what `mce generate --masks M` needs): a bundle with a mask file applied in memory
// generates the same images as the checkpoint `mce apply-masks` folds, and not those of the
// original; masks of another model are one clear error. On the tiny random sd bundle, and on the
// shipped flux-emoji when it is there.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { useBackend } from '../../src/engine/backend.js';
import { Rng } from '../../src/engine/rng.js';
import { loadTextToImage } from '../../src/generate/index.js';
import { fluxMaskSpecs } from '../../src/models/flux/masks.js';
import { unetMaskSpecs } from '../../src/models/unet/masks.js';
import { applyMasksToFile } from '../../src/erase/mce/apply.js';
import { saveMasks } from '../../src/erase/mce/maskfile.js';
import { loadMaskedModel } from '../../src/erase/mce/masked-model.js';
import type { HostMasks } from '../../src/erase/mce/masks.js';
import type { FluxParams } from '../../src/models/flux/params.js';
import { TINY_SD_UNET, writeTinySdBundle } from './tiny-sd.js';

const FLUX_DIR = fileURLToPath(new URL('../../models/flux-emoji', import.meta.url));

/** Keep each unit with probability 0.7 (seeded). */
function randomKeep(specs: { name: string; size: number }[], seed: number): HostMasks {
  const rng = new Rng(seed);
  return Object.fromEntries(specs.map((s) => [s.name, Float32Array.from({ length: s.size }, () => (rng.uniform() < 0.7 ? 1 : 0))]));
}

async function sameAsFolded(bundle: string, folded: string, masks: string, opts: { prompt: string; seed: number; steps?: number }): Promise<void> {
  const masked = await loadMaskedModel(bundle, masks);
  const ref = await loadTextToImage(folded);
  const plain = await loadTextToImage(bundle);
  try {
    const a = masked.generate({ ...opts, n: 2 });
    const b = ref.generate({ ...opts, n: 2 });
    const c = plain.generate({ ...opts, n: 2 });
    a.images.forEach((im, i) => {
      assert.deepEqual(im.data, b.images[i]!.data, `image ${i}: masked in memory vs folded checkpoint`);
      assert.notDeepEqual(im.data, c.images[i]!.data, `image ${i}: the masks change the image`);
    });
  } finally {
    masked.dispose();
    ref.dispose();
    plain.dispose();
  }
}

test('masked sd bundle generates what the folded checkpoint does; FLUX masks on it are refused', async () => {
  await useBackend();
  const dir = mkdtempSync(join(tmpdir(), 'mce-masked-'));
  try {
    const bundle = await writeTinySdBundle(join(dir, 'sd'));
    const masks = join(dir, 'masks.safetensors');
    await saveMasks(masks, { keep: randomKeep(unetMaskSpecs(TINY_SD_UNET), 7), unet: TINY_SD_UNET });
    const folded = await writeTinySdBundle(join(dir, 'folded'));
    await applyMasksToFile(join(bundle, 'unet.safetensors'), randomKeep(unetMaskSpecs(TINY_SD_UNET), 7), join(folded, 'unet.safetensors'));
    await sameAsFolded(bundle, folded, masks, { prompt: 'a kitchen knife', seed: 5 });

    const fluxMasks = join(dir, 'flux-masks.safetensors');
    const tinyFlux = { hidden_size: 32, mlp_ratio: 2, num_heads: 2, depth: 1, depth_single_blocks: 1 } as FluxParams;
    await saveMasks(fluxMasks, { keep: randomKeep(fluxMaskSpecs(tinyFlux), 1) });
    await assert.rejects(loadMaskedModel(bundle, fluxMasks), /mask 'double_blocks\.0\.\w+' is not a hook point of this model \(a UNet/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('masked flux-emoji generates what the folded checkpoint does', { skip: !existsSync(join(FLUX_DIR, 'transformer.safetensors')) && 'models/flux-emoji is not there' }, async () => {
  await useBackend();
  const dir = mkdtempSync(join(tmpdir(), 'mce-masked-flux-'));
  try {
    const { loadFluxEmoji } = await import('../../src/generate/flux-emoji.js');
    const m = await loadFluxEmoji(FLUX_DIR);
    const keep = randomKeep(fluxMaskSpecs(m.cfg).filter((s) => !s.name.endsWith('.heads')), 3);
    const cfg = m.cfg;
    m.dispose();
    const masks = join(dir, 'masks.safetensors');
    await saveMasks(masks, { keep, cfg });
    const folded = join(dir, 'folded');
    mkdirSync(folded);
    for (const f of ['manifest.json', 'text_encoder.safetensors', 'ae.safetensors']) copyFileSync(join(FLUX_DIR, f), join(folded, f));
    await applyMasksToFile(join(FLUX_DIR, 'transformer.safetensors'), keep, join(folded, 'transformer.safetensors'));
    await sameAsFolded(FLUX_DIR, folded, masks, { prompt: 'a kitchen knife', seed: 2, steps: 2 });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
