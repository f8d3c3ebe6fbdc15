import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { AtomicFile, tempPathFor, writeFileAtomic, writeFileAtomicSync } from '../../src/io/atomic.js';

const dir = fs.mkdtempSync(join(tmpdir(), 'mce-atomic-'));
after(() => fs.rmSync(dir, { recursive: true, force: true }));
const files = (): string[] => fs.readdirSync(dir).sort();

test('temporary names sit beside the target and are unique', () => {
  const p = join(dir, 'out.bin');
  const a = tempPathFor(p);
  assert.equal(dirname(a), dir);
  assert.match(a, /\/\.out\.bin\.\d+\.[0-9a-f]{8}\.tmp$/);
  assert.notEqual(a, tempPathFor(p));
});

test('writeFileAtomic writes, then replaces, leaving no temporary file', async () => {
  const p = join(dir, 'a.txt');
  await writeFileAtomic(p, 'first');
  assert.equal(fs.readFileSync(p, 'utf8'), 'first');
  await writeFileAtomic(p, new Uint8Array([104, 105]));
  assert.equal(fs.readFileSync(p, 'utf8'), 'hi');
  assert.deepEqual(files(), ['a.txt']);
  fs.rmSync(p);
});

test('writeFileAtomicSync writes and replaces', () => {
  const p = join(dir, 's.txt');
  writeFileAtomicSync(p, 'one');
  writeFileAtomicSync(p, 'two');
  assert.equal(fs.readFileSync(p, 'utf8'), 'two');
  assert.deepEqual(files(), ['s.txt']);
  fs.rmSync(p);
});

test('nothing is visible under the final name before commit; abort removes everything', async () => {
  const p = join(dir, 'b.bin');
  fs.writeFileSync(p, 'old');
  const f = await AtomicFile.open(p);
  await f.write(new Uint8Array([1, 2, 3]), 0);
  await f.write(new Uint8Array([9]), 10); // positional, may leave holes
  assert.equal(fs.readFileSync(p, 'utf8'), 'old', 'the old file is untouched while writing');
  await f.abort();
  await f.abort(); // twice is fine
  assert.equal(fs.readFileSync(p, 'utf8'), 'old');
  assert.deepEqual(files(), ['b.bin']);
  await assert.rejects(f.write(new Uint8Array(1), 0), /write after commit\/abort/);

  const g = await AtomicFile.open(p);
  await g.write(new Uint8Array([1, 2]), 0);
  await g.commit();
  assert.deepEqual([...fs.readFileSync(p)], [1, 2]);
  assert.deepEqual(files(), ['b.bin']);
  fs.rmSync(p);
});

test('a failed rename in commit removes the temporary file and keeps what was there', async () => {
  // The target is a non-empty directory, so rename fails.
  const p = join(dir, 'occupied');
  fs.mkdirSync(p);
  fs.writeFileSync(join(p, 'keep'), 'x');
  const f = await AtomicFile.open(p);
  await f.write(new Uint8Array([1]), 0);
  await assert.rejects(f.commit());
  assert.deepEqual(files(), ['occupied']);
  assert.equal(fs.readFileSync(join(p, 'keep'), 'utf8'), 'x');
  assert.throws(() => writeFileAtomicSync(p, 'y'));
  await assert.rejects(writeFileAtomic(p, 'y'));
  assert.deepEqual(files(), ['occupied']);
  fs.rmSync(p, { recursive: true });
});

test('a missing folder fails before creating anything', async () => {
  await assert.rejects(writeFileAtomic(join(dir, 'no/such/x'), 'y'), /ENOENT/);
  assert.throws(() => writeFileAtomicSync(join(dir, 'no/such/x'), 'y'), /ENOENT/);
  assert.deepEqual(files(), []);
});
