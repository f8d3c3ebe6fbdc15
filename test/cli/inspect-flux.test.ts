import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runCli } from './run.js';
import { layoutHeader } from '../../src/io/safetensors.js';
import { convertFluxShapes } from '../../src/io/names.js';
import { FLUX_DEV, FLUX_SCHNELL, fluxParamSpecs, type FluxParams } from '../../src/models/flux/params.js';

const dir = fs.mkdtempSync(join(tmpdir(), 'mce-inspect-flux-'));
after(() => fs.rmSync(dir, { recursive: true, force: true }));

// A full-size checkpoint as a sparse file: a real header, data that takes no disk.
function sparseCheckpoint(name: string, p: FluxParams, naming: 'reference' | 'diffusers', prefix = ''): string {
  let shapes: Record<string, number[]> = Object.fromEntries(fluxParamSpecs(p).map((s) => [s.name, s.shape]));
  if (naming === 'diffusers') shapes = convertFluxShapes(shapes, 'reference', 'diffusers', p).tensors;
  const specs = Object.entries(shapes).map(([n, shape]) => ({ name: prefix + n, dtype: 'BF16' as const, shape }));
  const { header, dataBytes } = layoutHeader(specs);
  const path = join(dir, name);
  fs.writeFileSync(path, header); // the length prefix and the JSON
  fs.truncateSync(path, header.length + dataBytes);
  return path;
}

async function inspectJson(path: string): Promise<Record<string, unknown>> {
  const r = await runCli(['inspect', path, '--json']);
  assert.equal(r.code, 0, r.err);
  return JSON.parse(r.out);
}

test('inspect names the FLUX.1-dev preset from diffusers names, without reading the 24 GB of data', async () => {
  const j = await inspectJson(sparseCheckpoint('dev-diffusers.safetensors', FLUX_DEV, 'diffusers'));
  const flux = j['flux'] as { naming: string; preset: string; layout: FluxParams; tensors: number };
  assert.equal(flux.naming, 'diffusers');
  assert.equal(flux.preset, 'flux-dev');
  assert.equal(flux.tensors, 1160);
  assert.equal(flux.layout.hidden_size, 3072);
  assert.equal(flux.layout.depth_single_blocks, 38);
  assert.equal(j['totalParams'], 11_901_408_320);
});

test('inspect names FLUX.1-schnell in reference names behind a ComfyUI-style prefix', async () => {
  const j = await inspectJson(sparseCheckpoint('schnell.safetensors', FLUX_SCHNELL, 'reference', 'model.diffusion_model.'));
  const flux = j['flux'] as { naming: string; preset: string; prefix: string; layout: FluxParams };
  assert.deepEqual([flux.naming, flux.preset, flux.prefix], ['reference', 'flux-schnell', 'model.diffusion_model.']);
  assert.equal(flux.layout.guidance_embed, false);
});

test('inspect reads a custom config off the golden weights, and says nothing of FLUX for a LoRA', async () => {
  const j = await inspectJson(join('..', 'shared', 'golden', 'flux', 'tiny-dev', 'weights.safetensors'));
  const flux = j['flux'] as { preset: string | null; layout: FluxParams };
  assert.equal(flux.preset, null);
  assert.deepEqual([flux.layout.hidden_size, flux.layout.num_heads, flux.layout.depth, flux.layout.guidance_embed], [64, 4, 2, true]);
  const lora = await inspectJson(join('..', 'shared', 'data', 'fixtures', 'eraseanything-flux-dev-lora.safetensors'));
  assert.equal(lora['flux'], null);
  assert.deepEqual(lora['lora'], { modules: 38, ranks: [8] });
});
