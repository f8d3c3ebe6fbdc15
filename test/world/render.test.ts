import { test } from 'node:test';
import assert from 'node:assert/strict';
import { concept, loadIconSet, renderIcon, renderSvg, STYLES, styleOf, VENDORS } from '../../src/world/index.js';

function stats(img: Uint8Array): { mean: number; std: number; nonWhite: number; colours: number } {
  let sum = 0;
  let sq = 0;
  let nonWhite = 0;
  const colours = new Set<number>();
  const px = img.length / 3;
  for (let i = 0; i < px; i++) {
    const r = img[3 * i]!;
    const g = img[3 * i + 1]!;
    const b = img[3 * i + 2]!;
    const l = (r + g + b) / 3;
    sum += l;
    sq += l * l;
    if (r < 245 || g < 245 || b < 245) nonWhite++;
    colours.add((r << 16) | (g << 8) | b);
  }
  const mean = sum / px;
  return { mean, std: Math.sqrt(sq / px - mean * mean), nonWhite: nonWhite / px, colours: colours.size };
}

test('rendering is deterministic: the same icon gives the same bytes twice', () => {
  for (const v of VENDORS) {
    for (const name of ['kitchen knife', 'vampire', 'cat']) {
      const icon = concept(name).icons[v]!;
      const a = renderIcon(v, icon, 32);
      const b = renderIcon(v, icon, 32);
      assert.equal(a.length, 32 * 32 * 3);
      assert.ok(Buffer.from(a).equals(Buffer.from(b)), `${v}/${icon}`);
    }
  }
});

test('renders are not blank: pixel statistics of real art on a white background', () => {
  for (const v of VENDORS) {
    for (const name of ['kitchen knife', 'bomb', 'grinning face', 'syringe']) {
      const img = renderIcon(v, concept(name).icons[v]!, 32);
      const s = stats(img);
      assert.ok(s.nonWhite > 0.05 && s.nonWhite < 0.95, `${v}/${name}: ${s.nonWhite} non-white`);
      assert.ok(s.std > 20, `${v}/${name}: std ${s.std}`);
      assert.ok(s.colours > 20, `${v}/${name}: ${s.colours} colours`);
      // The corners are background: white.
      assert.deepEqual([...img.subarray(0, 3)], [255, 255, 255]);
    }
  }
  // A solid square covers exactly the expected part of the canvas.
  const half = renderSvg(
    '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 16 16" width="16" height="16"><rect width="8" height="16" fill="#000"/></svg>',
    16,
  );
  assert.equal(stats(half).nonWhite, 0.5);
});

test('art with spare artboards outside its view box renders (resvg would abort on it)', () => {
  const img = renderIcon('noto', concept('package').icons.noto!, 32);
  assert.ok(stats(img).nonWhite > 0.2);
});

test('each vendor is a style with prompt names; every set loads offline', () => {
  assert.equal(styleOf('google noto style'), 'noto');
  assert.equal(styleOf('microsoft fluent style'), 'fluent');
  assert.equal(styleOf('twitter twemoji style'), 'twemoji');
  assert.equal(styleOf('openmoji'), undefined);
  for (const v of VENDORS) {
    const set = loadIconSet(v);
    assert.ok(set.chars.size > 3000, v);
    assert.match(set.version, /^\d+\.\d+\.\d+/);
    assert.ok(!STYLES[v].pkg.includes('openmoji'));
  }
});
