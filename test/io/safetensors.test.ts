import { test, describe, after } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  SafetensorsError, SafetensorsFile, SafetensorsWriter, layoutHeader, loadFloat32, summarizeTensors,
  writeSafetensors, naturalCompare, MAX_HEADER_BYTES, type WriteTensor,
} from '../../src/io/safetensors.js';
import {
  bf16BitsToFloat, f16BitsToFloat, floatToBf16Bits, floatToF16Bits, toFloat32, DTYPES, DTYPE_SIZE, type Dtype,
} from '../../src/io/dtypes.js';

const SHARED = fileURLToPath(new URL('../../../shared/', import.meta.url));
const GOLDEN = process.env['MCE_GOLDEN_DIR'] ?? join(SHARED, 'golden');
const FIXTURE = join(SHARED, 'data/fixtures/eraseanything-flux-dev-lora.safetensors');

const dir = fs.mkdtempSync(join(tmpdir(), 'mce-safetensors-'));
after(() => fs.rmSync(dir, { recursive: true, force: true }));
let counter = 0;
const tmp = (name = 'f.safetensors'): string => join(dir, `${counter++}-${name}`);

function walk(root: string): string[] {
  if (!fs.existsSync(root)) return [];
  return fs.readdirSync(root, { withFileTypes: true }).flatMap((d) => {
    const p = join(root, d.name);
    return d.isDirectory() ? walk(p) : d.name.endsWith('.safetensors') ? [p] : [];
  });
}

/** A file with a hand-made header (string or object) and a data section of `data` bytes. */
function rawFile(header: string | object, data: number | Uint8Array = 0, declaredLength?: number): string {
  const json = Buffer.from(typeof header === 'string' ? header : JSON.stringify(header));
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(declaredLength ?? json.byteLength));
  const body = typeof data === 'number' ? new Uint8Array(data) : data;
  const p = tmp();
  fs.writeFileSync(p, Buffer.concat([len, json, body]));
  return p;
}

/** Assert that opening `path` fails with a SafetensorsError naming the file and matching `re`. */
async function rejects(path: string, re: RegExp): Promise<void> {
  await assert.rejects(SafetensorsFile.open(path), (e: unknown) => {
    assert.ok(e instanceof SafetensorsError, `expected SafetensorsError, got ${String(e)}`);
    assert.ok(e.message.startsWith(path + ': '), `message should start with the path: ${e.message}`);
    assert.ok(!e.message.includes('\n'), 'one line');
    assert.match(e.message, re);
    return true;
  });
}

const strayTemps = (): string[] => fs.readdirSync(dir).filter((f) => f.endsWith('.tmp'));
const bitsOf = (v: number): number => new Uint32Array(new Float32Array([v]).buffer)[0]!;
const floatOfBits = (b: number): number => new Float32Array(new Uint32Array([b]).buffer)[0]!;

describe('golden files', () => {
  const files = walk(GOLDEN);
  test('there are golden files to read', () => assert.ok(files.length > 0, `no .safetensors under ${GOLDEN}`));

  for (const path of files) {
    test(`reads ${path.slice(GOLDEN.length + 1)}: F32, consistent shapes, finite values`, async () => {
      const f = await SafetensorsFile.open(path);
      try {
        assert.ok(f.names.length > 0);
        for (const name of f.names) {
          const e = f.entry(name);
          assert.equal(e.dtype, 'F32', name);
          const n = e.shape.reduce((a, b) => a * b, 1);
          assert.equal(e.offsets[1] - e.offsets[0], n * 4, name);
          const data = await f.readFloat32(name);
          assert.equal(data.length, n);
          assert.ok(data.every(Number.isFinite), `${name} has non-finite values`);
        }
      } finally {
        await f.close();
      }
    });

    test(`rewriting ${path.slice(GOLDEN.length + 1)} reproduces its data and header`, async () => {
      const src = await SafetensorsFile.open(path);
      const out = tmp();
      const w = await SafetensorsWriter.create(out, src.names.map((name) => ({ name, ...src.entry(name) })), src.metadata);
      for await (const t of src) await w.write(t.name, t.bytes);
      await w.finish();
      await src.close();
      const a = fs.readFileSync(path);
      const b = fs.readFileSync(out);
      const hdr = (buf: Buffer) => JSON.parse(buf.subarray(8, 8 + Number(buf.readBigUInt64LE(0))).toString());
      assert.deepEqual(hdr(b), hdr(a));
      assert.ok(a.subarray(8 + Number(a.readBigUInt64LE(0))).equals(b.subarray(8 + Number(b.readBigUInt64LE(0)))), 'data section');
      // Python puts __metadata__ first or last depending on its version; without it, bytes agree.
      if (Object.keys(src.metadata).length === 0) assert.ok(a.equals(b), 'byte-identical to the Python writer');
    });
  }
});

