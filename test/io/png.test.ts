import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createHash } from 'node:crypto';
import { crc32, decodePng, encodePng, encodeRgbPng, PngError, readPng, toRGB, writePng, type Image } from '../../src/io/png.js';

const FIX = join(dirname(fileURLToPath(import.meta.url)), 'fixtures', 'png');
const dir = fs.mkdtempSync(join(tmpdir(), 'mce-png-'));
after(() => fs.rmSync(dir, { recursive: true, force: true }));

function pattern(w: number, h: number, ch: 1 | 2 | 3 | 4, seed = 1): Image {
  const data = new Uint8Array(w * h * ch);
  let s = seed;
  for (let i = 0; i < data.length; i++) {
    // Smooth areas (so filters matter) plus some noise.
    s = (s * 1103515245 + 12345) >>> 0;
    const x = (i / ch) % w;
    data[i] = (x * 9 + Math.floor(i / (w * ch)) * 5 + (i % 7 === 0 ? s >>> 24 : 0)) & 0xff;
  }
  return { width: w, height: h, channels: ch, data };
}

test('crc32 matches the standard check value', () => {
  assert.equal(crc32(new TextEncoder().encode('123456789')), 0xcbf43926);
});

test('encode/decode round trip for every channel count and odd sizes', () => {
  for (const ch of [1, 2, 3, 4] as const) {
    for (const [w, h] of [[1, 1], [7, 5], [32, 32], [33, 17]] as const) {
      const img = pattern(w, h, ch, w * h + ch);
      const back = decodePng(encodePng(img));
      assert.equal(back.width, w);
      assert.equal(back.height, h);
      assert.equal(back.channels, ch);
      assert.deepEqual(back.data, img.data);
    }
  }
});

test('the encoder is deterministic and its bytes are pinned', () => {
  const img = pattern(32, 32, 3, 7);
  const a = encodeRgbPng(32, 32, img.data);
  const b = encodePng({ ...img, data: Uint8Array.from(img.data) });
  assert.deepEqual(a, b);
  // Only IHDR, IDAT, IEND: no timestamps or text that could vary.
  const types: string[] = [];
  for (let p = 8; p < a.length; ) {
    const len = new DataView(a.buffer, a.byteOffset).getUint32(p);
    types.push(String.fromCharCode(...a.subarray(p + 4, p + 8)));
    p += 12 + len;
  }
  assert.deepEqual(types, ['IHDR', 'IDAT', 'IEND']);
  // Pinned: a change here changes every PNG mce writes (zlib level, filter heuristic).
  assert.equal(createHash('sha256').update(a).digest('hex').slice(0, 16), PINNED);
});
// Our deflate makes these bytes the same on every machine (node:zlib's would not be).
const PINNED = 'd2fb1bc8be3f142c';

test('encoder rejects bad input with PngError', () => {
  assert.throws(() => encodeRgbPng(2, 2, new Uint8Array(11)), PngError);
  assert.throws(() => encodeRgbPng(0, 2, new Uint8Array(0)), PngError);
  assert.throws(() => encodePng({ width: 1, height: 1, channels: 5 as 3, data: new Uint8Array(5) }), PngError);
});

test('decodes PNGs written by an independent writer (Python zlib fixtures)', () => {
  const expected = JSON.parse(fs.readFileSync(join(FIX, 'expected.json'), 'utf8')) as Record<
    string,
    { width?: number; height?: number; channels?: number; hex?: string; error?: string }
  >;
  assert.ok(Object.keys(expected).length >= 10);
  for (const [name, want] of Object.entries(expected)) {
    const bytes = new Uint8Array(fs.readFileSync(join(FIX, name)));
    if (want.error) {
      assert.throws(() => decodePng(bytes), (e: unknown) => e instanceof PngError && e.message.includes(want.error!), name);
      continue;
    }
    const img = decodePng(bytes);
    assert.equal(img.width, want.width, name);
    assert.equal(img.height, want.height, name);
    assert.equal(img.channels, want.channels, name);
    assert.equal(Buffer.from(img.data).toString('hex'), want.hex, name);
  }
});

test('interlaced files get a clear one-line error', () => {
  assert.throws(() => readPng(join(FIX, 'interlaced.png')), /interlaced \(Adam7\) images are not supported/);
});

