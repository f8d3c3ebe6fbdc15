// The safetensors reader against a fuzz corpus with a
// fixed seed and a bounded count: random bytes, truncation at every offset, header-length bombs,
// mutated headers (bad dtypes, shapes, offsets out of range or overlapping, non-JSON, deep nesting),
// random byte flips and NaN/Inf weights. Every case either reads cleanly (and then every value is
// finite) or fails with the reader's one-line error naming the file: never another exception, a
// crash or a hang. The loaders above the reader (FLUX checkpoints, MCE mask files, model bundles)
// get the same treatment with their own error classes.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Rng } from '../../src/engine/rng.js';
import { SafetensorsError, SafetensorsFile, loadFloat32, writeSafetensors, MAX_HEADER_BYTES, type WriteTensor } from '../../src/io/safetensors.js';
import { CheckpointError, loadFluxCheckpoint, saveFluxCheckpoint } from '../../src/io/checkpoint.js';
import { MaskFileError, loadMasks, saveMasks } from '../../src/erase/mce/maskfile.js';
import { ModelLoadError } from '../../src/generate/bundle.js';
import { loadTextToImage } from '../../src/generate/index.js';
import { writeTinyFluxBundle } from '../erase/baselines/fixture.js';
import { initFluxWeights, type FluxParams } from '../../src/models/flux/index.js';
import { floatToBf16Bits, floatToF16Bits } from '../../src/io/dtypes.js';
import { tf } from '../../src/engine/tf.js';
import { useBackend } from '../../src/engine/backend.js';

const SEED = 20251126;
const dir = fs.mkdtempSync(join(tmpdir(), 'mce-st-fuzz-'));
after(() => fs.rmSync(dir, { recursive: true, force: true }));
let counter = 0;

// A hang bound per case (not a speed check): each case reads a file of at most a few KB.
const HANG_MS = 20_000;

function withBound<T>(p: Promise<T>, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const hang = new Promise<never>((_, reject) => { timer = setTimeout(() => reject(new Error(`hung: ${what}`)), HANG_MS); });
  return Promise.race([p, hang]).finally(() => clearTimeout(timer));
}

type Outcome = { ok: true; values: number } | { ok: false; message: string };

/** Everything a reader does with a file: open, list, read each tensor raw and as float32, load it whole. */
async function probe(bytes: Uint8Array, what: string): Promise<Outcome> {
  const path = join(dir, `${counter++}.safetensors`);
  fs.writeFileSync(path, bytes);
  try {
    return await withBound((async (): Promise<Outcome> => {
      let values = 0;
      try {
        const f = await SafetensorsFile.open(path);
        try {
          for (const name of f.names) {
            await f.read(name);
            const v = await f.readFloat32(name);
            for (const x of v) assert.ok(Number.isFinite(x), `${what}: a non-finite value was read from '${name}'`);
            values += v.length;
          }
        } finally {
          await f.close();
        }
        const whole = await loadFloat32(path);
        for (const t of Object.values(whole.tensors)) for (const x of t.data) assert.ok(Number.isFinite(x), `${what}: loadFloat32 returned a non-finite value`);
        return { ok: true, values };
      } catch (e) {
        if (!(e instanceof SafetensorsError)) throw new assert.AssertionError({ message: `${what}: not a SafetensorsError: ${(e as Error)?.stack ?? String(e)}` });
        return { ok: false, message: e.message };
      }
    })(), what);
  } finally {
    fs.rmSync(path, { force: true });
  }
}

/** A failure must be one short line that starts with the file's path. */
function assertClear(o: Outcome, what: string): void {
  if (o.ok) return;
  assert.match(o.message, /^\/.*\.safetensors: \S/, `${what}: ${o.message}`);
  assert.ok(!o.message.includes('\n'), `${what}: more than one line: ${o.message}`);
  assert.ok(o.message.length < 400, `${what}: message too long (${o.message.length} chars)`);
}

function fileOf(header: string, data: Uint8Array, declared?: bigint): Uint8Array {
  const json = Buffer.from(header, 'utf8');
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(declared ?? BigInt(json.byteLength));
  return Buffer.concat([len, json, data]);
}

