import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import * as fs from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { humanBytes, humanCount } from '../../src/cli/inspect.js';

const FIXTURE = fileURLToPath(new URL('../../../shared/data/fixtures/eraseanything-flux-dev-lora.safetensors', import.meta.url));
const dir = fs.mkdtempSync(join(tmpdir(), 'mce-inspect-'));
after(async () => {
  await Promise.all(Object.values(runs));
  fs.rmSync(dir, { recursive: true, force: true });
});

// The CLI runs as a real process (through tsx, on the sources), so exit codes and the streams are
// exactly what a user sees. A tiny entry file is needed because `node -e ... inspect` would start
// Node's own debugger.
const ENTRY = join(dir, 'mce.mjs');
fs.writeFileSync(ENTRY, `import { main } from ${JSON.stringify(new URL('../../src/cli/main.ts', import.meta.url).href)};\nprocess.exitCode = await main(process.argv.slice(2));\n`);

function run(argv: string[]): Promise<{ code: number; out: string; err: string }> {
  return new Promise((done) => {
    const cwd = fileURLToPath(new URL('../..', import.meta.url));
    execFile(process.execPath, ['--import', 'tsx', ENTRY, ...argv], { encoding: 'utf8', cwd }, (e, out, err) => {
      done({ code: e ? (typeof e.code === 'number' ? e.code : -1) : 0, out, err });
    });
  });
}

// Start every run at once (each process spends most of its time starting up).
const bad = join(dir, 'bad.safetensors');
fs.writeFileSync(bad, Buffer.concat([Buffer.from([5, 0, 0, 0, 0, 0, 0, 0]), Buffer.from('{"a":')]));
const runs = {
  json: run(['inspect', FIXTURE, '--json']),
  table: run(['inspect', FIXTURE]),
  bad: run(['inspect', bad]),
  missing: run(['inspect', join(dir, 'missing.safetensors')]),
  none: run(['inspect']),
  badFlag: run(['inspect', FIXTURE, '--nope']),
};

test('inspect --json lists the fixture: 76 BF16 tensors and the totals', async () => {
  const r = await runs.json;
  assert.equal(r.code, 0, r.err);
  const j = JSON.parse(r.out);
  assert.equal(j.file, FIXTURE);
  assert.equal(j.tensors.length, 76);
  assert.ok(j.tensors.every((t: { dtype: string }) => t.dtype === 'BF16'));
  assert.deepEqual(j.tensors[0], {
    name: 'transformer.transformer_blocks.0.attn.add_k_proj.lora_A.weight', dtype: 'BF16', shape: [8, 3072], params: 24576, bytes: 49152,
  });
  assert.equal(j.tensors[75].name, 'transformer.transformer_blocks.18.attn.add_q_proj.lora_B.weight');
  assert.equal(j.totalParams, 1_867_776);
  assert.equal(j.totalBytes, 3_735_552);
  assert.deepEqual(j.metadata, { format: 'pt' });
});

test('inspect prints an aligned table, totals and metadata', async () => {
  const r = await runs.table;
  assert.equal(r.code, 0, r.err);
  const lines = r.out.split('\n');
  assert.equal(lines[0], `${FIXTURE}: 76 tensors`);
  assert.match(lines[2]!, /^name +dtype +shape +params$/);
  const row = lines.find((l) => l.startsWith('transformer.transformer_blocks.0.attn.add_k_proj.lora_A.weight'))!;
  assert.match(row, /BF16 +\[8, 3072\] +24,576$/);
  // Aligned: the dtype column starts at the same place on every row.
  const at = lines[2]!.indexOf('dtype');
  for (const l of lines.slice(3, 79)) assert.equal(l.indexOf('BF16'), at, l);
  assert.ok(r.out.includes('total: 1,867,776 params (1.87M), 3,735,552 bytes (3.56 MiB)'));
  assert.ok(r.out.includes('metadata:\n  format: pt\n'));
});

test('a corrupt file exits 1 with one line; no argument exits 2', async () => {
  const r = await runs.bad;
  assert.equal(r.code, 1);
  assert.equal(r.out, '');
  assert.match(r.err, /^mce: .*bad\.safetensors: header is not valid JSON/);
  assert.equal(r.err.trim().split('\n').length, 1);

  const missing = await runs.missing;
  assert.equal(missing.code, 1);
  assert.match(missing.err, /missing\.safetensors: cannot open: no such file/);

  const none = await runs.none;
  assert.equal(none.code, 2);
  assert.match(none.err, /expected one FILE\.safetensors/);

  assert.equal((await runs.badFlag).code, 2);
});

test('human-readable sizes', () => {
  assert.equal(humanCount(999), '999');
  assert.equal(humanCount(1_867_776), '1.87M');
  assert.equal(humanCount(11_901_408_320), '11.90B');
  assert.equal(humanBytes(1000), '1000 B');
  assert.equal(humanBytes(3_735_552), '3.56 MiB');
  assert.equal(humanBytes(23_802_816_640), '22.17 GiB');
});
