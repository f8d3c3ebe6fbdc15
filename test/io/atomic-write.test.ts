// Atomic writes under SIGKILL: a writer killed half-way through a file, or at an arbitrary moment in
// a loop of rewrites, never leaves a half file under the final name (the old content or the whole
// new one, nothing else). Also: the atomic copy, and a scan of src/ that every file write goes
// through src/io/atomic.ts (save the listed exceptions).
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Rng } from '../../src/engine/rng.js';
import { copyFileAtomicSync, writeFileAtomic } from '../../src/io/atomic.js';

const ATOMIC = fileURLToPath(new URL('../../src/io/atomic.ts', import.meta.url));
const SRC = fileURLToPath(new URL('../../src/', import.meta.url));
const dir = mkdtempSync(join(tmpdir(), 'mce-atomic-kill-'));
after(() => rmSync(dir, { recursive: true, force: true }));

/** Run a module (TypeScript, through tsx) as a child; SIGKILL it once its stdout contains `until`. */
function runUntil(code: string, until: (out: string) => boolean): Promise<{ signal: NodeJS.Signals | null; out: string; err: string }> {
  const script = join(dir, `child-${Math.random().toString(36).slice(2)}.mts`);
  writeFileSync(script, code);
  return new Promise((done, fail) => {
    const child = spawn(process.execPath, ['--import', 'tsx', script], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (d: Buffer) => {
      out += d.toString();
      if (until(out)) child.kill('SIGKILL');
    });
    child.stderr.on('data', (d: Buffer) => { err += d.toString(); });
    child.on('error', fail);
    child.on('exit', (_code, signal) => done({ signal, out, err }));
  });
}

test('a writer killed half-way through an atomic file leaves the old file whole under the final name', async () => {
  const target = join(dir, 'weights.bin');
  writeFileSync(target, 'old content');
  // The child writes the first half of 4 MiB, says so, then waits to be killed.
  const r = await runUntil(`
    import { AtomicFile } from ${JSON.stringify(ATOMIC)};
    const f = await AtomicFile.open(${JSON.stringify(target)});
    await f.write(new Uint8Array(2 << 20).fill(7), 0);
    await f.handle.sync();
    console.log('half ' + f.tempPath);
    setInterval(() => {}, 1000);
  `, (out) => out.includes('\n'));
  assert.equal(r.signal, 'SIGKILL', r.err);
  const temp = /^half (.*)$/m.exec(r.out)![1]!;
  assert.equal(statSync(temp).size, 2 << 20, 'the kill came half-way: the temporary file holds the first half');
  assert.equal(readFileSync(target, 'utf8'), 'old content');
  // The leftover temporary file is hidden and does not stop the next write.
  assert.match(relative(dir, temp), /^\.weights\.bin\.\d+\.[0-9a-f]{8}\.tmp$/);
  await writeFileAtomic(target, 'new content');
  assert.equal(readFileSync(target, 'utf8'), 'new content');
});

test('a process rewriting a file in a loop, killed at arbitrary moments, always leaves one whole version', async () => {
  const rng = new Rng(7);
  const target = join(dir, 'summary.json');
  for (let round = 0; round < 6; round++) {
    const killAfter = 2 + rng.int(4);
    // Version i: a header with its number and length, 16-48 MiB of filler, a trailer with its number.
    // A torn file (a prefix, or two versions mixed) fails the header / length / trailer check.
    const r = await runUntil(`
      import { writeFileAtomicSync } from ${JSON.stringify(ATOMIC)};
      const version = (i: number): Buffer => {
        const n = ((16 + 16 * (i % 3)) << 20) + i;
        const head = Buffer.from('v=' + i + ' len=' + n + '\\n');
        const tail = Buffer.from('end ' + i);
        return Buffer.concat([head, Buffer.alloc(n - head.length - tail.length, 46), tail]);
      };
      for (let i = 0; ; i++) {
        const bytes = version(i);
        process.stdout.write('writing ' + i + '\\n'); // the kill lands while this version is being written
        writeFileAtomicSync(${JSON.stringify(target)}, bytes);
      }
    `, (out) => out.split('\n').length > killAfter);
    assert.equal(r.signal, 'SIGKILL', r.err);
    const got = readFileSync(target);
    const head = /^v=(\d+) len=(\d+)\n/.exec(got.subarray(0, 40).toString('latin1'));
    assert.ok(head, `round ${round}: no header under the final name`);
    assert.equal(got.length, Number(head[2]), `round ${round}: version ${head[1]} is torn (${got.length} of ${head[2]} bytes)`);
    assert.ok(got.subarray(got.length - 16).toString('latin1').endsWith(`end ${head[1]}`), `round ${round}: version ${head[1]} ends with another version`);
  }
});

test('copyFileAtomicSync copies exactly; a failed copy keeps the old file and leaves no temporary file', () => {
  const src = join(dir, 'src.bin');
  const dest = join(dir, 'dest.bin');
  const data = Buffer.from(Array.from({ length: 100_000 }, (_, i) => (i * 31) & 255));
  writeFileSync(src, data);
  writeFileSync(dest, 'old');
  copyFileAtomicSync(src, dest);
  assert.ok(readFileSync(dest).equals(data));
  writeFileSync(dest, 'old');
  assert.throws(() => copyFileAtomicSync(join(dir, 'missing.bin'), dest), /ENOENT/);
  assert.equal(readFileSync(dest, 'utf8'), 'old');
  assert.deepEqual(readdirSync(dir).filter((f) => f.startsWith('.dest.bin.')), []);
});

// Direct writes that are not product outputs, or are atomic by other means, with the reason.
const ALLOWED: Record<string, { calls: string[]; why: string }> = {
  'bench/harness.ts': { calls: ['writeFileSync'], why: 'engine benchmark: scratch inputs for PyTorch in a mkdtemp folder, results written to a temporary name then renamed' },
  'bench/erasure/store.ts': { calls: ['appendFileSync'], why: 'append-only results.jsonl: one line per finished unit; readers (report/jsonl-table.ts) skip a torn last line' },
  'eval/quality-shard.ts': { calls: ['appendFileSync'], why: 'append-only items*.jsonl: one line per scored item; readItems skips a torn last line' },
};

test('every file write in src/ goes through src/io/atomic.ts (or is a listed exception)', () => {
  const WRITE = /\b(writeFileSync|writeFile|appendFileSync|appendFile|createWriteStream|copyFileSync|copyFile|cpSync|truncateSync|ftruncateSync)\s*\(/g;
  const walk = (d: string): string[] => readdirSync(d, { withFileTypes: true }).flatMap((e) => (e.isDirectory() ? walk(join(d, e.name)) : e.name.endsWith('.ts') ? [join(d, e.name)] : []));
  const found: string[] = [];
  for (const file of walk(SRC)) {
    const rel = relative(SRC, file);
    if (rel === 'io/atomic.ts') continue;
    const text = readFileSync(file, 'utf8');
    for (const m of text.matchAll(WRITE)) {
      if (ALLOWED[rel]?.calls.includes(m[1]!)) continue;
      const line = text.slice(0, m.index).split('\n').length;
      found.push(`src/${rel}:${line}: ${m[1]}`);
    }
  }
  assert.deepEqual(found, [], `direct file writes (use writeFileAtomic / writeFileAtomicSync / AtomicFile / copyFileAtomicSync):\n${found.join('\n')}`);
  assert.ok(existsSync(join(SRC, 'io/atomic.ts')));
});
