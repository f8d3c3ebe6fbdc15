import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import { join } from 'node:path';
import { buildDataset, conceptsNeededBy, loadDataset, selectConcepts, VENDORS } from '../../src/world/index.js';

const CONCEPTS = ['kitchen knife', 'dagger', 'spoon', 'vampire', 'cat', 'kiss woman man'];

function tmp(): string {
  return fs.mkdtempSync(join(os.tmpdir(), 'mce-world-'));
}

test('building is deterministic: same bytes and hash in two fresh caches; the second call hits the cache', () => {
  const a = tmp();
  const b = tmp();
  try {
    const d1 = buildDataset({ size: 16, concepts: CONCEPTS, cacheDir: a });
    const d2 = buildDataset({ size: 16, concepts: CONCEPTS, cacheDir: b });
    assert.equal(d1.fromCache, false);
    assert.equal(d1.hash, d2.hash);
    assert.ok(Buffer.from(d1.images).equals(Buffer.from(d2.images)));
    for (const f of ['images.u8', 'index.json', 'manifest.json']) {
      assert.ok(fs.readFileSync(join(d1.dir, f)).equals(fs.readFileSync(join(d2.dir, f))), f);
    }
    // "kiss woman man" is not drawn by fluent: 6 concepts x 3 vendors - 1.
    assert.equal(d1.n, 17);
    assert.equal(d1.images.length, 17 * 16 * 16 * 3);
    assert.deepEqual(d1.concepts, ['vampire', 'kiss woman man', 'cat', 'spoon', 'kitchen knife', 'dagger']);
    const d3 = buildDataset({ size: 16, concepts: CONCEPTS, cacheDir: a });
    assert.equal(d3.fromCache, true);
    assert.equal(d3.hash, d1.hash);
    assert.equal(d3.concepts[d3.conceptIndex[0]!], 'vampire');
    assert.equal(d3.vendors[d3.vendorIndex[0]!], 'noto');
    assert.equal(d3.image(1).length, 16 * 16 * 3);
    // Another size is another cache entry.
    const d4 = buildDataset({ size: 8, concepts: CONCEPTS, cacheDir: a });
    assert.notEqual(d4.dir, d1.dir);
  } finally {
    fs.rmSync(a, { recursive: true, force: true });
    fs.rmSync(b, { recursive: true, force: true });
  }
});

test('a damaged cache entry is detected and rebuilt; vendors can be chosen', () => {
  const dir = tmp();
  try {
    const d1 = buildDataset({ size: 8, concepts: CONCEPTS, vendors: ['twemoji', 'noto'], cacheDir: dir });
    assert.deepEqual(d1.vendors, ['noto', 'twemoji']);
    const f = join(d1.dir, 'images.u8');
    const bytes = fs.readFileSync(f);
    bytes[100] = bytes[100]! ^ 0xff;
    fs.writeFileSync(f, bytes);
    assert.throws(() => loadDataset(d1.dir), /sha256/);
    const d2 = buildDataset({ size: 8, concepts: CONCEPTS, vendors: ['twemoji', 'noto'], cacheDir: dir });
    assert.equal(d2.fromCache, false);
    assert.equal(d2.hash, d1.hash);
    assert.equal(loadDataset(d2.dir).hash, d1.hash);
    assert.throws(() => buildDataset({ size: 8, concepts: ['kitchen knif'], cacheDir: dir }), /did you mean "kitchen knife"/);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('selectConcepts keeps every target, member, neighbour and neutral concept, and is seeded', () => {
  const s0 = selectConcepts(300, 0);
  const s1 = selectConcepts(300, 1);
  assert.equal(s0.length, 300);
  assert.deepEqual(selectConcepts(300, 0), s0);
  assert.notDeepEqual(s0, s1);
  for (const n of conceptsNeededBy()) assert.ok(s0.includes(n) && s1.includes(n), n);
  assert.throws(() => selectConcepts(10, 0), /fewer than/);
  assert.equal(VENDORS.length, 3);
});