/** A valid file with several dtypes, an empty tensor, a scalar and metadata. */
async function validFile(): Promise<{ bytes: Uint8Array; header: Record<string, { dtype: string; shape: number[]; data_offsets: number[] }> & { __metadata__?: unknown }; data: Uint8Array }> {
  const rng = new Rng(SEED);
  const f32 = (n: number): Float32Array => Float32Array.from({ length: n }, () => rng.normal());
  const tensors: Record<string, WriteTensor> = {
    'a.weight': { dtype: 'F32', shape: [3, 4], data: f32(12) },
    'b.bias': { dtype: 'BF16', shape: [5], data: f32(5) },
    'c.half': { dtype: 'F16', shape: [2, 2, 2], data: f32(8) },
    'd.ids': { dtype: 'I32', shape: [3], data: Int32Array.from([1, 2, 3]) },
    'e.empty': { dtype: 'F32', shape: [0, 7], data: new Float32Array(0) },
    'f.scalar': { dtype: 'F32', shape: [], data: Float32Array.from([0.5]) },
    'g.bytes': { dtype: 'U8', shape: [6], data: Uint8Array.from([0, 1, 2, 3, 254, 255]) },
  };
  const path = join(dir, 'valid.safetensors');
  await writeSafetensors(path, tensors, { format: 'pt', note: 'fuzz base' });
  const bytes = new Uint8Array(fs.readFileSync(path));
  const n = Number(Buffer.from(bytes).readBigUInt64LE(0));
  const header = JSON.parse(Buffer.from(bytes.subarray(8, 8 + n)).toString('utf8'));
  return { bytes, header, data: bytes.subarray(8 + n) };
}

test('the valid base file reads cleanly', async () => {
  const { bytes } = await validFile();
  const o = await probe(bytes, 'base');
  assert.ok(o.ok, o.ok ? '' : o.message);
  assert.equal(o.values, 12 + 5 + 8 + 3 + 0 + 1 + 6);
});

test('fuzz: random bytes (200 files up to 512 bytes, some with a plausible length prefix)', async () => {
  const rng = new Rng(SEED + 1);
  for (let i = 0; i < 200; i++) {
    const n = rng.int(513);
    const b = new Uint8Array(n);
    for (let j = 0; j < n; j++) b[j] = rng.int(256);
    // Half the files get a length prefix that fits the file, so the JSON parser sees the noise.
    if (i % 2 && n >= 8) Buffer.from(b.buffer).writeBigUInt64LE(BigInt(rng.int(n - 7)), 0);
    const o = await probe(b, `random #${i}`);
    assertClear(o, `random #${i}`);
  }
});

test('fuzz: the valid file truncated at every offset fails clearly', async () => {
  const { bytes } = await validFile();
  for (let cut = 0; cut < bytes.length; cut++) {
    const o = await probe(bytes.subarray(0, cut), `truncated at ${cut}`);
    assert.ok(!o.ok, `truncated at ${cut}/${bytes.length} read as valid`);
    assertClear(o, `truncated at ${cut}`);
  }
  // And extended by junk of every length up to 16.
  for (let extra = 1; extra <= 16; extra++) {
    const o = await probe(Buffer.concat([bytes, new Uint8Array(extra).fill(7)]), `extended by ${extra}`);
    assert.ok(!o.ok, `extended by ${extra} read as valid`);
    assertClear(o, `extended by ${extra}`);
  }
});

test('fuzz: header-length bombs are refused from the 8-byte prefix alone', async () => {
  const { bytes } = await validFile();
  const body = bytes.subarray(8);
  const n = BigInt(Buffer.from(bytes).readBigUInt64LE(0));
  const lengths = [2n ** 64n - 1n, 2n ** 63n, 2n ** 53n + 1n, BigInt(MAX_HEADER_BYTES) + 1n, BigInt(MAX_HEADER_BYTES), BigInt(body.length) + 1n, n + 1n, n - 1n, 1n, 0n];
  for (const declared of lengths) {
    const b = new Uint8Array(bytes);
    Buffer.from(b.buffer).writeBigUInt64LE(declared, 0);
    const o = await probe(b, `declared ${declared}`);
    assert.ok(!o.ok, `declared header length ${declared} read as valid`);
    assertClear(o, `declared ${declared}`);
    if (declared > BigInt(MAX_HEADER_BYTES)) assert.match(o.message, /over the 100 MB limit/);
  }
});

