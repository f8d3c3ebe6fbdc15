// The lab server's API and its hardening: run listing and details, original vs erased comparisons
// with trajectories, erase jobs with streamed progress, and the refusals (path traversal, oversized
// bodies, long prompts), loopback by default, and a concurrent load from a second process that
// must leave every run folder intact.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { networkInterfaces } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { startLab, type Lab } from '../../src/serve/server.js';
import { LIMITS } from '../../src/serve/limits.js';
import { decodePng } from '../../src/io/png.js';
import { loadMasks } from '../../src/erase/mce/maskfile.js';
import { postJson, request } from './client.js';
import { CLI_FROM_SOURCES, FIXTURE_BENCH, FIXTURE_RUN, makeRunsFolder } from './fixture.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const LOAD = fileURLToPath(new URL('./load.ts', import.meta.url));

let runs: string;
let web: string;
let lab: Lab;

before(async () => {
  runs = await makeRunsFolder();
  // A stand-in page folder with a secret beside it: the static server must serve the one and never the other.
  web = join(runs, '..', `${runs.split('/').pop()}-web`);
  mkdirSync(web, { recursive: true });
  writeFileSync(join(web, 'index.html'), '<!doctype html><title>lab</title>');
  writeFileSync(join(runs, '..', `${runs.split('/').pop()}-secret.txt`), 'secret');
  symlinkSync('/etc/hostname', join(runs, FIXTURE_RUN, 'outside.png'));
  lab = await startLab({ runsDir: runs, port: 0, webDir: web, cli: CLI_FROM_SOURCES, maxEraseJobs: 4 });
}, { timeout: 300_000 });

after(async () => {
  await lab?.close();
  rmSync(runs, { recursive: true, force: true });
  rmSync(web, { recursive: true, force: true });
  rmSync(join(runs, '..', `${runs.split('/').pop()}-secret.txt`), { force: true });
}, { timeout: 60_000 });

/** sha256 of every file under `dir`, by relative path. */
function treeHashes(dir: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const e of readdirSync(dir, { withFileTypes: true, recursive: true })) {
    if (!e.isFile()) continue;
    const p = join(e.parentPath, e.name);
    out[p.slice(dir.length + 1)] = createHash('sha256').update(readFileSync(p)).digest('hex');
  }
  return out;
}

test('lists the erase run and serves its summary, per-layer sparsity and PNGs', async () => {
  const list = (await request(lab.url, '/api/runs')).json<{ runs: { name: string; concepts: string[]; pruned: number }[] }>();
  assert.deepEqual(list.runs.map((r) => r.name), [FIXTURE_RUN]);
  assert.deepEqual(list.runs[0]!.concepts, ['kitchen knife']);
  assert.ok(list.runs[0]!.pruned > 0.05, `pruned ${list.runs[0]!.pruned}`);
  const detail = (await request(lab.url, `/api/runs/${FIXTURE_RUN}`)).json<{ summary: { trajectoryDivergence: { erase: number[] } }; layers: { name: string; fraction: number }[]; images: string[] }>();
  assert.equal(detail.summary.trajectoryDivergence.erase.length, 3);
  assert.ok(detail.layers.length > 0 && detail.layers.every((l) => l.fraction >= 0 && l.fraction <= 1));
  assert.ok(detail.images.includes('val-00002.png'));
  const png = await request(lab.url, `/api/runs/${FIXTURE_RUN}/files/val-00002.png`);
  assert.equal(png.status, 200);
  assert.equal(png.headers['content-type'], 'image/png');
  assert.ok(decodePng(png.body).width > 0);
  assert.equal((await request(lab.url, '/api/runs/nope')).status, 404);
  assert.equal((await request(lab.url, '/')).body.toString(), '<!doctype html><title>lab</title>');
});

