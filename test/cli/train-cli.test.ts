// mce train: the trainer table and its one-line errors (no real training here).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { TRAINERS } from '../../src/cli/train.js';
import { runCli } from './run.js';

const dir = mkdtempSync(join(tmpdir(), 'mce-train-cli-'));
const bad = join(dir, 'bad.json');
writeFileSync(bad, '{ "kind": "flow", ');
const wrongKind = join(dir, 'ae.json');
writeFileSync(wrongKind, JSON.stringify({ kind: 'ae', run: 'r', out: 'o' }));

const runs = {
  noKind: runCli(['train']),
  unknown: runCli(['train', 'gan', '--config', 'x.json']),
  noConfig: runCli(['train', 'flow']),
  missing: runCli(['train', 'flow', '--config', join(dir, 'nope.json')]),
  badJson: runCli(['train', 'flow', '--config', bad]),
  wrongKind: runCli(['train', 'flow', '--config', wrongKind]),
};

test.after(() => rmSync(dir, { recursive: true, force: true }));

test('train: the table has the base-model trainers', () => {
  for (const k of ['ae', 'flow']) assert.ok(TRAINERS[k], k);
});

test('train: usage and config errors are one line with the right exit code', async () => {
  const cases: [keyof typeof runs, number, RegExp][] = [
    ['noKind', 2, /^mce train: give one kind/],
    ['unknown', 2, /^mce train: unknown kind 'gan' \(known: .*flow/],
    ['noConfig', 2, /^mce train: --config FILE is required/],
    ['missing', 1, /^mce: cannot read config .*nope\.json: ENOENT/],
    ['badJson', 1, /^mce: config .*bad\.json is not valid JSON/],
    ['wrongKind', 1, /^mce: .*ae\.json: kind must be "flow"/],
  ];
  for (const [name, code, re] of cases) {
    const r = await runs[name];
    assert.equal(r.code, code, `${name}: exit ${r.code}, stderr ${r.err}`);
    assert.match(r.err, re, name);
    assert.equal(r.err.trim().split('\n').length, 1, `${name}: ${r.err}`);
  }
});