test('fuzz: mutated headers (dtypes, shapes, offsets, metadata, non-JSON) fail clearly', async () => {
  const { header, data } = await validFile();
  const rng = new Rng(SEED + 2);
  const pick = <T>(xs: readonly T[]): T => xs[rng.int(xs.length)]!;
  const names = Object.keys(header).filter((k) => k !== '__metadata__');
  const odd: unknown[] = [null, true, -1, 1.5, 2 ** 53, 2 ** 64, 'x', '', [], {}, [[1]], [-0.5], 1e308, -1e308, '3'];
  const dtypes: unknown[] = ['f32', 'F31', 'FLOAT32', 'F8', 'Q4_0', '', null, 7, ['F32'], 'F32 ', 'bf16', 'C64', '__proto__'];
  const mutations: ((h: Record<string, any>) => void)[] = [
    (h) => { h[pick(names)].dtype = pick(dtypes); },
    (h) => { h[pick(names)].shape = pick(odd); },
    (h) => { const t = h[pick(names)]; t.shape = [...t.shape, pick([0, 2, 3, 2 ** 40])]; },
    (h) => { const t = h[pick(names)]; t.shape = [pick([2 ** 31, 2 ** 52, 2 ** 53 - 1]), pick([2 ** 31, 2 ** 20])]; },
    (h) => { h[pick(names)].data_offsets = pick(odd); },
    (h) => { const t = h[pick(names)]; t.data_offsets = [t.data_offsets[1], t.data_offsets[0]]; },
    (h) => { const t = h[pick(names)]; t.data_offsets = [t.data_offsets[0] + pick([-4, -1, 1, 4]), t.data_offsets[1]]; },
    (h) => { const t = h[pick(names)]; t.data_offsets = [t.data_offsets[0], t.data_offsets[1] + pick([-2, 2, 1 << 30, 2 ** 52])]; },
    (h) => { const t = h[pick(names)]; const d = t.data_offsets[1] - t.data_offsets[0]; t.data_offsets = [t.data_offsets[0] + d + 4, t.data_offsets[1] + d + 4]; },
    (h) => { const a = h[pick(names)]; const b = h[pick(names)]; if (a !== b) a.data_offsets = [...b.data_offsets]; else a.data_offsets = [0, 1e9]; },
    (h) => { h[pick(names)].data_offsets = [0, 2 ** 53 + 2]; },
    (h) => { delete h[pick(names)][pick(['dtype', 'shape', 'data_offsets'])]; },
    (h) => { h[pick(names)] = pick(odd); },
    (h) => { delete h[pick(names)]; },
    (h) => { h['__metadata__'] = pick([{ k: 1 }, [], 'meta', 5, { k: null }, { k: { nested: 'x' } }]); },
    (h) => { h['zz.extra'] = { dtype: 'F32', shape: [1], data_offsets: [data.length, data.length + 4] }; },
  ];
  let failed = 0;
  for (let i = 0; i < 300; i++) {
    const h = JSON.parse(JSON.stringify(header)) as Record<string, any>;
    const k = 1 + rng.int(3);
    for (let j = 0; j < k; j++) {
      try {
        pick(mutations)(h);
      } catch {
        // An earlier mutation replaced the entry with a non-object: this one has nothing to change.
      }
    }
    const o = await probe(fileOf(JSON.stringify(h), data), `mutation #${i}`);
    assertClear(o, `mutation #${i}`);
    if (!o.ok) failed++;
  }
  assert.ok(failed > 250, `only ${failed}/300 mutated headers were refused`);
  // Headers that are not JSON, or JSON that is no header.
  const texts = [
    '', ' ', '{', '{"a":', '[]', '"a string"', '42', 'null', '{"a": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}}}',
    '\ufeff{}', '{"a": NaN}', "{'a': 1}", '{"a": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4],}}',
    '['.repeat(100_000) + ']'.repeat(100_000), '{"a":'.repeat(50_000) + '1' + '}'.repeat(50_000),
    `{"a": ${'1'.repeat(400)}}`, '{"__proto__": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}}',
  ];
  for (const [i, t] of texts.entries()) {
    const o = await probe(fileOf(t, i === texts.length - 1 ? new Uint8Array(4) : data), `text #${i}`);
    assertClear(o, `text #${i}`);
    if (i < texts.length - 1) assert.ok(!o.ok, `text #${i} read as valid`);
  }
  // Invalid UTF-8 in the header.
  const o = await probe(fileOf('', data, 4n).map((b, i) => (i >= 8 && i < 12 ? 0xff : b)), 'bad utf-8');
  assertClear(o, 'bad utf-8');
});