test('lists the erasure benchmark folder: units done, per-method numbers as the table has them, and its grids', async () => {
  const list = (await request(lab.url, '/api/runs')).json<{ erasure: { name: string; units: { planned: number; ok: number; failed: number }; size: { n: number }; grids: string[];
    summary: { models: { model: string; methods: { method: string; detection: { before: number; after: number }; ssim: number; asr: Record<string, number | null>; changed: number }[] }[]; attacks: string[] } }[] }>();
  assert.equal(list.erasure.length, 1);
  const b = list.erasure[0]!;
  assert.equal(b.name, FIXTURE_BENCH);
  // --quick plans 4 methods x (erase, metrics, 2 attacks) on one case; the fixture finished 8 of them.
  assert.deepEqual(b.units, { planned: 16, ok: 8, failed: 0 });
  assert.equal(b.size.n, 4);
  assert.deepEqual(b.summary.attacks, ['i2p', 'ring-a-bell']);
  const [none, mce] = b.summary.models[0]!.methods;
  assert.deepEqual([none!.method, mce!.method], ['none', 'mce']);
  assert.deepEqual(mce!.detection, { before: 0.5, after: 0.125 });
  assert.equal(mce!.ssim, 0.85);
  assert.deepEqual(mce!.asr, { i2p: 0, 'ring-a-bell': 0.25 });
  assert.equal(mce!.changed, 0.03);
  assert.deepEqual(b.grids, ['flux-emoji--kitchen-knife.png']);
  const grid = await request(lab.url, `/api/bench/${FIXTURE_BENCH}/grids/${b.grids[0]}`);
  assert.equal(grid.status, 200);
  assert.equal(decodePng(grid.body).width, 8);
  assert.equal((await request(lab.url, '/api/bench/no-such-bench/grids/x.png')).status, 404);
});

test('compares original and erased for a prompt and seed: PNGs, one x0 per step, deterministic', async () => {
  const ask = { run: FIXTURE_RUN, prompt: 'an emoji of a kitchen knife', seed: 3, steps: 3, trajectory: true };
  const r = await postJson(lab.url, '/api/compare', ask);
  assert.equal(r.status, 200, r.body.toString());
  const c = r.json<{ steps: number; timesteps: number[]; original: { image: string; trajectory: string[] }; erased: { image: string; trajectory: string[] }; unreadWords: string[] }>();
  assert.equal(c.steps, 3);
  assert.deepEqual(c.unreadWords, []);
  assert.equal(c.timesteps.length, 4);
  const decode = (url: string) => decodePng(Buffer.from(url.replace(/^data:image\/png;base64,/, ''), 'base64'));
  for (const side of [c.original, c.erased]) {
    assert.equal(side.trajectory.length, 3);
    const img = decode(side.image);
    assert.equal(img.width, 32);
    // The last predicted x0 is the image itself.
    assert.deepEqual(decode(side.trajectory[2]!).data, img.data);
  }
  assert.notEqual(c.original.image, c.erased.image, 'the erased model (46% of units pruned) draws something else');
  const again = (await postJson(lab.url, '/api/compare', ask)).json<typeof c>();
  assert.equal(again.erased.image, c.erased.image);
  const otherSeed = (await postJson(lab.url, '/api/compare', { ...ask, seed: 4 })).json<typeof c>();
  assert.notEqual(otherSeed.original.image, c.original.image);
  // A word no training caption of flux-emoji has comes back named, for the page to say so.
  const hocho = (await postJson(lab.url, '/api/compare', { ...ask, prompt: 'an emoji of a hocho', steps: 1, trajectory: false })).json<typeof c>();
  assert.deepEqual(hocho.unreadWords, ['hocho']);
});

test('rejects path traversal: .., encoded .., backslashes, symlinks out, non-PNG run files', async () => {
  const cases = [
    '/../secret.txt', '/%2e%2e/secret.txt', '/..%2fsecret.txt', '/%2e%2e%2f%2e%2e%2fetc%2fpasswd', '/..\\..\\etc\\passwd', '/%00index.html', '/%E0%A4%A',
    `/api/runs/${FIXTURE_RUN}/files/..%2f..%2f..%2fetc%2fpasswd.png`, `/api/runs/${FIXTURE_RUN}/files/outside.png`,
    `/api/runs/${FIXTURE_RUN}/files/summary.json`, '/api/runs/..%2f..%2fetc/files/passwd.png', '/api/runs/../files/x.png',
    `/api/bench/${FIXTURE_BENCH}/grids/..%2f..%2f..%2fetc%2fpasswd.png`, `/api/bench/${FIXTURE_BENCH}/grids/..%2fbench.json`, `/api/bench/${FIXTURE_RUN}/grids/x.png`, '/api/bench/..%2f..%2fetc/grids/x.png',
  ];
  for (const path of cases) {
    const r = await request(lab.url, path);
    assert.ok([400, 403, 404].includes(r.status), `${path}: ${r.status}`);
    assert.doesNotMatch(r.body.toString(), /secret|root:|\w+\n$/, path);
  }
  assert.equal((await request(lab.url, `/api/runs/${FIXTURE_RUN}/files/outside.png`)).status, 403, 'a symlink out of the run folder');
});