describe('the real LoRA fixture', () => {
  test('lists 76 BF16 tensors with the known names, shapes and totals', async () => {
    const f = await SafetensorsFile.open(FIXTURE);
    await f.close();
    assert.equal(f.names.length, 76);
    assert.ok(f.names.every((n) => f.entry(n).dtype === 'BF16'));
    assert.deepEqual({ ...f.metadata }, { format: 'pt' });
    assert.equal(f.headerBytes, 10056);
    assert.deepEqual(f.entry('transformer.transformer_blocks.0.attn.add_k_proj.lora_A.weight').shape, [8, 3072]);
    assert.deepEqual(f.entry('transformer.transformer_blocks.18.attn.add_q_proj.lora_B.weight').shape, [3072, 8]);
    assert.deepEqual(f.entry('transformer.transformer_blocks.9.attn.add_q_proj.lora_B.weight').offsets, [3686400, 3735552]);
    for (let b = 0; b < 19; b++) {
      for (const p of ['add_k_proj', 'add_q_proj']) {
        assert.deepEqual(f.entry(`transformer.transformer_blocks.${b}.attn.${p}.lora_A.weight`).shape, [8, 3072]);
        assert.deepEqual(f.entry(`transformer.transformer_blocks.${b}.attn.${p}.lora_B.weight`).shape, [3072, 8]);
      }
    }
    const s = summarizeTensors(f);
    assert.equal(s.totalParams, 1_867_776);
    assert.equal(s.totalBytes, 3_735_552);
    // Natural order: block 2 before block 10.
    const blocks = s.tensors.map((t) => Number(t.name.split('.')[2]));
    assert.deepEqual(blocks, [...blocks].sort((a, b) => a - b));
  });

  test('BF16 decoding matches Python (struct) on known tensors', async () => {
    const f = await SafetensorsFile.open(FIXTURE);
    try {
      // Reference values decoded with Python's struct module from the same bytes.
      const a = await f.readFloat32('transformer.transformer_blocks.0.attn.add_k_proj.lora_A.weight');
      assert.deepEqual([...a.subarray(0, 4)], [-0.10009765625, -0.0419921875, -0.1142578125, 0.10546875]);
      assert.deepEqual([...a.subarray(-2)], [-0.0302734375, -0.0478515625]);
      assert.ok(Math.abs(a.reduce((s, v) => s + v, 0) - 29.24888187646866) < 1e-9);
      const raw = await f.read('transformer.transformer_blocks.9.attn.add_q_proj.lora_B.weight');
      assert.ok(raw instanceof Uint16Array);
      assert.deepEqual([...raw.subarray(0, 4)], [0x3a9f, 0x3b62, 0xbc05, 0xbc36]);
      const b = toFloat32('BF16', new Uint8Array(raw.buffer));
      assert.deepEqual([...b.subarray(0, 2)], [0.00121307373046875, 0.003448486328125]);
      assert.equal(b[b.length - 2], -8.440017700195312e-5);
      assert.ok(Math.abs(b.reduce((s, v) => s + Math.abs(v), 0) - 293.7093571200967) < 1e-9);
    } finally {
      await f.close();
    }
  });

  test('a streaming copy reproduces the Python-written file byte for byte', async () => {
    const src = await SafetensorsFile.open(FIXTURE);
    const out = tmp();
    const w = await SafetensorsWriter.create(out, src.names.map((name) => ({ name, ...src.entry(name) })), src.metadata);
    // Feed them in reverse order: the writer places each tensor by its offset.
    for (const name of [...src.names].reverse()) await w.write(name, await src.readRaw(name));
    await w.finish();
    await src.close();
    assert.ok(fs.readFileSync(out).equals(fs.readFileSync(FIXTURE)));
  });

  test('a streaming transform (bf16 -> f32 -> bf16) is lossless', async () => {
    const src = await SafetensorsFile.open(FIXTURE);
    const out = tmp();
    const w = await SafetensorsWriter.create(out, src.names.map((name) => ({ name, ...src.entry(name) })), src.metadata);
    for await (const { name, entry, bytes } of src) await w.write(name, toFloat32(entry.dtype, bytes));
    await w.finish();
    await src.close();
    assert.ok(fs.readFileSync(out).equals(fs.readFileSync(FIXTURE)));
  });
});

