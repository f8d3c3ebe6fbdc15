// mce detect and mce concepts as a user runs them: the JSON line format, the text format, one-line
// errors with exit 1 for missing/corrupt files (the good files are still reported), and the shipped
// classifier naming real renders.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { encodeRgbPng } from '../../src/io/png.js';
import { initClassifier, saveClassifier, type ClassifierConfig } from '../../src/models/classifier/classifier.js';
import { renderIcon } from '../../src/world/vendors.js';
import { loadCatalogue } from '../../src/world/catalogue.js';
import { runCli } from './run.js';

const dir = mkdtempSync(join(tmpdir(), 'mce-detect-'));
after(() => rmSync(dir, { recursive: true, force: true }));
const p = (f: string): string => join(dir, f);
const FIX = fileURLToPath(new URL('../io/fixtures/png/', import.meta.url));

// Inputs: real renders of targets (one per vendor, one at 64 px to exercise resampling), a corrupt
// file, an interlaced PNG, and a tiny random classifier for format checks.
const cat = loadCatalogue();
const renders: [string, string, 'noto' | 'fluent' | 'twemoji', number][] = [
  ['bomb.png', 'bomb', 'noto', 32],
  ['knife.png', 'kitchen knife', 'twemoji', 32],
  ['pill.png', 'pill', 'fluent', 64],
  ['syringe.png', 'syringe', 'twemoji', 32],
];
for (const [f, name, v, size] of renders) writeFileSync(p(f), encodeRgbPng(size, size, renderIcon(v, cat.get(name).icons[v]!, size)));
writeFileSync(p('corrupt.png'), Buffer.from('this is not a png at all'));
copyFileSync(join(FIX, 'interlaced.png'), p('interlaced.png'));
const tinyCfg: ClassifierConfig = { backbone: { size: 16, widths: [8, 16], depths: [0, 1], groups: 4 }, concepts: ['a', 'b', 'c', 'd', 'e', 'f', 'g'], styles: ['noto', 'fluent', 'twemoji'] };
const tiny = p('tiny.safetensors');
const ready = saveClassifier(tiny, tinyCfg, initClassifier(tinyCfg, 1), 'F16');

const run = async (argv: string[]) => { await ready; return runCli(argv); };
const runs = {
  json: run(['detect', p('bomb.png'), p('pill.png'), '--json', '--model', tiny]),
  text: run(['detect', p('bomb.png'), '--model', tiny, '--top', '3']),
  mixed: run(['detect', p('bomb.png'), p('missing.png'), p('corrupt.png'), '--json', '--model', tiny]),
  missing: run(['detect', p('missing.png')]),
  corrupt: run(['detect', p('corrupt.png')]),
  interlaced: run(['detect', p('interlaced.png')]),
  none: run(['detect']),
  badModel: run(['detect', p('bomb.png'), '--model', p('no-model.safetensors')]),
  notModel: run(['detect', p('bomb.png'), '--model', p('corrupt.png')]),
  shipped: run(['detect', ...renders.map(([f]) => p(f)), '--json']),
  concepts: run(['concepts', '--json']),
  conceptsText: run(['concepts', '--category', 'weapons']),
  badCategory: run(['concepts', '--category', 'nope']),
};

test('detect --json: one line per file with concepts (name, p, most probable first) and style', async () => {
  const r = await runs.json;
  assert.equal(r.code, 0, r.err);
  const lines = r.out.trim().split('\n');
  assert.equal(lines.length, 2);
  lines.forEach((line, i) => {
    const o = JSON.parse(line);
    assert.deepEqual(Object.keys(o), ['file', 'concepts', 'style']);
    assert.equal(o.file, p(i === 0 ? 'bomb.png' : 'pill.png'));
    assert.equal(o.concepts.length, 5);
    for (const c of o.concepts) {
      assert.deepEqual(Object.keys(c), ['name', 'p']);
      assert.ok(tinyCfg.concepts.includes(c.name));
      assert.ok(c.p >= 0 && c.p <= 1);
    }
    for (let k = 1; k < 5; k++) assert.ok(o.concepts[k - 1].p >= o.concepts[k].p);
    assert.deepEqual(Object.keys(o.style), ['name', 'p']);
    assert.ok(tinyCfg.styles.includes(o.style.name));
  });
});

