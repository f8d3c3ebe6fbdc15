import { test } from 'node:test';
import assert from 'node:assert/strict';
import { inflateRawSync, inflateSync } from 'node:zlib';
import { adler32, deflateRaw, zlibCompress } from '../../src/io/deflate.js';

function lcg(seed: number): () => number {
  let s = seed >>> 0;
  return () => (s = (s * 1664525 + 1013904223) >>> 0) >>> 24;
}

const inputs: Array<[string, Uint8Array]> = (() => {
  const r = lcg(5);
  const rand = new Uint8Array(5000).map(() => r());
  const runs = new Uint8Array(70000).map((_, i) => (Math.floor(i / 300) % 3) * 80);
  const text = new TextEncoder().encode('a photo of a kitchen knife, an emoji of a dagger; '.repeat(400));
  const mixed = new Uint8Array(40000).map((_, i) => (i % 97 < 50 ? 255 : r() & 7));
  return [
    ['empty', new Uint8Array(0)],
    ['one byte', Uint8Array.of(7)],
    ['two bytes', Uint8Array.of(7, 7)],
    ['three equal', Uint8Array.of(1, 1, 1)],
    ['random', rand],
    ['long runs (matches of 258, far distances)', runs],
    ['text', text],
    ['mixed', mixed],
  ];
})();

test('node:zlib inflates our deflate output exactly (the zlib stream also checks Adler-32)', () => {
  for (const [name, data] of inputs) {
    assert.deepEqual(new Uint8Array(inflateRawSync(deflateRaw(data))), data, name);
    assert.deepEqual(new Uint8Array(inflateSync(zlibCompress(data))), data, name);
  }
});

test('compression is deterministic and actually compresses', () => {
  for (const [name, data] of inputs) assert.deepEqual(deflateRaw(data), deflateRaw(Uint8Array.from(data)), name);
  const runs = inputs[5]![1];
  assert.ok(deflateRaw(runs).length < runs.length / 50);
  const text = inputs[6]![1];
  assert.ok(deflateRaw(text).length < text.length / 20);
});

test('adler32 known value', () => {
  assert.equal(adler32(new TextEncoder().encode('Wikipedia')), 0x11e60398);
});
