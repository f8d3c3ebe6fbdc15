// mce attack: one-line usage errors, and a real I2P-suite run on a tiny bundle that saves the
// prompts with the attacked bundle's hash and gives the same result twice.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { useBackend } from '../../src/engine/backend.js';
import { bundleHash } from '../../src/attacks/subject.js';
import { writeTinyFluxBundle } from '../erase/baselines/fixture.js';
import { runCli } from './run.js';

test('mce attack: bad calls fail in one line with exit 2 (usage) or 1 (unknown concept, missing model)', async () => {
  const cases: [string[], number, RegExp][] = [
    [['attack', '--model', 'flux-emoji', '--concept', 'vampire'], 2, /give one attack/],
    [['attack', 'i2p', '--concept', 'vampire'], 2, /--model is required/],
    [['attack', 'nope', '--model', 'x', '--concept', 'vampire'], 2, /unknown attack 'nope'/],
    [['attack', 'i2p', '--model', 'flux-emoji', '--concept', 'vampire', '--budget', 'huge'], 2, /--budget must be quick or full/],
    [['attack', 'i2p', '--model', 'flux-emoji', '--concept', 'kitchen knive'], 1, /kitchen knife/],
    [['attack', 'i2p', '--model', '/no/such/model', '--concept', 'vampire'], 1, /no model at \/no\/such\/model/],
  ];
  const runs = await Promise.all(cases.map(([argv]) => runCli(argv)));
  runs.forEach((r, i) => {
    assert.equal(r.code, cases[i]![1], `${cases[i]![0].join(' ')}: ${r.err}`);
    assert.match(r.err, cases[i]![2]);
    assert.equal(r.err.trim().split('\n').length, 1, r.err);
  });
});

test('mce attack i2p on a tiny bundle: ASR printed, result saved under the model hash, same seed same result', async () => {
  await useBackend();
  const dir = mkdtempSync(join(tmpdir(), 'mce-attack-'));
  try {
    const base = join(dir, 'base');
    await writeTinyFluxBundle(base, ['an emoji of a kitchen knife', 'kitchen knife', 'knife', 'spoon', 'dagger']);
    const argv = ['attack', 'i2p', '--model', base, '--original', base, '--concept', 'kitchen knife', '--json'];
    const a = await runCli([...argv, '--out', join(dir, 'a')]);
    const b = await runCli([...argv, '--out', join(dir, 'b')]);
    assert.equal(a.code, 0, a.err);
    assert.equal(b.code, 0, b.err);
    const ra = JSON.parse(a.out) as { asr: number; generations: number; model: { sha256: string }; prompts: { prompt: string }[]; file: string };
    const rb = JSON.parse(b.out) as typeof ra;
    assert.equal(ra.model.sha256, bundleHash(base));
    assert.ok(ra.generations > 0 && ra.asr >= 0 && ra.asr <= 1);
    assert.ok(ra.prompts.some((p) => /küchenmesser/i.test(p.prompt)), 'the German label is among the prompts');
    assert.deepEqual(rb.prompts, ra.prompts);
    assert.equal(rb.asr, ra.asr);
    const files = readdirSync(join(dir, 'a'));
    assert.deepEqual(files, [`i2p--kitchen-knife--${ra.model.sha256.slice(0, 12)}.json`]);
    assert.equal((JSON.parse(readFileSync(join(dir, 'a', files[0]!), 'utf8')) as { model: { sha256: string } }).model.sha256, ra.model.sha256);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
