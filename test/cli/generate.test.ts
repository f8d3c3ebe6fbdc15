// mce generate as a user runs it: one-line errors with the right exit codes, the same bytes for the
// same seed and flags, grids and trajectory strips; and the shipped flux-emoji makes a real image.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { decodePng } from '../../src/io/png.js';
import { runCli } from './run.js';

const SHIPPED = fileURLToPath(new URL('../../models/flux-emoji/manifest.json', import.meta.url));
const dir = mkdtempSync(join(tmpdir(), 'mce-gen-'));
const out = (f: string): string => join(dir, f);

const runs = {
  noPrompt: runCli(['generate', '--out', out('x.png')]),
  badModel: runCli(['generate', '--model', 'no-such-model', '--prompt', 'a cat', '--out', out('x.png')]),
  badSteps: runCli(['generate', '--prompt', 'a cat', '--steps', '0', '--out', out('x.png')]),
  badSeed: runCli(['generate', '--prompt', 'a cat', '--seed', 'abc']),
  badOut: runCli(['generate', '--prompt', 'a cat', '--out', out('x.jpg')]),
  badN: runCli(['generate', '--prompt', 'a cat', '--n', '2.5']),
  badInterval: runCli(['generate', '--prompt', 'a cat', '--cfg-interval', '0.8,0.2', '--out', out('x.png')]),
  halfInterval: runCli(['generate', '--prompt', 'a cat', '--cfg-interval', '0.3', '--out', out('x.png')]),
};

test.after(() => rmSync(dir, { recursive: true, force: true }));

test('generate: bad flags and unknown models fail with one line and the right exit code', async () => {
  const cases: [keyof typeof runs, number, RegExp][] = [
    ['noPrompt', 2, /^mce generate: --prompt TEXT is required/],
    ['badModel', 1, /^mce: no model at no-such-model: .*\(shipped models: flux-emoji, sd-emoji\)/],
    ['badSteps', 2, /^mce generate: --steps must be an integer in \[1, 200\], got 0/],
    ['badSeed', 2, /^mce generate: --seed must be a number, got 'abc'/],
    ['badOut', 2, /^mce generate: --out must name a \.png file/],
    ['badN', 2, /^mce generate: --n must be an integer/],
    ['badInterval', 2, /^mce generate: --cfg-interval: guidance interval must be LO,HI with 0 <= LO <= HI <= 1, got 0.8,0.2/],
    ['halfInterval', 2, /^mce generate: --cfg-interval: expected LO,HI, got '0.3'/],
  ];
  for (const [name, code, re] of cases) {
    const r = await runs[name];
    assert.equal(r.code, code, `${name}: exit ${r.code}, stderr ${r.err}`);
    assert.match(r.err, re, name);
    assert.equal(r.err.trim().split('\n').length, 1, `${name}: more than one line: ${r.err}`);
  }
});

test('generate: a prompt word in none of the model\'s training captions gets a one-line note; known words get none', { skip: !existsSync(SHIPPED) && 'models/flux-emoji not shipped yet' }, async () => {
  const [unread, known] = await Promise.all([
    runCli(['generate', '--prompt', 'a hocho, Twemoji style', '--steps', '1', '--out', out('hocho.png')]),
    runCli(['generate', '--prompt', "A chef's knife, twemoji style", '--steps', '1', '--out', out('knife.png')]),
  ]);
  assert.equal(unread.code, 0, unread.err);
  assert.equal(known.code, 0, known.err);
  const notes = (r: { err: string }): string[] => r.err.split('\n').filter((l) => l.includes('note:'));
  assert.deepEqual(notes(unread), ['mce generate: note: "hocho" is in none of flux-emoji\'s training captions; its text encoder, trained from scratch, has never read it']);
  assert.deepEqual(notes(known), []);
});

test('generate --cfg-interval: the whole range is every step (same bytes); leaving the last step unguided changes the image', { skip: !existsSync(SHIPPED) && 'models/flux-emoji not shipped yet' }, async () => {
  const base = ['generate', '--prompt', 'a kitchen knife in fluent style', '--seed', '2', '--steps', '6'];
  const [every, whole, limited] = await Promise.all([
    runCli([...base, '--out', out('i0.png')]),
    runCli([...base, '--cfg-interval', '0,1', '--out', out('i1.png')]),
    runCli([...base, '--cfg-interval', '0.3,1', '--out', out('i2.png')]),
  ]);
  for (const r of [every, whole, limited]) assert.equal(r.code, 0, r.err);
  assert.deepEqual(readFileSync(out('i1.png')), readFileSync(out('i0.png')));
  assert.notDeepEqual(readFileSync(out('i2.png')), readFileSync(out('i0.png')));
  assert.match(limited.err, /6 steps, cfg 2\.5 for t in \[0\.3, 1\], seed 2/);
});