describe('float conversions', () => {
  // Bit patterns checked against numpy's float16 cast; bf16 against PyTorch's rounding rule.
  const cases: [number, number, number][] = [
    // [f32 bits, f16 bits, bf16 bits]
    [0x3f800000, 0x3c00, 0x3f80], // 1
    [0x477fe000, 0x7bff, 0x4780], // 65504, the largest f16
    [0x477ff000, 0x7c00, 0x4780], // 65520: f16 tie rounds to even = inf
    [0x477fefff, 0x7bff, 0x4780], // just under the tie
    [0x33800000, 0x0001, 0x3380], // 2^-24, the smallest f16 subnormal
    [0x33000000, 0x0000, 0x3300], // 2^-25: tie between 0 and the smallest subnormal -> 0
    [0x33000001, 0x0001, 0x3300], // just above that tie
    [0x33c00000, 0x0002, 0x33c0], // 3 * 2^-25: tie -> even (2)
    [0x38800000, 0x0400, 0x3880], // 2^-14, the smallest f16 normal
    [0x387fc000, 0x03ff, 0x3880], // the largest f16 subnormal
    [0x3f801000, 0x3c00, 0x3f80], // 1 + 2^-11: f16 tie -> even
    [0x3f803000, 0x3c02, 0x3f80], // 1 + 3 * 2^-11: f16 tie -> even (up)
    [0x3f808000, 0x3c04, 0x3f80], // 1 + 2^-8: bf16 tie -> even (down)
    [0x3f818000, 0x3c0c, 0x3f82], // 1 + 3 * 2^-8: bf16 tie -> even (up)
    [0x3f80ffff, 0x3c08, 0x3f81], // just under a bf16 tie... above half: up
    [0x80000000, 0x8000, 0x8000], // -0
    [0x7fc00000, 0x7e00, 0x7fc0], // nan
    [0xff800000, 0xfc00, 0xff80], // -inf
    [0x7f7fffff, 0x7c00, 0x7f80], // f32 max: inf in both
    [0x7f7f8000, 0x7c00, 0x7f80], // bf16 tie at the top -> even = inf
    [0x00000001, 0x0000, 0x0000], // f32 subnormal
    [0xc2f6e979, 0xd7b7, 0xc2f7], // -123.456
    [0x40490fdb, 0x4248, 0x4049], // pi
  ];
  test('f32 -> f16 and f32 -> bf16 on known bit patterns', () => {
    for (const [f, h, b] of cases) {
      const v = floatOfBits(f);
      assert.equal(floatToF16Bits(v), h, `f16 of 0x${f.toString(16)}`);
      assert.equal(floatToBf16Bits(v), b, `bf16 of 0x${f.toString(16)}`);
    }
    assert.equal(floatToF16Bits(floatOfBits(0x7f800001)) & 0x7fff, 0x7e00, 'a signalling nan stays a nan');
    assert.equal(floatToBf16Bits(floatOfBits(0xff800001)), 0xffc0);
  });

  // Exhaustive: every representable value survives a round trip, every midpoint between two
  // neighbours rounds to the even one, and one f32 ulp either side of it rounds to the nearer.
  function exhaustive(decode: (h: number) => number, encode: (v: number) => number, maxFinite: number, top: number): void {
    for (let h = 0; h <= maxFinite; h++) {
      const lo = decode(h);
      assert.equal(encode(lo), h);
      assert.equal(encode(-lo), h | 0x8000);
      const hi = h === maxFinite ? top : decode(h + 1);
      const mid = (lo + hi) / 2;
      const m = bitsOf(mid);
      assert.equal(floatOfBits(m), mid, 'midpoint is exact in f32');
      assert.equal(encode(mid), h % 2 === 0 ? h : h + 1, `tie above 0x${h.toString(16)}`);
      assert.equal(encode(floatOfBits(m - 1)), h);
      assert.equal(encode(floatOfBits(m + 1)), h + 1);
    }
  }
  test('f16 rounding is correct for every f16 value and midpoint (subnormals, overflow)', () => {
    exhaustive(f16BitsToFloat, floatToF16Bits, 0x7bff, 65536);
    assert.equal(f16BitsToFloat(0x7c00), Infinity);
    assert.ok(Number.isNaN(f16BitsToFloat(0x7e00)));
  });
  test('bf16 rounding is correct for every bf16 value and midpoint', () => {
    exhaustive(bf16BitsToFloat, floatToBf16Bits, 0x7f7f, 2 ** 128);
  });

  test('decoding every dtype to float32', () => {
    const b = (a: ArrayBufferView) => new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
    assert.deepEqual([...toFloat32('I64', b(new BigInt64Array([-3n, 0n, 1n << 40n])))], [-3, 0, 2 ** 40]);
    assert.deepEqual([...toFloat32('U64', b(new BigUint64Array([7n])))], [7]);
    assert.deepEqual([...toFloat32('I32', b(new Int32Array([-5, 6])))], [-5, 6]);
    assert.deepEqual([...toFloat32('I16', b(new Int16Array([-5, 6])))], [-5, 6]);
    assert.deepEqual([...toFloat32('I8', b(new Int8Array([-128, 127])))], [-128, 127]);
    assert.deepEqual([...toFloat32('U32', b(new Uint32Array([4e9])))], [4e9]);
    assert.deepEqual([...toFloat32('U16', b(new Uint16Array([65535])))], [65535]);
    assert.deepEqual([...toFloat32('U8', new Uint8Array([0, 255]))], [0, 255]);
    assert.deepEqual([...toFloat32('BOOL', new Uint8Array([0, 1, 1]))], [0, 1, 1]);
    assert.deepEqual([...toFloat32('F64', b(new Float64Array([0.5, -2])))], [0.5, -2]);
    assert.deepEqual([...toFloat32('F16', b(new Uint16Array([0x3c00, 0x0001, 0xfc00])))], [1, 2 ** -24, -Infinity]);
    // FP8 (OCP, as torch.float8_e4m3fn / float8_e5m2).
    const e4 = toFloat32('F8_E4M3', new Uint8Array([0x38, 0x7e, 0x01, 0x08, 0xb8, 0x7f]));
    assert.deepEqual([...e4.subarray(0, 5)], [1, 448, 2 ** -9, 2 ** -6, -1]);
    assert.ok(Number.isNaN(e4[5]!));
    const e5 = toFloat32('F8_E5M2', new Uint8Array([0x3c, 0x7b, 0x7c, 0x01, 0xfc, 0x7d]));
    assert.deepEqual([...e5.subarray(0, 5)], [1, 57344, Infinity, 2 ** -16, -Infinity]);
    assert.ok(Number.isNaN(e5[5]!));
  });
});