test('refuses oversized bodies with 413 (declared or chunked) and prompts over the limit with 400', async () => {
  const big = JSON.stringify({ run: FIXTURE_RUN, prompt: 'x'.repeat(LIMITS.bodyBytes), seed: 0 });
  const declared = await request(lab.url, '/api/compare', { method: 'POST', body: big });
  assert.equal(declared.status, 413);
  assert.match(declared.json<{ error: string }>().error, /over 16384 bytes/);
  const chunked = await request(lab.url, '/api/erase', { method: 'POST', body: 'y'.repeat(1 << 20), chunked: true });
  assert.equal(chunked.status, 413);
  const long = await postJson(lab.url, '/api/compare', { run: FIXTURE_RUN, prompt: 'a'.repeat(LIMITS.promptChars + 1), seed: 0 });
  assert.equal(long.status, 400);
  assert.match(long.json<{ error: string }>().error, /prompt: at most 300 characters/);
  const atLimit = await postJson(lab.url, '/api/compare', { run: FIXTURE_RUN, prompt: 'a '.repeat(LIMITS.promptChars / 2), seed: 0, steps: 1 });
  assert.equal(atLimit.status, 200, 'a prompt at the limit is fine');
  for (const bad of [{ run: FIXTURE_RUN, prompt: 'x', seed: -1 }, { run: FIXTURE_RUN, prompt: 'x', steps: 1000 }, { run: '../x', prompt: 'x' }, [1]]) {
    assert.equal((await postJson(lab.url, '/api/compare', bad)).status, 400, JSON.stringify(bad));
  }
  assert.equal((await postJson(lab.url, '/api/erase', { name: 'a/b', concept: 'dagger' })).status, 400);
});