test('generate: the shipped flux-emoji gives the same bytes for the same flags, a grid, a trajectory strip, and a real image', { skip: !existsSync(SHIPPED) && 'models/flux-emoji not shipped yet' }, async () => {
  const [a, b, c, grid] = await Promise.all([
    runCli(['generate', '--prompt', 'a kitchen knife in twemoji style', '--seed', '7', '--steps', '4', '--out', out('a.png'), '--trajectory']),
    runCli(['generate', '--prompt', 'a kitchen knife in twemoji style', '--seed', '7', '--steps', '4', '--out', out('b.png')]),
    runCli(['generate', '--prompt', 'a kitchen knife in twemoji style', '--seed', '8', '--steps', '4', '--out', out('c.png')]),
    runCli(['generate', '--prompt', 'a bomb', '--n', '6', '--steps', '2', '--out', out('grid.png')]),
  ]);
  for (const r of [a, b, c, grid]) assert.equal(r.code, 0, r.err);
  // Six images are two batches: a progress bar counts them; one batch prints only the summary line.
  assert.match(grid.err, /generate 6\/6 100% \|/);
  assert.doesNotMatch(a.err, /generate \d+\/\d+/);
  const pa = readFileSync(out('a.png'));
  assert.deepEqual(pa, readFileSync(out('b.png')));
  assert.notDeepEqual(pa, readFileSync(out('c.png')));
  const img = decodePng(pa);
  const size = JSON.parse(readFileSync(SHIPPED, 'utf8')).image_size as number;
  assert.equal(img.width, size);
  assert.equal(img.height, size);
  // Not blank, not noise: emoji art is mostly a flat background with a coloured object, so the
  // pixel std is moderate, and neighbouring pixels agree far more than in noise.
  const px = img.data;
  let sum = 0;
  let sq = 0;
  let diff = 0;
  const n = px.length;
  for (let i = 0; i < n; i++) {
    sum += px[i]!;
    sq += px[i]! * px[i]!;
  }
  const mean = sum / n;
  const std = Math.sqrt(sq / n - mean * mean);
  for (let y = 0; y < size; y++) for (let x = 0; x + 1 < size; x++) for (let ch = 0; ch < 3; ch++) {
    diff += Math.abs(px[(y * size + x) * 3 + ch]! - px[(y * size + x + 1) * 3 + ch]!);
  }
  const meanNeighbourDiff = diff / (size * (size - 1) * 3);
  assert.ok(std > 15 && std < 120, `pixel std ${std.toFixed(1)} out of range`);
  assert.ok(mean > 40 && mean < 250, `pixel mean ${mean.toFixed(1)} out of range`);
  assert.ok(meanNeighbourDiff < std * 0.6, `looks like noise: neighbour diff ${meanNeighbourDiff.toFixed(1)} vs std ${std.toFixed(1)}`);
  const strip = decodePng(readFileSync(out('a.trajectory.png')));
  assert.ok(strip.width > 4 * size, 'trajectory strip should hold one tile per step');
  const g = decodePng(readFileSync(out('grid.png')));
  assert.ok(g.width > 2 * size && g.height > 2 * size);
});

test('generate --masks: keep-all masks give the same bytes as no masks, dropped units change the image, a bad file is one line', { skip: !existsSync(SHIPPED) && 'models/flux-emoji not shipped yet' }, async () => {
  const { saveMasks } = await import('../../src/erase/mce/maskfile.js');
  const { fluxMaskSpecs } = await import('../../src/models/flux/masks.js');
  const cfg = JSON.parse(readFileSync(SHIPPED, 'utf8')).flux;
  const specs = fluxMaskSpecs(cfg);
  const keepAll = Object.fromEntries(specs.map((s) => [s.name, new Float32Array(s.size).fill(1)]));
  // Drop every single-block MLP unit: a large, certain change.
  const dropped = Object.fromEntries(specs.map((s) => [s.name, new Float32Array(s.size).fill(s.block === 'single' && s.kind === 'mlp' ? 0 : 1)]));
  await saveMasks(out('keep.safetensors'), { keep: keepAll, cfg });
  await saveMasks(out('drop.safetensors'), { keep: dropped, cfg });
  const { copyFileSync, mkdirSync, writeFileSync } = await import('node:fs');
  writeFileSync(out('bad.safetensors'), 'not a safetensors file');
  // An erase run folder stands for its masks.safetensors.
  mkdirSync(out('drop-run'));
  copyFileSync(out('drop.safetensors'), join(out('drop-run'), 'masks.safetensors'));
  const base = ['generate', '--prompt', 'a bomb', '--seed', '3', '--steps', '4'];
  const [plain, keep, drop, bad, dropRun] = await Promise.all([
    runCli([...base, '--out', out('m0.png')]),
    runCli([...base, '--masks', out('keep.safetensors'), '--out', out('m1.png')]),
    runCli([...base, '--masks', out('drop.safetensors'), '--out', out('m2.png')]),
    runCli([...base, '--masks', out('bad.safetensors'), '--out', out('m3.png')]),
    runCli([...base, '--masks', out('drop-run'), '--out', out('m4.png')]),
  ]);
  for (const r of [plain, keep, drop, dropRun]) assert.equal(r.code, 0, r.err);
  assert.deepEqual(readFileSync(out('m1.png')), readFileSync(out('m0.png')));
  assert.notDeepEqual(readFileSync(out('m2.png')), readFileSync(out('m0.png')));
  assert.deepEqual(readFileSync(out('m4.png')), readFileSync(out('m2.png')));
  assert.equal(bad.code, 1, bad.err);
  assert.equal(bad.err.trim().split('\n').length, 1, bad.err);
  assert.ok(!existsSync(out('m3.png')));
});