describe('write and read back', () => {
  const values = new Float32Array([0, 1, -2.5, 3.14159, 1e-8, 65519.996, -1e30, 0.1]);

  test('F32, F16 and BF16 written from float32', async () => {
    const p = tmp();
    await writeSafetensors(p, {
      a32: { dtype: 'F32', shape: [2, 4], data: values },
      a16: { dtype: 'F16', shape: [8], data: values },
      abf: { dtype: 'BF16', shape: [4, 2], data: values },
    }, { note: 'hello', format: 'pt' });
    const f = await SafetensorsFile.open(p);
    try {
      assert.deepEqual({ ...f.metadata }, { format: 'pt', note: 'hello' });
      assert.deepEqual(await f.readFloat32('a32'), values);
      const h = (await f.read('a16')) as Uint16Array;
      assert.deepEqual([...h], [...values].map(floatToF16Bits));
      assert.deepEqual([...(await f.readFloat32('a16', { finite: false }))], [...values].map((v) => f16BitsToFloat(floatToF16Bits(v)))); // -1e30 overflows F16 to -Inf
      assert.deepEqual([...((await f.read('abf')) as Uint16Array)], [...values].map(floatToBf16Bits));
      assert.deepEqual([...(await f.readFloat32('abf'))], [...values].map((v) => bf16BitsToFloat(floatToBf16Bits(v))));
      assert.deepEqual(f.entry('abf').shape, [4, 2]);
    } finally {
      await f.close();
    }
  });

  test('raw data of every dtype passes through unchanged, read() gives the dtype\'s typed array', async () => {
    const make: Record<Dtype, () => ArrayBufferView> = {
      F64: () => new Float64Array([1.5, -2]), F32: () => new Float32Array([1.5, -2]),
      F16: () => new Uint16Array([0x3c00, 0xc000]), BF16: () => new Uint16Array([0x3fc0, 0xc000]),
      F8_E4M3: () => new Uint8Array([0x38, 0x40]), F8_E5M2: () => new Uint8Array([0x3c, 0x40]),
      I64: () => new BigInt64Array([-(2n ** 62n), 5n]), I32: () => new Int32Array([-7, 8]),
      I16: () => new Int16Array([-7, 8]), I8: () => new Int8Array([-7, 8]),
      U64: () => new BigUint64Array([2n ** 63n, 5n]), U32: () => new Uint32Array([4e9, 8]),
      U16: () => new Uint16Array([65535, 8]), U8: () => new Uint8Array([255, 8]), BOOL: () => new Uint8Array([1, 0]),
    };
    const tensors: Record<string, WriteTensor> = {};
    for (const dt of DTYPES) {
      const arr = make[dt]();
      // Raw bytes as a Uint8Array for some, the typed array itself for the others.
      const data = dt.length % 2 ? new Uint8Array(arr.buffer) : (arr as WriteTensor['data']);
      tensors[`t.${dt}`] = { dtype: dt, shape: [2], data };
    }
    const p = tmp();
    await writeSafetensors(p, tensors);
    const f = await SafetensorsFile.open(p);
    try {
      for (const dt of DTYPES) {
        const want = make[dt]();
        const got = await f.read(`t.${dt}`);
        assert.equal(got.constructor.name, want.constructor.name, dt);
        assert.deepEqual([...got], [...(want as unknown as Iterable<unknown>)], dt);
        assert.deepEqual(await f.readRaw(`t.${dt}`), new Uint8Array(want.buffer), dt);
      }
      assert.equal(f.entry('t.I64').dtype, 'I64');
      assert.deepEqual([...(await f.readFloat32('t.BOOL'))], [1, 0]);
      // Every tensor starts at a multiple of its element size (the layout is alignment-descending).
      for (const n of f.names) assert.equal((f.dataStart + f.entry(n).offsets[0]) % DTYPE_SIZE[f.entry(n).dtype], 0, n);
    } finally {
      await f.close();
    }
  });

  test('layout: deterministic bytes, dtype rank then byte-order names, padded header', async () => {
    const t = (dtype: Dtype, n: number): WriteTensor => ({ dtype, shape: [n], data: dtype === 'U8' ? new Uint8Array(n) : new Float32Array(n).fill(0.5) });
    const entries: [string, WriteTensor][] = [['b', t('F16', 3)], ['a', t('BF16', 1)], ['0', t('F32', 1)], ['Z', t('F32', 2)], ['c', t('U8', 3)], ['10', t('F32', 1)], ['é', t('F16', 1)]];
    const p1 = tmp();
    const p2 = tmp();
    await writeSafetensors(p1, new Map(entries), { z: '1', a: '2' });
    await writeSafetensors(p2, new Map([...entries].reverse()), { a: '2', z: '1' });
    const bytes = fs.readFileSync(p1);
    assert.ok(bytes.equals(fs.readFileSync(p2)), 'same tensors in any insertion order give the same bytes');
    const n = Number(bytes.readBigUInt64LE(0));
    assert.equal(n % 8, 0, 'header padded to a multiple of 8');
    const text = bytes.subarray(8, 8 + n).toString();
    assert.match(text, /^\{"__metadata__":\{"a":"2","z":"1"\},"0":/);
    assert.match(text, /\} *$/);
    const f = await SafetensorsFile.open(p1);
    await f.close();
    assert.deepEqual(f.names, ['0', '10', 'Z', 'a', 'b', 'é', 'c']);
    assert.deepEqual(layoutHeader(entries.map(([name, x]) => ({ name, ...x }))).names, f.names);
    assert.deepEqual(f.entry('b').offsets, [18, 24]);
  });

  test('empty tensors, scalars and an empty file', async () => {
    const p = tmp();
    await writeSafetensors(p, {
      scalar: { dtype: 'F32', shape: [], data: new Float32Array([7]) },
      empty: { dtype: 'F32', shape: [0, 3], data: new Float32Array(0) },
      last: { dtype: 'F32', shape: [1], data: new Float32Array([8]) },
    });
    const { tensors } = await loadFloat32(p);
    assert.deepEqual(tensors['scalar'], { dtype: 'F32', shape: [], data: new Float32Array([7]) });
    assert.deepEqual(tensors['empty']!.shape, [0, 3]);
    assert.equal(tensors['empty']!.data.length, 0);
    assert.deepEqual([...tensors['last']!.data], [8]);
    const q = tmp();
    await writeSafetensors(q, {});
    const f = await SafetensorsFile.open(q);
    await f.close();
    assert.deepEqual(f.names, []);
    assert.equal(fs.readFileSync(q).toString('latin1'), '\x08\x00\x00\x00\x00\x00\x00\x00{}      ');
  });

  test('loadFloat32 reads a whole file into a record', async () => {
    const p = tmp();
    await writeSafetensors(p, { w: { dtype: 'BF16', shape: [2], data: new Float32Array([1, 2]) }, i: { dtype: 'I64', shape: [1], data: new BigInt64Array([3n]) } }, { k: 'v' });
    const { tensors, metadata } = await loadFloat32(p);
    assert.deepEqual(Object.keys(tensors).sort(), ['i', 'w']);
    assert.deepEqual(tensors['w'], { dtype: 'BF16', shape: [2], data: new Float32Array([1, 2]) });
    assert.deepEqual([...tensors['i']!.data], [3]);
    assert.equal(metadata['k'], 'v');
  });

  test('naturalCompare', () => {
    assert.deepEqual(['b.10.x', 'b.2.x', 'a', 'b.2', 'b.02.x'].sort(naturalCompare), ['a', 'b.2', 'b.2.x', 'b.02.x', 'b.10.x']);
  });
});

