// Training configs are validated with a schema: the shipped configs pass, and each kind of mistake
// (wrong value, wrong type, missing field, misspelt field, fields that disagree) is one line that
// names the file and the field.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { validateAeConfig } from '../../src/train/ae.js';
import { validateClassifierConfig } from '../../src/train/classifier.js';
import { validateClipTrainConfig } from '../../src/train/clip.js';
import { runCli } from '../cli/run.js';

const dir = mkdtempSync(join(tmpdir(), 'mce-config-schema-'));
after(() => rmSync(dir, { recursive: true, force: true }));

const ROOT = new URL('../../', import.meta.url);
const shipped = (f: string): Record<string, any> => JSON.parse(readFileSync(new URL(`configs/${f}`, ROOT), 'utf8'));

const validators: Record<string, (c: any, where: string) => void> = {
  ae: validateAeConfig,
  classifier: validateClassifierConfig,
  clip: validateClipTrainConfig,
};

/** The error message for the shipped config `file` after `edit`, or 'ok'. */
function check(file: string, edit: (c: Record<string, any>) => void): string {
  const c = shipped(file);
  const validate = validators[c['kind'] as string]!;
  edit(c);
  try {
    validate(c, 'x.json');
    return 'ok';
  } catch (e) {
    return (e as Error).message;
  }
}

test('the shipped ae, classifier and clip configs pass', () => {
  for (const f of ['flux-emoji-ae.json', 'flux-emoji-ae-decoder.json', 'classifier.json', 'classifier-holdout-twemoji.json', 'clip.json']) assert.equal(check(f, () => {}), 'ok', f);
});

test('ae: each mistake names its field', () => {
  const cases: [(c: Record<string, any>) => void, string][] = [
    [(c) => (c['train'].lr = -0.1), 'x.json: train.lr: expected a positive number'],
    [(c) => (c['train'].lr = '0.1'), 'x.json: train.lr: expected a positive number'],
    [(c) => delete c['train'].steps, 'x.json: train.steps: missing'],
    [(c) => delete c['dataset'], 'x.json: dataset: missing'],
    [(c) => (c['train'].weightdecay = 0), 'x.json: train: unknown field "weightdecay"'],
    [(c) => (c['ae'].ch_mult = [1, 0]), 'x.json: ae.ch_mult.1: expected an integer >= 1'],
    [(c) => (c['ae'].resolution = 64), 'x.json: ae.resolution: must equal dataset.size (32), got 64'],
    [(c) => (c['kind'] = 'flow'), 'x.json: kind must be "ae"'],
    [(c) => { c['run'] = 3; c['train'].batch = 0; }, 'x.json: run: expected a path (a string) (and 1 more problem)'],
  ];
  for (const [edit, want] of cases) assert.equal(check('flux-emoji-ae.json', edit), want);
});

test('classifier and clip: nested sections, enums and agreeing fields name the field', () => {
  assert.equal(check('classifier.json', (c) => (c['holdoutVendor'] = 'apple')), 'x.json: holdoutVendor: expected one of "noto", "fluent", "twemoji"');
  assert.equal(check('classifier.json', (c) => (c['style'].train.lr = 0)), 'x.json: style.train.lr: expected a positive number');
  assert.equal(check('classifier.json', (c) => (c['augment'].rotat = 5)), 'x.json: augment: unknown field "rotat"');
  assert.equal(check('classifier.json', (c) => (c['train'].labelSmoothing = 1.5)), 'x.json: train.labelSmoothing: expected a number in [0, 1]');
  assert.equal(check('classifier.json', (c) => (c['dtype'] = 'F64')), 'x.json: dtype: expected "F32", "F16" or "BF16"');
  assert.equal(check('clip.json', (c) => (c['text'].heads = 3)), `x.json: text.heads: must divide text.width (${shipped('clip.json')['text'].width}), got 3`);
  assert.equal(check('clip.json', (c) => (c['dataset'].concepts = [])), 'x.json: dataset.concepts: expected at least one concept');
});

test('mce train: a bad field is one line naming the file and the field, exit 1', async () => {
  const bad = join(dir, 'ae.json');
  const c = shipped('flux-emoji-ae.json');
  c['train'].lr = 0;
  writeFileSync(bad, JSON.stringify(c));
  const r = await runCli(['train', 'ae', '--config', bad]);
  assert.equal(r.code, 1);
  assert.equal(r.err, `mce: ${bad}: train.lr: expected a positive number\n`);
});
