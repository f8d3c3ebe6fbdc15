import { test } from 'node:test';
import assert from 'node:assert/strict';
import { main } from '../../src/cli/main.js';

async function capture(argv: string[]): Promise<{ code: number; out: string; err: string }> {
  let out = '';
  let err = '';
  const ow = process.stdout.write.bind(process.stdout);
  const ew = process.stderr.write.bind(process.stderr);
  process.stdout.write = ((s: string) => ((out += s), true)) as typeof process.stdout.write;
  process.stderr.write = ((s: string) => ((err += s), true)) as typeof process.stderr.write;
  try {
    return { code: await main(argv), out, err };
  } finally {
    process.stdout.write = ow;
    process.stderr.write = ew;
  }
}

test('no command prints usage with exit 2; --help exits 0', async () => {
  const none = await capture([]);
  assert.equal(none.code, 2);
  assert.match(none.out, /usage: mce <command>/);
  assert.equal((await capture(['--help'])).code, 0);
});

test('an unknown command is a usage error in one line', async () => {
  const r = await capture(['frobnicate']);
  assert.equal(r.code, 2);
  assert.match(r.err, /^mce: unknown command 'frobnicate'/);
  assert.equal(r.err.trim().split('\n').length, 1);
});