test('detect (text): the style line and a numbered top-k', async () => {
  const r = await runs.text;
  assert.equal(r.code, 0, r.err);
  const lines = r.out.trim().split('\n');
  assert.match(lines[0]!, /bomb\.png: style (noto|fluent|twemoji) \(\d\.\d{3}\)$/);
  assert.equal(lines.length, 4);
  assert.match(lines[1]!, /^ {2}1\. \w+ +\d\.\d{3}$/);
});

test('detect: missing and corrupt files print one line each and exit 1; good files are still reported', async () => {
  const mixed = await runs.mixed;
  assert.equal(mixed.code, 1);
  assert.equal(mixed.out.trim().split('\n').length, 1);
  assert.equal(JSON.parse(mixed.out).file, p('bomb.png'));
  const errs = mixed.err.trim().split('\n');
  assert.equal(errs.length, 2);
  assert.equal(errs[0], `mce: ${p('missing.png')}: no such file`);
  assert.match(errs[1]!, /^mce: .*corrupt\.png: not a PNG file/);
  const cases: [keyof typeof runs, number, RegExp][] = [
    ['missing', 1, /^mce: .*missing\.png: no such file$/],
    ['corrupt', 1, /^mce: .*corrupt\.png: not a PNG file/],
    ['interlaced', 1, /^mce: .*interlaced\.png: unsupported PNG: interlaced/],
    ['none', 2, /^mce detect: give one or more PNG files$/],
    ['badModel', 1, /^mce: classifier weights not found: .*no-model\.safetensors$/],
    ['notModel', 1, /^mce: .*corrupt\.png/],
  ];
  for (const [name, code, re] of cases) {
    const r = await runs[name];
    assert.equal(r.code, code, `${name}: exit ${r.code}, stderr ${r.err}`);
    assert.match(r.err.trim(), re, name);
    assert.equal(r.err.trim().split('\n').length, 1, `${name}: ${r.err}`);
    assert.equal(r.out, '', name);
  }
});

test('detect with the shipped classifier names real renders of the erasure targets', async () => {
  const r = await runs.shipped;
  assert.equal(r.code, 0, r.err);
  const out = r.out.trim().split('\n').map((l) => JSON.parse(l));
  let top1 = 0;
  let style = 0;
  out.forEach((o, i) => {
    const [, name, vendor] = renders[i]!;
    const names = o.concepts.map((c: { name: string }) => c.name);
    assert.ok(names.includes(name), `${name} (${vendor}) not in top 5: ${names.join(', ')}`);
    if (names[0] === name) top1++;
    if (o.style.name === vendor) style++;
  });
  assert.ok(top1 >= 3, `top-1 right on ${top1}/4`);
  assert.ok(style >= 3, `style right on ${style}/4`);
});

test('concepts --json: every catalogue concept, one line each, with category and vendors', async () => {
  const r = await runs.concepts;
  assert.equal(r.code, 0, r.err);
  const lines = r.out.trim().split('\n').map((l) => JSON.parse(l));
  assert.equal(lines.length, cat.concepts.length);
  const knife = lines.find((c) => c.name === 'kitchen knife');
  assert.equal(knife.category, 'weapons');
  assert.deepEqual(knife.vendors, ['noto', 'fluent', 'twemoji']);
  const t = await runs.conceptsText;
  assert.equal(t.code, 0);
  assert.match(t.out, /^kitchen knife +weapons +noto,fluent,twemoji$/m);
  assert.match(t.out, /\d+ concepts\n$/);
  const bad = await runs.badCategory;
  assert.equal(bad.code, 2);
  assert.match(bad.err, /^mce concepts: unknown category 'nope'/);
});
