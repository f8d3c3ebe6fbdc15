// Suggestions for unknown names: the nearest names when some are near (typos, a shared word), and
// for erasure targets, the full target list when none is, saying so when the name is a catalogue
// concept that simply is no target.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { nearestNames, UnknownConceptError } from '../../src/world/catalogue.js';
import { erasureTarget, erasureTargets } from '../../src/world/targets.js';

const names = [{ name: 'kitchen knife' }, { name: 'dagger', synonyms: ['knife'] }, { name: 'bomb' }, { name: 'noto style' }];

test('nearestNames: typos and shared words rank first; maxScore drops the far ones', () => {
  assert.deepEqual(nearestNames('kitchen knif', names, 2), ['kitchen knife', 'dagger']);
  assert.equal(nearestNames('bmob', names, 1)[0], 'bomb');
  // Every candidate is returned without a bound, none of these with one.
  assert.equal(nearestNames('banana split deluxe', names, 9).length, 4);
  assert.deepEqual(nearestNames('banana split deluxe', names, 9, 0.5), []);
});

const message = (name: string): UnknownConceptError => {
  try {
    erasureTarget(name);
  } catch (e) {
    assert.ok(e instanceof UnknownConceptError);
    return e;
  }
  assert.fail(`${name} was accepted`);
};

test('erasureTarget: near names are suggested with where the list is', () => {
  const e = message('zombi');
  assert.equal(e.suggestions[0], 'zombie');
  assert.match(e.message, /^unknown concept "zombi"; did you mean "zombie".*\(`mce concepts --targets` lists the erasure targets\)$/);
});

test('erasureTarget: a catalogue concept that is no target, and a name near nothing, list every target', () => {
  const all = erasureTargets().map((t) => t.name).join(', ');
  const banana = message('banana');
  assert.deepEqual(banana.suggestions, []);
  assert.equal(banana.message, `unknown concept "banana" (in the catalogue, but not an erasure target); the erasure targets are ${all}`);
  assert.equal(message('banana split deluxe').message, `unknown concept "banana split deluxe"; the erasure targets are ${all}`);
});
