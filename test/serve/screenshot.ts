// The README's screenshots of the lab: the lab on a runs folder, one run opened, a comparison
// generated and the trajectory scrubbed to its middle step (docs/serve.png); or, with bench:NAME,
// the block of benchmark folder NAME (docs/serve-bench.png).
//   node --import tsx test/serve/screenshot.ts RUNS_DIR RUN OUT.png [PROMPT] [SEED]
//   node --import tsx test/serve/screenshot.ts RUNS_DIR bench:NAME OUT.png
import { startLab } from '../../src/serve/server.js';
import { launchChromium } from './chromium.js';

const [runs, run, out, prompt, seed] = process.argv.slice(2);
if (!runs || !run || !out) throw new Error('usage: screenshot.ts RUNS_DIR RUN OUT.png [PROMPT] [SEED]');
const lab = await startLab({ runsDir: runs, port: 0 });
const browser = await launchChromium();
try {
  const page = await browser.newPage({ viewport: { width: 1440, height: 1100 } });
  await page.goto(lab.url);
  if (run.startsWith('bench:')) {
    const block = page.locator(`.bench-folder[data-name="${run.slice('bench:'.length)}"]`);
    await block.locator('.uplot canvas').first().waitFor();
    // Every grid image loaded first: images arriving later would move the block under the clip.
    await page.waitForLoadState('networkidle');
    await page.waitForFunction(() => [...document.images].every((i) => i.complete));
    // The block's top: its first model family's plots and table (the whole block is as tall as its grids).
    const box = (await block.boundingBox())!;
    await page.screenshot({ path: out, fullPage: true, clip: { x: box.x, y: box.y, width: box.width, height: Math.min(box.height, 1000) } });
  } else {
    await page.click(`button.run[data-name="${run}"]`);
    await page.waitForSelector(`button.run.active[data-name="${run}"]`);
    if (prompt) await page.fill('#prompt', prompt);
    if (seed) await page.fill('#seed', seed);
    await page.click('#generate');
    await page.waitForSelector('#trajectory:not([hidden])', { timeout: 120_000 });
    await page.$eval('#scrub', (el) => {
      const s = el as HTMLInputElement;
      s.value = String(Math.floor(Number(s.max) / 2));
      s.dispatchEvent(new Event('input'));
    });
    await page.screenshot({ path: out, fullPage: false });
  }
  process.stdout.write(`wrote ${out}\n`);
} finally {
  await browser.close();
  await lab.close();
}