test('fuzz: random byte flips anywhere either read as finite values or fail clearly', async () => {
  const { bytes } = await validFile();
  const rng = new Rng(SEED + 3);
  for (let i = 0; i < 400; i++) {
    const b = new Uint8Array(bytes);
    const flips = 1 + rng.int(4);
    for (let j = 0; j < flips; j++) b[rng.int(b.length)] = rng.int(256);
    assertClear(await probe(b, `flip #${i}`), `flip #${i}`);
  }
});

test('NaN and Inf in F32, F16 and BF16 weights are refused, naming the tensor', async () => {
  for (const [dtype, bad] of [['F32', NaN], ['F32', Infinity], ['F32', -Infinity], ['F16', NaN], ['F16', 65536 * 2], ['BF16', NaN], ['BF16', -Infinity]] as const) {
    const data = Float32Array.from([1, 2, bad, 4]);
    const stored = dtype === 'F32' ? data : Uint16Array.from(data, (v) => (dtype === 'F16' ? floatToF16Bits(v) : floatToBf16Bits(v)));
    const path = join(dir, `nan-${counter++}.safetensors`);
    await writeSafetensors(path, { ok: { dtype: 'F32', shape: [2], data: Float32Array.from([0, 1]) }, 'w.weight': { dtype, shape: [2, 2], data: stored } });
    const o = await probe(new Uint8Array(fs.readFileSync(path)), `${dtype} ${bad}`);
    assert.ok(!o.ok, `${dtype} with ${bad} read as valid`);
    assert.match(o.message, /: tensor 'w\.weight' has 1 non-finite value\(s\) \(NaN or Inf\), the first at index 2 \((NaN|-?Infinity)\): the weights are broken$/);
  }
});

const TINY: FluxParams = {
  in_channels: 4, out_channels: 4, vec_in_dim: 4, context_in_dim: 6, hidden_size: 16, mlp_ratio: 2, num_heads: 2,
  depth: 1, depth_single_blocks: 1, axes_dim: [2, 2, 4], theta: 10_000, qkv_bias: true, guidance_embed: false,
};

test('fuzz: the FLUX checkpoint loader gives a CheckpointError on damaged checkpoints (truncations, flips, NaN)', async () => {
  await useBackend();
  const w = initFluxWeights(TINY, 1);
  const path = join(dir, 'flux.safetensors');
  await saveFluxCheckpoint(path, w, TINY, { dtype: 'BF16' });
  tf.dispose(Object.values(w));
  const good = new Uint8Array(fs.readFileSync(path));
  const loaded = await loadFluxCheckpoint(path);
  assert.equal(loaded.layout.hidden_size, 16);
  const rng = new Rng(SEED + 4);
  const headerEnd = 8 + Number(Buffer.from(good).readBigUInt64LE(0));
  let refused = 0;
  for (let i = 0; i < 120; i++) {
    let b: Uint8Array;
    if (i < 40) b = good.subarray(0, rng.int(good.length)); // truncated
    else if (i < 80) { b = new Uint8Array(good); for (let j = 0; j < 3; j++) b[rng.int(headerEnd)] = rng.int(256); } // header damage
    else { b = new Uint8Array(good); const at = headerEnd + 2 * rng.int((good.length - headerEnd) / 2); b[at] = 0xc0; b[at + 1] = 0x7f; } // a BF16 NaN in the data
    const p = join(dir, `flux-${i}.safetensors`);
    fs.writeFileSync(p, b);
    try {
      await withBound(loadFluxCheckpoint(p), `flux #${i}`);
      assert.ok(i < 80, `flux #${i}: a checkpoint with a NaN weight loaded`);
    } catch (e) {
      if (e instanceof assert.AssertionError) throw e;
      assert.ok(e instanceof CheckpointError, `flux #${i}: ${(e as Error)?.stack ?? String(e)}`);
      assert.ok(e.message.startsWith(p) && !e.message.includes('\n'), `flux #${i}: ${e.message}`);
      if (i >= 80) assert.match(e.message, /non-finite value/);
      refused++;
    } finally {
      fs.rmSync(p, { force: true });
    }
  }
  assert.ok(refused >= 80, `only ${refused}/120 damaged checkpoints refused`);
});