describe('validation', () => {
  const F32x2 = { dtype: 'F32', shape: [2], data_offsets: [0, 8] };

  test('too short for the length prefix', async () => {
    const p = tmp();
    fs.writeFileSync(p, Buffer.from([1, 2, 3]));
    await rejects(p, /too short/);
  });
  test('header over 100 MB', async () => {
    await rejects(rawFile('{}', 0, MAX_HEADER_BYTES + 1), /header length 100000001 bytes is over the 100 MB limit/);
  });
  test('header length larger than the file', async () => {
    await rejects(rawFile('{}', 0, 5000), /header length 5000 bytes is larger than the file \(10 bytes\)/);
  });
  test('invalid JSON', async () => {
    await rejects(rawFile('{"a": {'), /header is not valid JSON/);
  });
  test('invalid UTF-8', async () => {
    const p = tmp();
    const len = Buffer.alloc(8);
    len.writeBigUInt64LE(4n);
    fs.writeFileSync(p, Buffer.concat([len, Buffer.from([0x7b, 0xff, 0xfe, 0x7d])]));
    await rejects(p, /not valid UTF-8/);
  });
  test('header not an object', async () => {
    await rejects(rawFile('[1, 2]'), /header is not a JSON object/);
    await rejects(rawFile('42'), /header is not a JSON object/);
    await rejects(rawFile('null'), /header is not a JSON object/);
    await rejects(rawFile({ a: 5 }), /tensor 'a' is not a JSON object/);
  });
  test('bad __metadata__', async () => {
    await rejects(rawFile({ __metadata__: { a: 1 } }), /__metadata__ value for 'a' is not a string/);
    await rejects(rawFile({ __metadata__: ['x'] }), /__metadata__ is not a JSON object/);
  });
  test('unknown dtype', async () => {
    await rejects(rawFile({ a: { ...F32x2, dtype: 'F4' } }, 8), /tensor 'a' has unknown dtype "F4"/);
    await rejects(rawFile({ a: { ...F32x2, dtype: undefined } }, 8), /tensor 'a' has unknown dtype undefined/);
  });
  test('non-integer, negative or non-numeric shapes', async () => {
    await rejects(rawFile({ a: { ...F32x2, shape: [1.5] } }, 8), /tensor 'a' has invalid shape \[1.5\]/);
    await rejects(rawFile({ a: { ...F32x2, shape: [-2] } }, 8), /tensor 'a' has invalid shape \[-2\]/);
    await rejects(rawFile({ a: { ...F32x2, shape: ['2'] } }, 8), /tensor 'a' has invalid shape \["2"\]/);
    await rejects(rawFile({ a: { ...F32x2, shape: 2 } }, 8), /tensor 'a' has invalid shape 2/);
  });
  test('invalid data_offsets', async () => {
    await rejects(rawFile({ a: { ...F32x2, data_offsets: [8, 0] } }, 8), /tensor 'a' has invalid data_offsets \[8, 0\]/);
    await rejects(rawFile({ a: { ...F32x2, data_offsets: [-8, 0] } }, 8), /invalid data_offsets/);
    await rejects(rawFile({ a: { ...F32x2, data_offsets: [0] } }, 8), /invalid data_offsets/);
  });
  test('shape does not match the byte size', async () => {
    await rejects(rawFile({ a: { ...F32x2, shape: [3] } }, 8), /tensor 'a' has shape \[3\] F32 = 12 bytes, but data_offsets \[0, 8\] span 8 bytes/);
  });
  test('offsets out of range: the file is truncated', async () => {
    await rejects(rawFile({ a: F32x2, b: { ...F32x2, data_offsets: [8, 16] } }, 12), /file is truncated: tensors need 16 data bytes, the file has 12/);
  });
  test('overlapping tensors', async () => {
    await rejects(rawFile({ a: F32x2, b: { ...F32x2, data_offsets: [4, 12] } }, 12), /tensor 'b' \(bytes 4\.\.12\) overlaps tensor 'a' \(ends at 8\)/);
  });
  test('a gap between tensors, or before the first', async () => {
    await rejects(rawFile({ a: F32x2, b: { ...F32x2, data_offsets: [12, 20] } }, 20), /gap in the data section: bytes 8\.\.12 before tensor 'b'/);
    await rejects(rawFile({ b: { ...F32x2, data_offsets: [4, 12] } }, 12), /bytes 0\.\.4 before tensor 'b'/);
  });
  test('bytes after the last tensor', async () => {
    await rejects(rawFile({ a: F32x2 }, 10), /2 unexpected bytes after the last tensor/);
  });
  test('tensors listed out of order are fine when they cover the data exactly', async () => {
    const f = await SafetensorsFile.open(rawFile({ b: { ...F32x2, data_offsets: [8, 16] }, a: F32x2 }, 16));
    await f.close();
    assert.deepEqual(f.names, ['a', 'b']);
  });
  test('missing file, directory, unknown tensor', async () => {
    await rejects(join(dir, 'nope.safetensors'), /cannot open: no such file/);
    await rejects(dir, /is a directory/);
    const f = await SafetensorsFile.open(rawFile({ a: F32x2 }, 8));
    await assert.rejects(f.readRaw('zz'), /no tensor named 'zz'/);
    await f.close();
    await assert.rejects(f.readRaw('a'), /file is closed/);
  });
});

