// mce eval as a user runs it: one-line usage errors with exit code 2, user errors with 1, and one
// small `mce eval quality` on the shipped flux-emoji with a tiny random classifier (--json, --out).
import { test, before, after } from 'node:test';
import { createHash } from 'node:crypto';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { decodePng } from '../../src/io/png.js';
import { initClassifier, saveClassifier, type ClassifierConfig } from '../../src/models/classifier/classifier.js';
import { selectConcepts } from '../../src/world/dataset.js';
import { runCli } from './run.js';

const SHIPPED = fileURLToPath(new URL('../../models/flux-emoji/manifest.json', import.meta.url));
const dir = mkdtempSync(join(tmpdir(), 'mce-eval-'));
const clf = join(dir, 'clf.safetensors');

before(async () => {
  // A tiny random classifier over flux-emoji's 320 concepts: the run is about the plumbing, not the numbers.
  const cfg: ClassifierConfig = { backbone: { size: 16, widths: [8, 16], depths: [1, 1], groups: 4 }, concepts: selectConcepts(320, 0), styles: ['noto', 'fluent', 'twemoji'] };
  await saveClassifier(clf, cfg, initClassifier(cfg, 2), 'F16');
});
after(() => rmSync(dir, { recursive: true, force: true }));

test('eval: usage errors exit 2 and user errors exit 1, each one line', async () => {
  const cases: [string[], number, RegExp][] = [
    [['eval'], 2, /^mce eval: give one of quality/],
    [['eval', 'nope'], 2, /^mce eval: unknown evaluation 'nope' \(known: quality, erasure\)/],
    [['eval', 'quality', 'extra'], 2, /^mce eval: give one of quality/],
    [['eval', 'quality', '--seeds', '0'], 2, /^mce eval quality: --seeds must be an integer in \[1, 64\], got 0/],
    [['eval', 'quality', '--seeds', '2.5'], 2, /^mce eval quality: --seeds must be an integer/],
    [['eval', 'quality', '--seeds', 'abc'], 2, /^mce eval: --seeds must be a number, got 'abc'/],
    [['eval', 'quality', '--steps', '0'], 2, /^mce eval quality: --steps must be an integer in \[1, 200\], got 0/],
    [['eval', 'quality', '--cfg=-1'], 2, /^mce eval quality: --cfg must be in \[0, 50\], got -1/],
    [['eval', 'quality', '--prompts', 'test'], 2, /^mce eval quality: --prompts must be one of heldout, train, got 'test'/],
    [['eval', 'quality', '--concepts', '0'], 2, /^mce eval: --concepts count must be at least 1/],
    [['eval', 'quality', '--concepts', ' , '], 2, /^mce eval: --concepts must be 'all', a count, or names/],
    [['eval', 'quality', '--model', join(dir, 'no-model')], 1, /^mce: no model at /],
    [['eval', 'quality', '--shard', '1/2', '--out', join(dir, 's'), '--record'], 2, /^mce eval quality: --record goes with the whole run or its merge, not one shard/],
  ];
  const runs = await Promise.all(cases.map(([argv]) => runCli(argv)));
  runs.forEach((r, i) => {
    const [argv, code, re] = cases[i]!;
    assert.equal(r.code, code, `${argv.join(' ')}: exit ${r.code}, stderr ${r.err}`);
    assert.match(r.err, re, argv.join(' '));
    assert.equal(r.err.trim().split('\n').length, 1, `${argv.join(' ')}: more than one line: ${r.err}`);
  });
});

test('eval quality on flux-emoji: an unknown concept is one line; --json is one object; --out writes quality.json and samples.png', { skip: !existsSync(SHIPPED) && 'models/flux-emoji not shipped yet' }, async () => {
  const out = join(dir, 'out');
  // --record writes into the model folder's manifest: a folder of links to the shipped files, with its own manifest copy.
  const model = join(dir, 'model');
  mkdirSync(model);
  for (const f of readdirSync(dirname(SHIPPED))) {
    if (f === 'manifest.json') writeFileSync(join(model, f), readFileSync(SHIPPED));
    else symlinkSync(join(dirname(SHIPPED), f), join(model, f));
  }
  const [bad, ok, rec] = await Promise.all([
    runCli(['eval', 'quality', '--concepts', 'kitchen knif', '--classifier', clf]),
    runCli(['eval', 'quality', '--concepts', 'kitchen knife', '--seeds', '1', '--classifier', clf, '--clip', join(dir, 'none'), '--json', '--out', out]),
    runCli(['eval', 'quality', '--model', model, '--concepts', 'kitchen knife,dagger', '--seeds', '1', '--classifier', clf, '--clip', join(dir, 'none'), '--prompts', 'train', '--json', '--record']),
  ]);
  assert.equal(rec.code, 0, rec.err);
  assert.match(rec.err, /recorded in .*manifest\.json \(quality\.eval_quality_train_prompts\)/);
  const before = JSON.parse(readFileSync(SHIPPED, 'utf8'));
  const after = JSON.parse(readFileSync(join(model, 'manifest.json'), 'utf8'));
  const recorded = after.quality.eval_quality_train_prompts;
  assert.equal(recorded.command, `mce eval quality --model ${model} --concepts 'kitchen knife,dagger' --seeds 1 --classifier ${clf} --clip ${join(dir, 'none')} --prompts train --json --record`);
  const recReport = JSON.parse(rec.out);
  assert.equal(recorded.concept_top1.generated, Math.round(recReport.metrics.conceptTop1.generated * 1e4) / 1e4);
  assert.deepEqual(recorded.images, { generated: 6, real: 6 });
  assert.deepEqual(recorded.evaluators, { classifier: { path: clf, sha256: createHash('sha256').update(readFileSync(clf)).digest('hex') }, clip: null });
  assert.deepEqual(after.quality.eval_quality, before.quality.eval_quality, 'the held-out record is kept');
  assert.deepEqual({ ...after, quality: undefined }, { ...before, quality: undefined }, 'nothing else changes');
  assert.equal(bad.code, 1, bad.err);
  assert.match(bad.err, /^mce: unknown concept "kitchen knif"; did you mean "kitchen knife"/);
  assert.equal(ok.code, 0, ok.err);
  assert.match(ok.err, /eval quality 3\/3 100%/, 'progress on stderr');
  const lines = ok.out.trim().split('\n');
  assert.equal(lines.length, 1);
  const report = JSON.parse(lines[0]!);
  assert.deepEqual(report.images, { generated: 3, real: 3 });
  assert.equal(report.model.name, 'flux-emoji');
  assert.equal(report.classifiedAmong.concepts, 320);
  assert.equal(report.metrics.clipScore.generated, null);
  assert.deepEqual(JSON.parse(readFileSync(join(out, 'quality.json'), 'utf8')), report);
  const grid = decodePng(readFileSync(join(out, 'samples.png')));
  assert.equal(grid.width, 6 * 32 + 7 * 2, 'per style: the real render and one seed');
});
