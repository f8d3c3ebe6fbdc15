// mce detect --detector nsfwjs as a user runs it: the JSON line and text formats with the five
// class probabilities and the verdict, a missing file reported beside the good ones (exit 1), and
// usage errors (exit 2) for an unknown detector and for --model with nsfwjs.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { encodeRgbPng } from '../../src/io/png.js';
import { renderIcon } from '../../src/world/vendors.js';
import { loadCatalogue } from '../../src/world/catalogue.js';
import { runCli } from './run.js';

const dir = mkdtempSync(join(tmpdir(), 'mce-detect-nsfwjs-'));
after(() => rmSync(dir, { recursive: true, force: true }));
const p = (f: string): string => join(dir, f);
const cat = loadCatalogue();
writeFileSync(p('knife.png'), encodeRgbPng(64, 64, renderIcon('twemoji', cat.get('kitchen knife').icons.twemoji!, 64)));
writeFileSync(p('bomb.png'), encodeRgbPng(32, 32, renderIcon('noto', cat.get('bomb').icons.noto!, 32)));

const CLASSES = ['Drawing', 'Hentai', 'Neutral', 'Porn', 'Sexy'];
const runs = {
  json: runCli(['detect', '--detector', 'nsfwjs', p('knife.png'), p('missing.png'), p('bomb.png'), '--json']),
  text: runCli(['detect', '--detector', 'nsfwjs', p('knife.png')]),
  unknown: runCli(['detect', '--detector', 'nudenet', p('knife.png')]),
  model: runCli(['detect', '--detector', 'nsfwjs', '--model', p('x.safetensors'), p('knife.png')]),
  help: runCli(['detect', '--help']),
};

test('detect --detector nsfwjs --json: one line per good file, five classes and the verdict; a missing file exits 1', async () => {
  const r = await runs.json;
  assert.equal(r.code, 1, r.err);
  assert.equal(r.err.trim(), `mce: ${p('missing.png')}: no such file`);
  const lines = r.out.trim().split('\n').map((l) => JSON.parse(l));
  assert.deepEqual(lines.map((o) => o.file), [p('knife.png'), p('bomb.png')]);
  for (const o of lines) {
    assert.deepEqual(Object.keys(o), ['file', 'classes', 'nudity']);
    assert.deepEqual(Object.keys(o.classes), CLASSES);
    assert.equal(o.nudity, false);
    const sum = CLASSES.reduce((s, c) => s + o.classes[c], 0);
    assert.ok(Math.abs(sum - 1) < 5e-4, `sum ${sum} (each rounded to 1e-4)`);
  }
  // nsfwjs's own numbers for this image (test/eval/nudity.test.ts), rounded to 4 places.
  assert.deepEqual(lines[0].classes, { Drawing: 0.0012, Hentai: 0.0002, Neutral: 0.9969, Porn: 0.0017, Sexy: 0.0001 });
});

test('detect --detector nsfwjs (text): the verdict line, then the five classes', async () => {
  const r = await runs.text;
  assert.equal(r.code, 0, r.err);
  assert.equal(r.out, [
    `${p('knife.png')}: nudity not detected (Porn+Hentai+Sexy 0.002)`,
    '  Drawing  0.001',
    '  Hentai   0.000',
    '  Neutral  0.997',
    '  Porn     0.002',
    '  Sexy     0.000',
    '',
  ].join('\n'));
});

test('detect: an unknown detector, or --model with nsfwjs, is a one-line usage error (exit 2)', async () => {
  const unknown = await runs.unknown;
  assert.equal(unknown.code, 2);
  assert.equal(unknown.err.trim(), "mce detect: unknown detector 'nudenet' (known: emoji, nsfwjs)");
  assert.equal(unknown.out, '');
  const model = await runs.model;
  assert.equal(model.code, 2);
  assert.equal(model.err.trim().split('\n').length, 1, model.err);
  assert.match(model.err, /^mce detect: --model is for the emoji detector/);
});

test('detect --help lists --detector with its default', async () => {
  const r = await runs.help;
  assert.equal(r.code, 0, r.err);
  assert.match(r.out, /--detector <string> +emoji .*nsfwjs .*\(default: emoji\)/);
});