test('binds to loopback by default: the lab, and `mce serve` as a user starts it', async () => {
  assert.equal((lab.server.address() as { address: string }).address, '127.0.0.1');
  const port = (lab.server.address() as { port: number }).port;
  // Any other address of this machine must refuse the connection.
  const external = Object.values(networkInterfaces()).flat().find((a) => a && a.family === 'IPv4' && !a.internal);
  if (external) {
    const err = await new Promise<string>((done) => {
      const s = connect(port, external.address);
      s.on('connect', () => { s.destroy(); done('connected'); });
      s.on('error', (e: NodeJS.ErrnoException) => done(e.code ?? 'error'));
    });
    assert.equal(err, 'ECONNREFUSED', `${external.address}:${port}`);
  }
  const child = spawn(CLI_FROM_SOURCES[0]!, [...CLI_FROM_SOURCES.slice(1), 'serve', '--port', '0', '--runs', runs], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
  try {
    const line = await new Promise<string>((done, fail) => {
      let out = '';
      child.stdout.on('data', (d: Buffer) => {
        out += d.toString();
        if (out.includes('\n')) done(out);
      });
      child.on('exit', (code) => fail(new Error(`mce serve exited ${code}`)));
    });
    const url = /mce serve: (http:\/\/\S+)/.exec(line)![1]!;
    assert.match(url, /^http:\/\/127\.0\.0\.1:\d+\/$/);
    assert.equal((await request(url, '/api/runs')).status, 200);
  } finally {
    child.kill('SIGTERM');
  }
  const code = await new Promise<number | null>((done) => (child.exitCode !== null ? done(child.exitCode) : child.on('exit', done)));
  assert.equal(code, 0, 'stops cleanly on SIGTERM');

  // Another interface only when asked, and then with a warning.
  const wide = spawn(CLI_FROM_SOURCES[0]!, [...CLI_FROM_SOURCES.slice(1), 'serve', '--host', '0.0.0.0', '--port', '0', '--runs', runs], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
  try {
    const [out, err] = await new Promise<[string, string]>((done, fail) => {
      let o = '';
      let e = '';
      // Two pipes: wait for both lines, in whichever order they arrive.
      const check = (): void => void (o.includes('\n') && e.includes('not loopback') && done([o, e]));
      wide.stderr.on('data', (d: Buffer) => { e += d.toString(); check(); });
      wide.stdout.on('data', (d: Buffer) => { o += d.toString(); check(); });
      wide.on('exit', (c) => fail(new Error(`mce serve --host exited ${c}: ${e}`)));
    });
    assert.match(out, /mce serve: http:\/\/0\.0\.0\.0:\d+\//);
    assert.match(err, /listening on 0\.0\.0\.0, not loopback: anyone who can reach it can start erase runs/);
  } finally {
    wide.kill('SIGTERM');
  }
});

test('an erase run that fails streams its error over SSE, ends with its exit code, and frees the name', async () => {
  const r = await postJson(lab.url, '/api/erase', { name: 'typo', concept: 'kitchen knif', iters: 1 });
  assert.equal(r.status, 202, r.body.toString());
  const sse = await request(lab.url, '/api/jobs/typo/events');
  assert.equal(sse.headers['content-type'], 'text/event-stream');
  const text = sse.body.toString();
  assert.match(text, /event: line\ndata: "mce: unknown concept \\"kitchen knif\\"; did you mean \\"kitchen knife\\"/);
  assert.match(text, /event: end\ndata: \{"status":"failed","code":1\}/);
  assert.ok(!existsSync(join(runs, 'typo')), 'the claimed folder is given back');
});

test('a concurrent load from a second process never corrupts a run folder; one of the racing erase starts wins', { timeout: 400_000 }, async () => {
  const before = treeHashes(join(runs, FIXTURE_RUN));
  const out = await new Promise<string>((done, fail) => {
    execFile(process.execPath, ['--import', 'tsx', LOAD, lab.url, FIXTURE_RUN, 'raced'], { cwd: ROOT, encoding: 'utf8', maxBuffer: 1 << 24, timeout: 300_000 }, (e, stdout, stderr) => (e ? fail(new Error(stderr)) : done(stdout)));
  });
  const results = JSON.parse(out) as { kind: string; status: number; body: string; images?: string }[];
  const by = (kind: string) => results.filter((r) => r.kind === kind);
  assert.equal(results.length, 54);
  for (const r of results) assert.ok(r.status < 500 || r.status === 503, `${r.kind}: ${r.status} ${r.body}`);
  assert.ok(by('list').every((r) => r.status === 200) && by('detail').every((r) => r.status === 200) && by('file').every((r) => r.status === 200));
  assert.ok(by('traversal').every((r) => [400, 403, 404].includes(r.status)), JSON.stringify(by('traversal')));
  assert.ok(by('oversized').every((r) => r.status === 413));
  assert.ok(by('long-prompt').every((r) => r.status === 400));
  const erases = by('erase').map((r) => r.status).sort();
  assert.deepEqual(erases, [202, 409, 409, 409, 409, 409], 'the run folder is claimed exactly once');
  // Comparisons either ran or were turned away (503), and the same seed always gave the same images.
  const done = by('compare').filter((r) => r.status === 200);
  assert.ok(done.length > 0);
  const perSeed = new Map<string, Set<string>>();
  for (const r of done) {
    const [seed] = r.images!.split(':');
    perSeed.set(seed!, (perSeed.get(seed!) ?? new Set()).add(r.images!));
  }
  for (const set of perSeed.values()) assert.equal(set.size, 1);

  // The raced run finishes as one complete run; the fixture run is byte for byte as it was.
  let job: { status: string; lines: string[] };
  do {
    await new Promise((d) => setTimeout(d, 500));
    job = (await request(lab.url, '/api/jobs/raced')).json();
  } while (job.status === 'running');
  assert.equal(job.status, 'done', job.lines.join('\n'));
  const summary = JSON.parse(readFileSync(join(runs, 'raced', 'summary.json'), 'utf8')) as { settings: { iters: number } };
  assert.equal(summary.settings.iters, 1);
  assert.ok(Object.keys((await loadMasks(join(runs, 'raced', 'masks.safetensors'))).keep).length > 0);
  assert.deepEqual(treeHashes(join(runs, FIXTURE_RUN)), before);
  const leftovers = readdirSync(runs, { recursive: true }).map(String).filter((f) => f.endsWith('.tmp'));
  assert.deepEqual(leftovers, []);
  const list = (await request(lab.url, '/api/runs')).json<{ runs: { name: string }[] }>();
  assert.deepEqual(list.runs.map((r) => r.name), [FIXTURE_RUN, 'raced']);
});
