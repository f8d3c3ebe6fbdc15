import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  article,
  canonicalCaption,
  captionRecords,
  captionWords,
  captions,
  conceptPhrases,
  erasureTargets,
  loadCatalogue,
  stylePhrases,
  templates,
  VENDORS,
  wordsOutside,
} from '../../src/world/index.js';

test('templates and style phrases split into non-empty, disjoint train and held-out parts', () => {
  for (const styled of [false, true]) {
    const tr = templates('train', styled);
    const ho = templates('heldout', styled);
    assert.ok(tr.length >= 8 && ho.length >= 3, `${styled}: ${tr.length} / ${ho.length}`);
    assert.equal(tr.filter((t) => ho.includes(t)).length, 0);
  }
  for (const v of VENDORS) {
    const tr = stylePhrases(v, 'train');
    const ho = stylePhrases(v, 'heldout');
    assert.equal(tr[0], v);
    assert.ok(ho.length >= 1);
    assert.equal(tr.filter((t) => ho.includes(t)).length, 0);
  }
});

test('train and held-out captions are disjoint, for every target and style', () => {
  const names = [...erasureTargets().filter((t) => t.kind === 'concept').map((t) => t.concept!), 'cat', 'french fries'];
  for (const name of names) {
    for (const style of [null, ...VENDORS]) {
      const tr = captions(name, style, 'train');
      const ho = captions(name, style, 'heldout');
      assert.ok(tr.length > 0 && ho.length > 0, `${name}/${style}`);
      const trSet = new Set(tr);
      for (const h of ho) assert.ok(!trSet.has(h), `${name}/${style}: "${h}" is in both`);
      assert.equal(new Set(ho).size, ho.length);
    }
  }
});

test('held-out synonyms never reach a train caption; held-out captions use held-out parts', () => {
  const cat = loadCatalogue();
  for (const name of ['kitchen knife', 'water pistol', 'vampire', 'cigarette']) {
    const c = cat.get(name);
    const heldSyn = conceptPhrases(c, 'heldout');
    assert.ok(heldSyn.length >= 1, name);
    assert.equal(conceptPhrases(c, 'train')[0], c.name);
    for (const r of captionRecords(c, 'twemoji', 'train')) {
      assert.ok(!heldSyn.includes(r.conceptPhrase));
      assert.ok(templates('train', true).includes(r.template));
      assert.ok(stylePhrases('twemoji', 'train').includes(r.stylePhrase!));
    }
    for (const r of captionRecords(c, 'twemoji', 'heldout')) {
      const held =
        heldSyn.includes(r.conceptPhrase) ||
        templates('heldout', true).includes(r.template) ||
        stylePhrases('twemoji', 'heldout').includes(r.stylePhrase!);
      assert.ok(held, r.text);
    }
  }
});

test('captions read naturally and the split is deterministic and seeded', () => {
  assert.equal(canonicalCaption('kitchen knife'), 'a kitchen knife');
  assert.equal(canonicalCaption('kitchen knife', 'twemoji'), 'a kitchen knife in twemoji style');
  assert.ok(captions('kitchen knife', 'twemoji', 'train').includes('an emoji of a kitchen knife in twemoji style'));
  assert.ok(captions('apple', null, 'train').length > 0);
  assert.equal(article('apple'), 'an');
  assert.equal(article('unicorn'), 'a');
  assert.equal(article('french fries'), '');
  assert.equal(article('grinning cat with smiling eyes'), 'a');
  for (const t of captions('cat', 'noto', 'train')) assert.ok(!/\{|\}/.test(t) && !/\ba an\b|\ban a\b/.test(t), t);
  assert.deepEqual(captions('dagger', 'fluent', 'heldout'), captions('dagger', 'fluent', 'heldout'));
  const other = [1, 2, 3, 4, 5].map((seed) => templates('heldout', false, seed).join('|'));
  assert.ok(new Set(other).size > 1, 'the seed changes the split');
});

test('captionWords reads words as a caption vocabulary counts them; wordsOutside lists the unknown ones once', () => {
  assert.deepEqual(captionWords("A Chef's knife, twemoji-style: 1st place!"), ['a', "chef's", 'knife', 'twemoji', 'style', '1st', 'place']);
  assert.deepEqual(captionWords('  ,;  '), []);
  assert.deepEqual(wordsOutside(['a', 'knife', 'in', 'style', 'noto'], 'a hocho in Noto style, a HOCHO and a dirk'), ['hocho', 'and', 'dirk']);
  assert.deepEqual(wordsOutside(['a', 'knife'], 'A knife'), []);
});

