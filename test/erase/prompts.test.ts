// MCE prompt sets from emoji-world: train split only, neutral replacement, neighbours always in
// the preserve set, no target member among the preserve prompts, several targets interleaved.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { captions } from '../../src/world/captions.js';
import { erasureTarget } from '../../src/world/targets.js';
import { VENDORS } from '../../src/world/vendors.js';
import { barePhrase, buildPromptSets } from '../../src/erase/mce/prompts.js';

test('erase prompts come from the train split and map to the neutral phrase', () => {
  const s = buildPromptSets(['kitchen knife'], { erasePerTarget: 10, preserve: 20, seed: 1 });
  const held = new Set([null, ...VENDORS].flatMap((v) => captions('kitchen knife', v, 'heldout')));
  const train = new Set([null, ...VENDORS].flatMap((v) => captions('kitchen knife', v, 'train')));
  assert.equal(s.erase.length, 10);
  for (const p of s.erase) {
    assert.ok(train.has(p.prompt) && !held.has(p.prompt), p.prompt);
    assert.match(p.neutral, /spoon/);
    assert.doesNotMatch(p.neutral, /knife/);
  }
  // Neighbours first, all of them while there is room; no member or neutral concept in preserve.
  const t = erasureTarget('kitchen knife');
  assert.deepEqual(s.neighbours, t.neighbours);
  assert.equal(s.preserve.length, 20);
  const captionOf = (concept: string, p: string): boolean => [null, ...VENDORS].some((v) => captions(concept, v, 'train').includes(p));
  t.neighbours.forEach((n, i) => assert.ok(captionOf(n, s.preserve[i]!), `${n}: ${s.preserve[i]}`));
  // A target with more neighbours than room: all are reported (the evaluation's "others" exclude
  // them), the first ones fill the preserve set.
  const hero = buildPromptSets(['superhero'], { erasePerTarget: 4, preserve: 12 });
  assert.equal(erasureTarget('superhero').neighbours.length, 19);
  assert.deepEqual(hero.neighbours, erasureTarget('superhero').neighbours);
  hero.preserve.forEach((p, i) => assert.ok(captionOf(hero.neighbours[i]!, p), p));
  for (const p of s.preserve) assert.doesNotMatch(p, /kitchen knife|spoon/);
  // Deterministic for a seed, different for another.
  assert.deepEqual(buildPromptSets(['kitchen knife'], { erasePerTarget: 10, preserve: 20, seed: 1 }), s);
  assert.notDeepEqual(buildPromptSets(['kitchen knife'], { erasePerTarget: 10, preserve: 20, seed: 2 }).erase, s.erase);
});

test('neutral override, styles, several targets', () => {
  const o = buildPromptSets(['dagger'], { erasePerTarget: 4, neutral: 'a feather' });
  for (const p of o.erase) assert.match(p.neutral, /feather/);
  assert.equal(barePhrase('an apple'), 'apple');
  const st = buildPromptSets(['twemoji style'], { erasePerTarget: 5, preserve: 6 });
  for (const p of st.erase) assert.doesNotMatch(p.neutral, /twemoji|twitter/i);
  for (const p of st.preserve) assert.doesNotMatch(p, /twemoji|twitter/i);
  const multi = buildPromptSets(['kitchen knife', 'vampire', 'twemoji style'], { erasePerTarget: 3, preserve: 30 });
  assert.deepEqual(multi.erase.map((e) => e.target), ['kitchen knife', 'vampire', 'twemoji style', 'kitchen knife', 'vampire', 'twemoji style', 'kitchen knife', 'vampire', 'twemoji style']);
  for (const p of multi.preserve) assert.doesNotMatch(p, /kitchen knife|vampire|dracula|twemoji/i);
  assert.throws(() => buildPromptSets(['vampyre']), /did you mean "vampire"/);
});

test('SSIM: 1 for identical images, lower for a changed one, symmetric', async () => {
  const { ssim } = await import('../../src/erase/mce/evaluate.js');
  const W = 16;
  const a = { width: W, height: W, data: Uint8Array.from({ length: W * W * 3 }, (_, i) => (i * 37) % 251) };
  const b = { width: W, height: W, data: Uint8Array.from(a.data, (v, i) => (i % 5 === 0 ? 255 - v : v)) };
  assert.ok(Math.abs(ssim(a, a) - 1) < 1e-12);
  const s = ssim(a, b);
  assert.ok(s < 0.95 && s > -1, String(s));
  assert.ok(Math.abs(s - ssim(b, a)) < 1e-12);
});

test('pair filter: keeps the pairs within the quantile of the background scores; background texts drop the concept', async () => {
  const { filterPairs, withoutPhrase } = await import('../../src/erase/mce/prompts.js');
  assert.deepEqual(filterPairs([0.5, 0.1, 0.9, 0.2, 0.3, 0.05, 0.4, 0.6, 0.7, 0.8], 0.9), [0, 1, 3, 4, 5, 6, 7, 8, 9]);
  assert.deepEqual(filterPairs([0.3, 0.1, 0.2], 1), [0, 1, 2]);
  assert.deepEqual(filterPairs([0.3, 0.1, 0.2, 0.4], 0.5), [1, 2]);
  assert.throws(() => filterPairs([1], 0));
  assert.equal(withoutPhrase("an emoji of a chef's knife in noto style", "chef's knife"), 'an emoji of in noto style');
  assert.equal(withoutPhrase('a kitchen knife, emoji art', 'kitchen knife'), 'emoji art');
  const s = buildPromptSets(['kitchen knife'], { erasePerTarget: 5 });
  for (const p of s.erase) assert.ok(p.background !== undefined && !/knife/.test(p.background), p.background);
});

test('held-out evaluation groups: neighbours are the first n of the targets\' neighbours; "others" are none of them', async () => {
  const { heldOutEvalItems } = await import('../../src/erase/mce/evaluate.js');
  const sets = buildPromptSets(['superhero'], { erasePerTarget: 4, preserve: 12 });
  const all = erasureTarget('superhero').neighbours;
  const g = heldOutEvalItems(sets, 12, 0);
  assert.deepEqual(g.neighbours.map((x) => x.t), all.slice(0, 12));
  assert.equal(g.others.length, 12);
  for (const x of g.others) assert.ok(!all.includes(x.t) && !['superhero', 'man superhero', 'woman superhero'].includes(x.t), x.t);
  for (const x of g.erase) assert.match(x.t, /superhero/);
  const held = new Set([null, ...VENDORS].flatMap((v) => captions('superhero', v, 'heldout')));
  assert.ok(g.erase.some((x) => held.has(x.p)));
  assert.deepEqual(heldOutEvalItems(sets, 12, 0), g, 'deterministic for a seed');
});