test('readPng: missing, non-PNG and empty files give one-line PngErrors naming the file', () => {
  const junk = join(dir, 'junk.png');
  fs.writeFileSync(junk, 'hello, not a png');
  const empty = join(dir, 'empty.png');
  fs.writeFileSync(empty, '');
  for (const [p, re] of [[join(dir, 'nope.png'), /no such file/], [junk, /not a PNG/], [empty, /not a PNG/], [dir, /directory/]] as const) {
    assert.throws(() => readPng(p), (e: unknown) => e instanceof PngError && re.test(e.message) && e.message.startsWith(p) && !e.message.includes('\n'));
  }
});

test('every truncation of a valid file fails cleanly (PngError, never another error)', () => {
  const full = encodePng(pattern(9, 6, 3));
  for (let n = 0; n < full.length; n++) {
    assert.throws(() => decodePng(full.subarray(0, n)), PngError, `length ${n}`);
  }
});

test('toRGB composites alpha over white and expands grey', () => {
  const rgba: Image = { width: 2, height: 1, channels: 4, data: Uint8Array.from([255, 0, 0, 255, 0, 0, 0, 0]) };
  assert.deepEqual(toRGB(rgba), Uint8Array.from([255, 0, 0, 255, 255, 255]));
  const ga: Image = { width: 1, height: 1, channels: 2, data: Uint8Array.from([0, 128]) };
  assert.deepEqual(toRGB(ga), Uint8Array.from([127, 127, 127]));
  const g: Image = { width: 1, height: 1, channels: 1, data: Uint8Array.from([9]) };
  assert.deepEqual(toRGB(g), Uint8Array.from([9, 9, 9]));
});

test('writePng writes atomically and reads back', async () => {
  const p = join(dir, 'out.png');
  const img = pattern(5, 4, 3);
  await writePng(p, img);
  assert.deepEqual(readPng(p).data, img.data);
  assert.deepEqual(fs.readdirSync(dir).filter((f) => f.endsWith('.tmp')), []);
});

// An independent decoder for our encoder's output: Python's zlib plus a few lines of unfiltering.
const PY_DECODE = `
import sys, zlib, struct
d = open(sys.argv[1], 'rb').read()
assert d[:8] == b'\\x89PNG\\r\\n\\x1a\\n'
p, idat = 8, b''
while p < len(d):
    n, t = struct.unpack('>I4s', d[p:p+8]); body = d[p+8:p+8+n]
    assert zlib.crc32(t + body) & 0xffffffff == struct.unpack('>I', d[p+8+n:p+12+n])[0]
    if t == b'IHDR': w, h, depth, ct = struct.unpack('>IIBB', body[:10])
    if t == b'IDAT': idat += body
    p += 12 + n
bpp = {0: 1, 2: 3, 4: 2, 6: 4}[ct]; stride = w * bpp; raw = zlib.decompress(idat); out = bytearray(); prev = bytes(stride)
for y in range(h):
    f = raw[y*(stride+1)]; row = bytearray(raw[y*(stride+1)+1:(y+1)*(stride+1)])
    for i in range(stride):
        a = row[i-bpp] if i >= bpp else 0; b = prev[i]; c = prev[i-bpp] if i >= bpp else 0
        pp = a + b - c; pa, pb, pc = abs(pp-a), abs(pp-b), abs(pp-c)
        pr = a if pa <= pb and pa <= pc else (b if pb <= pc else c)
        row[i] = (row[i] + [0, a, b, (a+b)>>1, pr][f]) & 255
    out += row; prev = bytes(row)
sys.stdout.write(out.hex())
`;

test('an independent decoder (Python zlib) reads our output', { skip: spawnSync('python3', ['-c', '1']).status !== 0 && 'python3 not available' }, () => {
  for (const ch of [1, 3, 4] as const) {
    const img = pattern(13, 11, ch, 3);
    const p = join(dir, `py${ch}.png`);
    fs.writeFileSync(p, encodePng(img));
    const r = spawnSync('python3', ['-c', PY_DECODE, p], { encoding: 'utf8' });
    assert.equal(r.status, 0, r.stderr);
    assert.equal(r.stdout, Buffer.from(img.data).toString('hex'));
  }
});
