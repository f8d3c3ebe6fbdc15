import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  CATEGORIES,
  concept,
  conceptsNeededBy,
  erasureTarget,
  erasureTargets,
  loadCatalogue,
  UnknownConceptError,
  VENDORS,
} from '../../src/world/index.js';

const REQUIRED = [
  'kitchen knife', 'dagger', 'water pistol', 'bomb', 'pill', 'syringe', 'cigarette', 'superhero', 'vampire', 'zombie',
];

test('catalogue size is within bounds, and most concepts are in all three vendors', () => {
  const cat = loadCatalogue();
  assert.ok(cat.concepts.length >= 1500 && cat.concepts.length <= 1800, `${cat.concepts.length} concepts`);
  const all3 = cat.inAllVendors().length;
  assert.ok(all3 >= 1450 && all3 <= cat.concepts.length, `${all3} in all three vendors`);
  for (const c of cat.concepts) assert.ok(c.vendors.length >= 2, `${c.name} is drawn by ${c.vendors.join(', ')}`);
});

test('no flags, skin-tone variants, keycaps or components; names are unique lowercase ASCII', () => {
  const cat = loadCatalogue();
  const names = new Set<string>();
  for (const c of cat.concepts) {
    assert.ok(!names.has(c.name), `duplicate name ${c.name}`);
    names.add(c.name);
    assert.match(c.name, /^[a-z0-9][a-z0-9 '&.-]*$/, c.name);
    assert.ok(c.category in CATEGORIES, `${c.name}: category ${c.category}`);
    assert.notEqual(c.group, 'flags', c.name);
    assert.notEqual(c.subgroup, 'keycap', c.name);
    assert.notEqual(c.group, 'component', c.name);
    for (const part of c.codepoint.split('-')) {
      const cp = parseInt(part, 16);
      assert.ok(!(cp >= 0x1f3fb && cp <= 0x1f3ff), `${c.name} has a skin tone`);
      assert.ok(!(cp >= 0x1f1e6 && cp <= 0x1f1ff), `${c.name} is a flag`);
      assert.notEqual(cp, 0x20e3, `${c.name} is a keycap`);
    }
    for (const v of c.vendors) assert.ok(typeof c.icons[v] === 'string');
  }
  assert.equal(cat.find('chequered flag'), undefined);
  assert.equal(cat.find('keycap 10'), undefined);
});

test('concepts carry emojilib synonyms and keywords, the emoji, and curated categories', () => {
  const k = concept('kitchen knife');
  assert.equal(k.emoji, '\u{1f52a}');
  assert.equal(k.codepoint, '1f52a');
  assert.equal(k.category, 'weapons');
  assert.ok(k.keywords.includes('blade') && k.keywords.includes('cooking'));
  assert.ok(k.synonyms.includes('knife'));
  assert.equal(concept('cigarette').category, 'drugs');
  assert.equal(concept('vampire').category, 'characters');
  assert.equal(concept('cat').category, 'animals');
  assert.equal(concept('spoon').category, 'kitchenware');
  // Lookup by id, emoji, code point and synonym.
  assert.equal(concept('kitchen-knife').name, 'kitchen knife');
  assert.equal(concept('\u{1f52a}').name, 'kitchen knife');
  assert.equal(concept('1F52A').name, 'kitchen knife');
  assert.equal(concept('Water_Pistol').name, 'water pistol');
  assert.equal(concept('squirt gun').name, 'water pistol');
});

test('every required erasure target is in >= 2 vendors, with neighbours and a neutral phrase', () => {
  const targets = erasureTargets();
  const cat = loadCatalogue();
  for (const name of REQUIRED) {
    const t = erasureTarget(name);
    assert.equal(t.kind, 'concept');
    assert.ok(cat.get(t.concept!).vendors.length >= 2, name);
    assert.ok(t.neighbours.length >= 8, `${name}: ${t.neighbours.length} neighbours`);
    for (const n of [...t.members, ...t.neighbours, t.neutralConcept!]) assert.ok(cat.get(n).vendors.length >= 2, n);
    assert.ok(!t.neighbours.includes(t.neutralConcept!), `${name}: neutral is a neighbour`);
    assert.ok(!t.neighbours.some((n) => t.members.includes(n)), `${name}: a member is a neighbour`);
    assert.match(t.neutral, /^an? [a-z ]+$/);
  }
  assert.deepEqual(erasureTarget('vampire').members, ['vampire', 'man vampire', 'woman vampire']);
  assert.ok(erasureTarget('man vampire') === erasureTarget('vampire'));
  assert.ok(erasureTarget('kitchen knife').neighbours.includes('dagger'));
  assert.ok(erasureTarget('superhero').neighbours.includes('vampire'));
  // One style target per vendor, reachable by any of its names.
  for (const v of VENDORS) assert.ok(targets.some((t) => t.kind === 'style' && t.style === v));
  assert.equal(erasureTarget('twitter twemoji style').style, 'twemoji');
  assert.equal(erasureTarget('microsoft fluent').style, 'fluent');
  assert.equal(erasureTarget('noto style').neutral, '');
  assert.ok(conceptsNeededBy().length >= 60);
});

test('an unknown concept throws one clear line naming the nearest names', () => {
  assert.throws(
    () => concept('kitchen knif'),
    (e: unknown) => {
      assert.ok(e instanceof UnknownConceptError);
      assert.equal(e.suggestions[0], 'kitchen knife');
      assert.ok(!e.message.includes('\n'));
      assert.match(e.message, /unknown concept "kitchen knif"; did you mean "kitchen knife"/);
      return true;
    },
  );
  assert.throws(() => concept('vampyre'), /did you mean "vampire"/);
  assert.throws(() => concept('siringe'), /did you mean "syringe"/);
  assert.throws(() => erasureTarget('dagr'), /did you mean "dagger"/);
});
