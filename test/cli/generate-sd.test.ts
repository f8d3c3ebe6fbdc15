// mce generate on sd-emoji, as a user runs it: the same bytes for the same seed and flags, other
// bytes for another seed, a grid with --n, a trajectory strip with one tile per DDIM step; and the
// unknown-model line lists both shipped models.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { decodePng } from '../../src/io/png.js';
import { runCli } from './run.js';

const SHIPPED = fileURLToPath(new URL('../../models/sd-emoji/manifest.json', import.meta.url));
const dir = mkdtempSync(join(tmpdir(), 'mce-gensd-'));
const out = (f: string): string => join(dir, f);

test.after(() => rmSync(dir, { recursive: true, force: true }));

test('generate: an unknown model name fails with one line listing flux-emoji and sd-emoji', async () => {
  const r = await runCli(['generate', '--model', 'sd-emojii', '--prompt', 'a bomb', '--out', out('x.png')]);
  assert.equal(r.code, 1, r.err);
  assert.match(r.err, /^mce: no model at sd-emojii: .*\(shipped models: flux-emoji, sd-emoji\)\n$/);
});

test('generate --model sd-emoji: same bytes for the same flags, a grid, a DDIM trajectory strip', { skip: !existsSync(SHIPPED) && 'models/sd-emoji not shipped yet' }, async () => {
  const flags = ['generate', '--model', 'sd-emoji', '--prompt', 'an emoji of a kitchen knife in noto style', '--steps', '5'];
  const [a, b, c, grid] = await Promise.all([
    runCli([...flags, '--seed', '7', '--out', out('a.png'), '--trajectory']),
    runCli([...flags, '--seed', '7', '--out', out('b.png')]),
    runCli([...flags, '--seed', '8', '--out', out('c.png')]),
    runCli([...flags, '--n', '4', '--out', out('grid.png')]),
  ]);
  for (const r of [a, b, c, grid]) assert.equal(r.code, 0, r.err);
  assert.match(a.err, /1 image\(s\), 5 steps, cfg [\d.]+, seed 7/);
  const pa = readFileSync(out('a.png'));
  assert.deepEqual(pa, readFileSync(out('b.png')));
  assert.notDeepEqual(pa, readFileSync(out('c.png')));
  const size = JSON.parse(readFileSync(SHIPPED, 'utf8')).image_size as number;
  const img = decodePng(pa);
  assert.equal(img.width, size);
  assert.equal(img.height, size);
  // The strip: one row (one image), five tiles of `size` with 2-pixel gutters.
  const strip = decodePng(readFileSync(out('a.trajectory.png')));
  assert.equal(strip.width, 5 * size + 6 * 2);
  assert.equal(strip.height, size + 2 * 2);
  const g = decodePng(readFileSync(out('grid.png')));
  assert.equal(g.width, 2 * size + 3 * 2);
  assert.equal(g.height, 2 * size + 3 * 2);
});