test('fuzz: the MCE mask loader gives a MaskFileError naming the file on damaged mask files (truncations, header and data flips)', async () => {
  const rng = new Rng(SEED + 5);
  const logits = { 'double_blocks.0.img_mlp': Float32Array.from({ length: 32 }, () => rng.normal()), 'single_blocks.0.mlp': Float32Array.from({ length: 32 }, () => rng.normal()) };
  const keep = Object.fromEntries(Object.entries(logits).map(([n, v]) => [n, Float32Array.from(v, (x) => (x > 0 ? 1 : 0))]));
  const path = join(dir, 'masks.safetensors');
  await saveMasks(path, { logits, keep, cfg: TINY, metadata: { concepts: '["kitchen knife"]' } });
  const good = new Uint8Array(fs.readFileSync(path));
  assert.deepEqual(Object.keys((await loadMasks(path, TINY)).keep).sort(), Object.keys(keep).sort());
  const headerEnd = 8 + Number(Buffer.from(good).readBigUInt64LE(0));
  for (let i = 0; i < 150; i++) {
    let b: Uint8Array;
    if (i < 50) b = good.subarray(0, rng.int(good.length));
    else if (i < 100) { b = new Uint8Array(good); for (let j = 0; j < 2; j++) b[rng.int(headerEnd)] = 32 + rng.int(95); } // printable: keeps the JSON readable more often
    else { b = new Uint8Array(good); const at = headerEnd + 4 * rng.int((good.length - headerEnd) / 4); b.set([0, 0, 0xc0, 0x7f], at); } // an F32 NaN
    const p = join(dir, `masks-${i}.safetensors`);
    fs.writeFileSync(p, b);
    try {
      await withBound(loadMasks(p, TINY), `masks #${i}`);
      assert.ok(i >= 50 && i < 100, `masks #${i}: a damaged mask file loaded`);
    } catch (e) {
      if (e instanceof assert.AssertionError) throw e;
      assert.ok(e instanceof MaskFileError, `masks #${i}: ${(e as Error)?.stack ?? String(e)}`);
      assert.ok(e.message.startsWith(p) && !e.message.includes('\n') && e.message.length < 400, `masks #${i}: ${e.message}`);
    } finally {
      fs.rmSync(p, { force: true });
    }
  }
});

test('fuzz: a model bundle with a damaged weight file or manifest fails to load with one ModelLoadError line naming the bundle', async () => {
  await useBackend();
  const bundle = join(dir, 'bundle');
  await writeTinyFluxBundle(bundle, ['kitchen knife', 'spoon']);
  const originals = Object.fromEntries(['transformer.safetensors', 'text_encoder.safetensors', 'manifest.json'].map((f) => [f, new Uint8Array(fs.readFileSync(join(bundle, f)))]));
  (await loadTextToImage(bundle)).dispose();
  const rng = new Rng(SEED + 6);
  let refused = 0;
  for (let i = 0; i < 60; i++) {
    const f = (['transformer.safetensors', 'text_encoder.safetensors', 'manifest.json'] as const)[i % 3]!;
    const good = originals[f]!;
    let b: Uint8Array;
    if (i < 24) b = good.subarray(0, rng.int(good.length));
    else if (f === 'manifest.json' || i < 42) { b = new Uint8Array(good); for (let j = 0; j < 2; j++) b[rng.int(f === 'manifest.json' ? good.length : Math.min(good.length, 8 + Number(Buffer.from(good).readBigUInt64LE(0))))] = 32 + rng.int(95); }
    else { b = new Uint8Array(good); const start = 8 + Number(Buffer.from(good).readBigUInt64LE(0)); const at = start + 4 * rng.int((good.length - start) / 4); b.set([0, 0, 0x80, 0x7f], at); } // an F32 +Inf
    fs.writeFileSync(join(bundle, f), b);
    try {
      const m = await withBound(loadTextToImage(bundle), `bundle #${i} (${f})`);
      m.dispose();
      assert.ok((i >= 24 && i < 42) || f === 'manifest.json', `bundle #${i}: ${f} damaged, the bundle still loaded`);
    } catch (e) {
      if (e instanceof assert.AssertionError) throw e;
      assert.ok(e instanceof ModelLoadError, `bundle #${i} (${f}): ${(e as Error)?.stack ?? String(e)}`);
      assert.ok(e.message.includes(bundle) && !e.message.includes('\n') && e.message.length < 500, `bundle #${i} (${f}): ${e.message}`);
      refused++;
    } finally {
      fs.writeFileSync(join(bundle, f), originals[f]!);
    }
  }
  assert.ok(refused >= 30, `only ${refused}/60 damaged bundles refused`);
});