describe('laziness', () => {
  test('a 3 GB sparse file: open, list and read a small tensor without touching the big one', async (t) => {
    const big = 3_000_000_000;
    const header = { big: { dtype: 'F32', shape: [big / 4], data_offsets: [0, big] }, small: { dtype: 'F32', shape: [3], data_offsets: [big, big + 12] } };
    const json = Buffer.from(JSON.stringify(header));
    const len = Buffer.alloc(8);
    len.writeBigUInt64LE(BigInt(json.length));
    const p = tmp('sparse.safetensors');
    const fd = fs.openSync(p, 'w');
    try {
      fs.writeSync(fd, Buffer.concat([len, json]), 0, 8 + json.length, 0);
      fs.ftruncateSync(fd, 8 + json.length + big + 12); // a hole: no disk used
      fs.writeSync(fd, Buffer.from(new Float32Array([1, 2, 3]).buffer), 0, 12, 8 + json.length + big);
    } finally {
      fs.closeSync(fd);
    }
    try {
      const st = fs.statSync(p);
      if (st.blocks * 512 > 64 << 20) {
        t.skip('this file system does not make sparse files');
        return;
      }
      const rss0 = process.memoryUsage().rss;
      const f = await SafetensorsFile.open(p);
      assert.deepEqual(f.names, ['big', 'small']);
      assert.equal(summarizeTensors(f).totalBytes, big + 12);
      assert.deepEqual([...(await f.readFloat32('small'))], [1, 2, 3]);
      await f.close();
      assert.ok(process.memoryUsage().rss - rss0 < 100 << 20, 'memory stayed small');
    } finally {
      fs.rmSync(p);
    }
  });
});

