// The lab page end to end in a real headless Chromium: it lists the run, draws the plots and
// tables, generates an original vs erased comparison, scrubs the trajectory, and streams an erase
// run's progress (here a run that fails at once on a misspelt concept) into the page.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import type { Browser, Page } from 'playwright-core';
import { startLab, WEB_DIST, type Lab } from '../../src/serve/server.js';
import { CHROMIUM, haveChromium, launchChromium } from './chromium.js';
import { CLI_FROM_SOURCES, FIXTURE_BENCH, FIXTURE_RUN, makeRunsFolder } from './fixture.js';

// Skipped only where no Chromium is installed, and never in CI (.ci/run installs it and sets MCE_REQUIRE_BROWSER).
const required = process.env['MCE_REQUIRE_BROWSER'] === '1';
const skip = haveChromium() || required ? false : `no Chromium at ${CHROMIUM} (apt-get install chromium, or set CHROMIUM=path); .ci/run installs it`;

let runs: string;
let lab: Lab;
let browser: Browser;
let page: Page;
const errors: string[] = [];

before(async () => {
  if (skip) return;
  assert.ok(haveChromium(), `MCE_REQUIRE_BROWSER=1 but there is no Chromium at ${CHROMIUM}`);
  assert.ok(existsSync(join(WEB_DIST, 'index.html')), `${WEB_DIST} is not built: npm run build:web`);
  runs = await makeRunsFolder();
  lab = await startLab({ runsDir: runs, port: 0, cli: CLI_FROM_SOURCES });
  browser = await launchChromium();
  page = await browser.newPage({ viewport: { width: 1400, height: 1000 } });
  page.on('pageerror', (e) => errors.push(e.message));
  page.on('console', (m) => void (m.type() === 'error' && errors.push(m.text())));
}, { timeout: 300_000 });

after(async () => {
  await browser?.close();
  await lab?.close();
  if (runs) rmSync(runs, { recursive: true, force: true });
}, { timeout: 60_000 });

/** Pixels of a canvas that are drawn (not transparent, not white). */
function inkedPixels(page: Page, selector: string): Promise<number> {
  return page.$eval(selector, (c) => {
    const canvas = c as HTMLCanvasElement;
    const d = canvas.getContext('2d')!.getImageData(0, 0, canvas.width, canvas.height).data;
    let n = 0;
    for (let i = 0; i < d.length; i += 4) if (d[i + 3]! > 0 && (d[i]! < 240 || d[i + 1]! < 240 || d[i + 2]! < 240)) n++;
    return n;
  });
}

test('the lab page: run, plots, tables, comparison, trajectory scrubber, streamed erase', { skip, timeout: 120_000 }, async () => {
  await page.goto(lab.url);
  await page.waitForSelector(`button.run.active[data-name="${FIXTURE_RUN}"]`);
  assert.match((await page.textContent('#run-title'))!, /knife: erase kitchen knife/);

  // Plots: each a uPlot canvas with something drawn on it; the sparsity plot has one bar per layer.
  for (const id of ['plot-sparsity', 'plot-divergence', 'plot-loss']) {
    await page.waitForSelector(`#${id} .uplot canvas`);
    assert.ok((await inkedPixels(page, `#${id} .uplot canvas`)) > 500, `${id} is blank`);
  }
  const layers = await page.$$eval('#sparsity-table tbody tr', (rows) => rows.filter((r) => !r.textContent!.startsWith('group')).length);
  assert.ok(layers >= 4, `${layers} layer rows`);
  assert.ok((await page.$$('#run-images img')).length >= 1);

  // The erasure benchmark folder: three plots per model family drawn, the table, the grid loaded.
  const bench = `.bench-folder[data-name="${FIXTURE_BENCH}"]`;
  await page.waitForSelector(`${bench} .uplot canvas`);
  const canvases = await page.$$(`${bench} .uplot canvas`);
  assert.equal(canvases.length, 3);
  for (let i = 0; i < canvases.length; i++) assert.ok((await inkedPixels(page, `${bench} .plot >> nth=${i} >> canvas`)) > 300, `bench plot ${i} is blank`);
  assert.match((await page.textContent(bench))!, /8 of 16 units done/);
  const mceRow = await page.$$eval(`${bench} .bench-table tbody tr`, (rows) => rows.map((r) => r.textContent ?? '').find((t) => t.startsWith('mce')));
  assert.match(mceRow!, /50\.0% → 12\.5%/);
  await page.waitForFunction((sel) => {
    const img = document.querySelector<HTMLImageElement>(`${sel} .images img`);
    return img !== null && img.complete && img.naturalWidth === 8;
  }, bench, { timeout: 10_000 });

  // A comparison on a prompt and seed of our own.
  await page.fill('#prompt', 'an emoji of a kitchen knife');
  await page.fill('#seed', '7');
  await page.fill('#steps', '3');
  await page.click('#generate');
  await page.waitForFunction(() => {
    const imgs = ['#original img', '#erased img'].map((s) => document.querySelector<HTMLImageElement>(s));
    return imgs.every((i) => i && i.complete && i.naturalWidth > 0);
  }, undefined, { timeout: 60_000 });
  const sizes = await page.$$eval('#original img, #erased img', (imgs) => imgs.map((i) => [(i as HTMLImageElement).naturalWidth, (i as HTMLImageElement).src.length]));
  assert.deepEqual(sizes.map((s) => s[0]), [32, 32]);
  const [orig, erased] = await page.$$eval('#original img, #erased img', (imgs) => imgs.map((i) => (i as HTMLImageElement).src));
  assert.notEqual(orig, erased, 'erased differs from the original');
  assert.match((await page.textContent('#compare-status'))!, /3 steps, seed 7/);

  // The scrubber: the last step shows the final image, the first another picture.
  assert.equal(await page.isVisible('#trajectory'), true);
  assert.equal(await page.$eval('#traj-original img', (i) => (i as HTMLImageElement).src), orig);
  await page.$eval('#scrub', (el) => {
    const s = el as HTMLInputElement;
    s.value = '0';
    s.dispatchEvent(new Event('input'));
  });
  assert.match((await page.textContent('#scrub-label'))!, /^1 \/ 3/);
  assert.notEqual(await page.$eval('#traj-original img', (i) => (i as HTMLImageElement).src), orig);

  // Start an erase run from the form: its stderr streams into the page, and the end is reported.
  await page.fill('#erase-name', 'typo');
  await page.fill('#erase-concept', 'kitchen knif');
  await page.fill('#erase-iters', '1');
  await page.click('#erase-start');
  await page.waitForFunction(() => /failed/.test(document.querySelector('#erase-status')!.textContent ?? ''), undefined, { timeout: 60_000 });
  assert.match((await page.textContent('#erase-log'))!, /unknown concept "kitchen knif"; did you mean "kitchen knife"/);
  assert.match((await page.textContent('#erase-status'))!, /typo: failed \(exit 1\)/);

  assert.deepEqual(errors, []);
});
