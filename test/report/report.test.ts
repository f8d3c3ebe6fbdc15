// mce report as a user runs it: on a real (tiny) erase run it writes the same bytes `mce erase`
// wrote; the page is self-contained (images inlined, no external fetches); a baseline bundle and a
// results.jsonl folder get their own sections; bad folders fail with one line.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runCli } from '../cli/run.js';
import { writeTinyFluxBundle } from '../erase/baselines/fixture.js';
import { useBackend } from '../../src/engine/backend.js';
import { encodePng } from '../../src/io/png.js';
import { CHROMIUM, haveChromium, launchChromium } from '../serve/chromium.js';
import { pathToFileURL } from 'node:url';

const dir = mkdtempSync(join(tmpdir(), 'mce-report-'));
test.after(() => rmSync(dir, { recursive: true, force: true }));

/** What makes a page not self-contained: anything a browser would fetch. */
function assertSelfContained(html: string): void {
  assert.doesNotMatch(html, /<script|<link|<iframe|<object|@import|url\(/i);
  for (const m of html.matchAll(/\b(?:src|href)\s*=\s*"([^"]*)"/gi)) assert.match(m[1]!, /^data:image\/png;base64,/, `external reference ${m[1]}`);
  assert.match(html, /Content-Security-Policy" content="default-src 'none'/);
}

const base = join(dir, 'base');
const ready = (async () => {
  await useBackend();
  await writeTinyFluxBundle(base, ['an emoji of a kitchen knife', 'kitchen knife', 'spoon', 'dagger', 'in noto style']);
})();

const run = join(dir, 'erase');

test('report on an erase run: same bytes as the report.html mce erase wrote; grid, validation grids and plots inlined', async () => {
  await ready;
  const e = await runCli(['erase', '--model', base, '--concept', 'kitchen knife', '--iters', '4', '--steps', '2', '--prompts', '2', '--noises', '1', '--eval', '0', '--val-every', '2', '--out', run]);
  assert.equal(e.code, 0, e.err);
  const written = readFileSync(join(run, 'report.html'));
  const r = await runCli(['report', run, '--out', join(dir, 'again.html')]);
  assert.equal(r.code, 0, r.err);
  assert.match(r.err, /^mce report: erase run -> .*again\.html \(\d+ bytes\)\n$/);
  assert.ok(written.equals(readFileSync(join(dir, 'again.html'))), 'mce report and mce erase wrote different pages');
  const html = written.toString('utf8');
  assertSelfContained(html);
  // The grid and both validation grids, each the file's bytes.
  for (const f of ['grid.png', 'val-00002.png', 'val-00004.png']) {
    assert.ok(html.includes(`src="data:image/png;base64,${readFileSync(join(run, f)).toString('base64')}"`), f);
  }
  assert.match(html, /<title>mce erase: kitchen knife \(/);
  // Loss, divergence and per-layer sparsity plots as SVG, and the sparsity rows of every layer.
  assert.equal((html.match(/<svg /g) ?? []).length, 3);
  const sparsity = JSON.parse(readFileSync(join(run, 'sparsity.json'), 'utf8')) as { layers: { name: string }[] };
  for (const l of sparsity.layers) assert.ok(html.includes(`<td>${l.name}</td>`), l.name);
  assert.match(html, /erase MSE.*preserve MSE/s);
  // Without --out the report goes into the folder (overwriting it, same bytes).
  const again = await runCli(['report', run]);
  assert.equal(again.code, 0, again.err);
  assert.ok(written.equals(readFileSync(join(run, 'report.html'))));
  assert.deepEqual(readdirSync(run).filter((f) => f.endsWith('.tmp')), [], 'no temporary files left');
});

// Skipped only where no Chromium is installed, and never in CI (.ci/run sets MCE_REQUIRE_BROWSER).
const browserRequired = process.env['MCE_REQUIRE_BROWSER'] === '1';

test('the erase report opens offline in headless Chromium: every image decodes, the plots render, nothing is fetched', { skip: !browserRequired && !haveChromium() && `no Chromium at ${CHROMIUM}` }, async () => {
  assert.ok(haveChromium(), `MCE_REQUIRE_BROWSER=1 but there is no Chromium at ${CHROMIUM}`);
  const file = join(run, 'report.html');
  assert.ok(existsSync(file), 'the erase report (previous test) is missing');
  const browser = await launchChromium();
  try {
    const context = await browser.newContext({ offline: true });
    const page = await context.newPage();
    const requests: string[] = [];
    const problems: string[] = [];
    page.on('request', (r) => { if (!/^(file|data):/.test(r.url())) requests.push(r.url()); });
    page.on('console', (m) => { if (m.type() === 'error' || m.type() === 'warning') problems.push(m.text()); });
    page.on('pageerror', (e) => problems.push(e.message));
    await page.goto(pathToFileURL(file).href, { waitUntil: 'load' });
    const images = await page.$$eval('img', (els) => els.map((e) => ({ alt: e.getAttribute('alt'), w: (e as HTMLImageElement).naturalWidth, h: (e as HTMLImageElement).naturalHeight, done: (e as HTMLImageElement).complete })));
    assert.equal(images.length, 3, JSON.stringify(images));
    for (const i of images) assert.ok(i.done && i.w > 0 && i.h > 0, `image '${i.alt}' did not decode: ${JSON.stringify(i)}`);
    const svgs = await page.$$eval('svg', (els) => els.map((e) => { const b = e.getBoundingClientRect(); return { w: b.width, h: b.height, paths: e.querySelectorAll('path, rect').length }; }));
    assert.equal(svgs.length, 3);
    for (const v of svgs) assert.ok(v.w > 100 && v.h > 50 && v.paths > 0, JSON.stringify(v));
    assert.match(await page.title(), /^mce erase: kitchen knife/);
    assert.deepEqual(requests, [], 'the page asked for something outside the file');
    assert.deepEqual(problems, [], 'console errors (CSP violations show here)');
    await context.close();
  } finally {
    await browser.close();
  }
});

test('report on a baseline bundle: method, concept, settings and the loss curve', async () => {
  await ready;
  const out = join(dir, 'esd');
  const b = await runCli(['baseline', 'esd-x', '--model', base, '--concept', 'kitchen knife', '--iters', '3', '--steps', '2', '--out', out]);
  assert.equal(b.code, 0, b.err);
  const r = await runCli(['report', out]);
  assert.equal(r.code, 0, r.err);
  assert.match(r.err, /^mce report: baseline bundle -> /);
  const html = readFileSync(join(out, 'report.html'), 'utf8');
  assertSelfContained(html);
  assert.match(html, /<title>mce baseline esd-x: kitchen knife \(base tiny-flux\)<\/title>/);
  assert.match(html, /<td>erased bundle \(changed weights\)<\/td>/);
  assert.match(html, /loss per iteration/);
  const losses = (JSON.parse(readFileSync(join(out, 'summary.json'), 'utf8')) as { losses: number[] }).losses;
  assert.equal(losses.length, 3);
  assert.equal((html.match(/<path d="M[^"]*"/g) ?? [])[0]!.split(/[ML]/).length - 1, 3, 'one point per iteration');
});

test('report on a results folder: its table.md and grids, then every row of every results*.jsonl in a table (nested records as dotted columns, values escaped, broken lines counted)', async () => {
  const res = join(dir, 'bench');
  mkdirSync(res);
  const rows = [
    { method: 'mce', concept: 'kitchen knife', asr: 0.125, prompt: '<script>alert(1)</script>', data: { detection: 0.25, ssim: { mean: 0.9 } } },
    { method: 'uce', concept: 'kitchen knife', asr: 0.5, extra: [1, 2] },
  ];
  writeFileSync(join(res, 'results.shard-1-of-2.jsonl'), rows.map((x) => JSON.stringify(x)).join('\n') + '\n{"method": "esd-x", "conc');
  writeFileSync(join(res, 'results.shard-2-of-2.jsonl'), JSON.stringify({ method: 'ca', asr: 1 }) + '\n');
  writeFileSync(join(res, 'notes.jsonl'), JSON.stringify({ method: 'not a result file' }) + '\n');
  // A benchmark's table.md and grids/ come first.
  writeFileSync(join(res, 'table.md'), '### flux-emoji\n\n| method | detection |\n|---|---|\n| mce | 25% → 8% |\n| <b>uce</b> | 25% → 12% |\n\nDetection per case.\n');
  mkdirSync(join(res, 'grids'));
  const png = Buffer.from(encodePng({ width: 2, height: 2, channels: 3, data: Uint8Array.from({ length: 12 }, (_, i) => i * 20) }));
  writeFileSync(join(res, 'grids', 'flux-emoji--kitchen-knife.png'), png);
  writeFileSync(join(res, 'grids', 'notes.txt'), 'not an image');
  const r = await runCli(['report', res, '--out', join(dir, 'bench.html')]);
  assert.equal(r.code, 0, r.err);
  const html = readFileSync(join(dir, 'bench.html'), 'utf8');
  assertSelfContained(html);
  assert.match(html, /<tr><th>method<\/th><th>concept<\/th><th>asr<\/th><th>prompt<\/th><th>data\.detection<\/th><th>data\.ssim\.mean<\/th><th>extra<\/th><\/tr>/);
  assert.match(html, /<tr><td>mce<\/td><td>kitchen knife<\/td><td>0\.125<\/td><td>&lt;script&gt;alert\(1\)&lt;\/script&gt;<\/td><td>0\.25<\/td><td>0\.9<\/td><td><\/td><\/tr>/);
  assert.match(html, /<td>uce<\/td><td>kitchen knife<\/td><td>0\.5<\/td><td><\/td><td><\/td><td><\/td><td>\[1,2\]<\/td>/);
  assert.match(html, /<h2>results\.shard-1-of-2\.jsonl<\/h2><p>2 row\(s\) from results\.shard-1-of-2\.jsonl/);
  assert.match(html, /1 line\(s\) of results\.shard-1-of-2\.jsonl are not JSON objects and are left out \(line 3\)/);
  assert.match(html, /<h2>results\.shard-2-of-2\.jsonl<\/h2><p>1 row\(s\)[^]*<tr><td>ca<\/td><td>1<\/td><\/tr>/);
  assert.doesNotMatch(html, /not a result file/);
  assert.match(html, /<h2>table\.md<\/h2>\n<h4>flux-emoji<\/h4>\n<table><tr><th>method<\/th><th>detection<\/th><\/tr>\n<tr><td>mce<\/td><td>25% → 8%<\/td><\/tr>\n<tr><td>&lt;b&gt;uce&lt;\/b&gt;<\/td><td>25% → 12%<\/td><\/tr><\/table>\n<p>Detection per case\.<\/p>/);
  assert.ok(html.includes(`<img alt="grids/flux-emoji--kitchen-knife.png" src="data:image/png;base64,${png.toString('base64')}">`));
  assert.equal((html.match(/<img /g) ?? []).length, 1);
  assert.ok(html.indexOf('table.md') < html.indexOf('<h2>Images</h2>') && html.indexOf('<h2>Images</h2>') < html.indexOf('results.shard-1-of-2.jsonl'));
});

test('report: missing, empty or broken folders fail with one line and exit 1; bad usage exits 2', async () => {
  const empty = join(dir, 'empty');
  mkdirSync(empty);
  const broken = join(dir, 'broken');
  mkdirSync(broken);
  writeFileSync(join(broken, 'summary.json'), '{"command": "mce erase",');
  const cases: [string[], number, RegExp][] = [
    [['report'], 2, /^mce report: give one run folder/],
    [['report', 'a', 'b'], 2, /^mce report: give one run folder/],
    [['report', join(dir, 'nope')], 1, /^mce: .*nope: cannot read \(ENOENT\)/],
    [['report', empty], 1, /^mce: .*empty: nothing to report \(no summary\.json from mce erase, no manifest\.json with an erasure record, no results\*\.jsonl\)/],
    [['report', broken], 1, /^mce: .*broken\/summary\.json: not valid JSON/],
    [['report', empty, '--out', join(dir, 'no-such-dir', 'r.html')], 1, /^mce: .*empty: nothing to report/],
  ];
  const runs = await Promise.all(cases.map(([argv]) => runCli(argv)));
  runs.forEach((r, i) => {
    const [argv, code, re] = cases[i]!;
    assert.equal(r.code, code, `${argv.join(' ')}: exit ${r.code}, stderr ${r.err}`);
    assert.match(r.err, re, argv.join(' '));
    assert.equal(r.err.trim().split('\n').length, 1, `more than one line: ${r.err}`);
  });
  assert.deepEqual(readdirSync(empty), [], 'nothing written into a folder with nothing to report');
});