describe('atomic writes', () => {
  test('a failed write leaves neither the final file nor a temporary file', async () => {
    const p = tmp();
    await assert.rejects(
      writeSafetensors(p, { a: { dtype: 'F32', shape: [4], data: new Float32Array(3) } }),
      (e: unknown) => e instanceof SafetensorsError && /tensor 'a': got 12 bytes of F32 data, the shape needs 16/.test(e.message),
    );
    assert.ok(!fs.existsSync(p));
    assert.deepEqual(strayTemps(), []);
  });

  test('a failed write keeps the previous file intact', async () => {
    const p = tmp();
    await writeSafetensors(p, { a: { dtype: 'F32', shape: [1], data: new Float32Array([1]) } });
    const before = fs.readFileSync(p);
    await assert.rejects(writeSafetensors(p, { a: { dtype: 'I32', shape: [1], data: new Float32Array([1]) } }), /cannot encode float32 values as I32/);
    assert.ok(fs.readFileSync(p).equals(before));
    assert.deepEqual(strayTemps(), []);
  });

  test('writer: abort, missing tensors, misuse', async () => {
    const specs = [{ name: 'a', dtype: 'F32' as const, shape: [1] }, { name: 'b', dtype: 'BF16' as const, shape: [2] }];
    const p = tmp();
    const w = await SafetensorsWriter.create(p, specs);
    assert.deepEqual(w.names, ['a', 'b']);
    assert.equal(strayTemps().length, 1, 'writes go to a temporary file');
    await w.write('a', new Float32Array([1]));
    await assert.rejects(w.write('a', new Float32Array([1])), /tensor 'a' written twice/);
    await assert.rejects(w.write('c', new Float32Array([1])), /tensor 'c' was not declared/);
    await w.abort();
    assert.ok(!fs.existsSync(p));
    assert.deepEqual(strayTemps(), []);

    const w2 = await SafetensorsWriter.create(p, specs);
    await w2.write('b', new Float32Array([1, 2]));
    await assert.rejects(w2.finish(), /1 tensor\(s\) never written, e\.g\. 'a'/);
    assert.ok(!fs.existsSync(p));
    assert.deepEqual(strayTemps(), []);

    await assert.rejects(SafetensorsWriter.create(p, [specs[0]!, specs[0]!]), /tensor 'a' is listed twice/);
    await assert.rejects(SafetensorsWriter.create(p, [{ name: 'x', dtype: 'F32', shape: [-1] }]), /invalid shape/);
    await assert.rejects(SafetensorsWriter.create(p, [{ name: 'x', dtype: 'F5' as Dtype, shape: [1] }]), /unknown dtype/);
    await assert.rejects(SafetensorsWriter.create(join(dir, 'no/such/dir/x.safetensors'), specs), /cannot write/);
    assert.deepEqual(strayTemps(), []);
  });
});
