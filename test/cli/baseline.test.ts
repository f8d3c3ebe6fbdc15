// mce baseline as a user runs it: one-line usage errors; each method (ESD-u shares ESD-x's path,
// test/erase/baselines covers it) on a tiny random bundle writes
// a bundle that `mce generate --model DIR` loads, and a summary.json; the same seed gives the same
// bytes; --concept "a, b" erases both.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runCli } from './run.js';
import { writeTinyFluxBundle, writeTinySdBundle } from '../erase/baselines/fixture.js';
import { useBackend } from '../../src/engine/backend.js';

test('baseline: bad methods, flags and concepts fail with one line and the right exit code', async () => {
  const cases: [string[], number, RegExp][] = [
    [['baseline', '--concept', 'kitchen knife', '--out', '/tmp/mce-never'], 2, /^mce baseline: give one method: uce, sld, esd-x, esd-u, ca, flowedit, eap/],
    [['baseline', 'fmn', '--concept', 'kitchen knife', '--out', '/tmp/mce-never'], 2, /unknown method 'fmn'/],
    [['baseline', 'uce', '--out', '/tmp/mce-never'], 2, /--concept NAME is required/],
    [['baseline', 'uce', '--concept', 'kitchen knife'], 2, /--out DIR is required/],
    [['baseline', 'sld', '--concept', 'kitchen knife', '--preset', 'HUGE', '--out', '/tmp/mce-never'], 2, /--preset must be one of WEAK, MEDIUM, STRONG, MAX/],
    [['baseline', 'esd-x', '--concept', 'kitchen knife', '--iters', '1.5', '--out', '/tmp/mce-never'], 2, /--iters must be an integer/],
    [['baseline', 'uce', '--concept', 'kitchen knif', '--out', '/tmp/mce-never'], 1, /^mce: unknown .*"kitchen knif"/],
    [['baseline', 'uce', '--concept', 'kitchen knife', '--model', '/tmp/mce-no-model', '--out', '/tmp/mce-never'], 1, /^mce: no model at \/tmp\/mce-no-model/],
  ];
  const runs = await Promise.all(cases.map(([argv]) => runCli(argv)));
  runs.forEach((r, i) => {
    const [argv, code, re] = cases[i]!;
    assert.equal(r.code, code, `${argv.join(' ')}: exit ${r.code}, stderr ${r.err}`);
    assert.match(r.err, re, argv.join(' '));
    assert.equal(r.err.trim().split('\n').length, 1, `more than one line: ${r.err}`);
  });
  assert.ok(!existsSync('/tmp/mce-never'));
});

test('baseline: every method on a tiny bundle writes a loadable bundle and summary.json; same seed, same bytes', async () => {
  await useBackend();
  const dir = mkdtempSync(join(tmpdir(), 'mce-baseline-'));
  try {
    const base = join(dir, 'base');
    await writeTinyFluxBundle(base, ['an emoji of a kitchen knife', 'kitchen knife', 'spoon', 'dagger', 'in noto style']);
    const quick = ['--iters', '3', '--steps', '2', '--prompts', '2'];
    const methods = ['uce', 'sld', 'esd-x', 'ca', 'flowedit'];
    const runs = await Promise.all(methods.map((m) => runCli(['baseline', m, '--model', base, '--concept', 'kitchen knife', ...quick, '--out', join(dir, m)])));
    runs.forEach((r, i) => assert.equal(r.code, 0, `${methods[i]}: ${r.err}`));
    for (const m of methods) {
      const s = JSON.parse(readFileSync(join(dir, m, 'summary.json'), 'utf8')) as { method: string; kind: string; changed: { params: number }; seconds: number; peak_rss_bytes: number; peak_rss_before_run_bytes: number };
      assert.equal(s.method, m);
      const wrapper = m === 'sld' || m === 'flowedit';
      assert.equal(s.kind, wrapper ? 'inference wrapper' : 'erased bundle');
      if (wrapper) assert.equal(s.changed.params, 0);
      else assert.ok(s.changed.params > 0, `${m} changed nothing`);
      // A wrapper's run only records settings: it can round to 0.000 s.
      assert.ok(wrapper ? s.seconds >= 0 : s.seconds > 0, `${m}: ${s.seconds} s`);
      assert.ok(s.peak_rss_bytes >= s.peak_rss_before_run_bytes && s.peak_rss_before_run_bytes > 0, `${m}: peak RSS ${s.peak_rss_bytes}, before ${s.peak_rss_before_run_bytes}`);
      const man = JSON.parse(readFileSync(join(dir, m, 'manifest.json'), 'utf8')) as { erasure: { method: string; base: { name: string } }; wrapper?: unknown };
      assert.equal(man.erasure.method, m);
      assert.equal(man.erasure.base.name, 'tiny-flux');
      assert.equal(man.wrapper !== undefined, wrapper);
    }
    const gens = await Promise.all(['uce', 'sld', 'esd-x', 'ca', 'flowedit'].map((m) => runCli(['generate', '--model', join(dir, m), '--prompt', 'an emoji of a kitchen knife', '--steps', '2', '--out', join(dir, `${m}.png`)])));
    gens.forEach((g) => assert.equal(g.code, 0, g.err));
    const again = await runCli(['baseline', 'esd-x', '--model', base, '--concept', 'kitchen knife', ...quick, '--out', join(dir, 'esd-x-2')]);
    assert.equal(again.code, 0, again.err);
    assert.deepEqual(readFileSync(join(dir, 'esd-x-2', 'transformer.safetensors')), readFileSync(join(dir, 'esd-x', 'transformer.safetensors')));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('baseline with several comma-separated concepts erases them together (SLD and UCE)', async () => {
  await useBackend();
  const dir = mkdtempSync(join(tmpdir(), 'mce-baseline-multi-'));
  try {
    const base = join(dir, 'base');
    await writeTinyFluxBundle(base, ['an emoji of a kitchen knife', 'kitchen knife', 'spoon', 'dagger', 'pen']);
    const runs = await Promise.all(['sld', 'uce'].map((m) => runCli(['baseline', m, '--model', base, '--concept', 'kitchen knife, dagger', '--steps', '2', '--out', join(dir, m)])));
    runs.forEach((r) => assert.equal(r.code, 0, r.err));
    const sld = JSON.parse(readFileSync(join(dir, 'sld', 'summary.json'), 'utf8')) as { concept: string; settings: { safety_concept: string } };
    assert.equal(sld.concept, 'kitchen knife, dagger');
    assert.equal(sld.settings.safety_concept, 'kitchen knife, dagger');
    const uce = JSON.parse(readFileSync(join(dir, 'uce', 'summary.json'), 'utf8')) as { changed: { params: number }; settings: { texts: { erase: string[]; guide: string[] } } };
    assert.deepEqual(uce.settings.texts.erase, ['kitchen knife', 'dagger']);
    assert.deepEqual(uce.settings.texts.guide, ['spoon', 'pen']);
    assert.ok(uce.changed.params > 0);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('baseline on an sd-emoji-format bundle: UCE, ESD-x, CA and SLD write loadable bundles; FlowEdit refuses in one line', async () => {
  await useBackend();
  const dir = mkdtempSync(join(tmpdir(), 'mce-baseline-sd-'));
  try {
    const base = join(dir, 'base');
    await writeTinySdBundle(base, ['an emoji of a kitchen knife', 'kitchen knife', 'spoon', 'dagger']);
    const quick = ['--iters', '3', '--steps', '2', '--prompts', '2'];
    const methods = ['uce', 'esd-x', 'ca', 'sld'];
    const runs = await Promise.all(methods.map((m) => runCli(['baseline', m, '--model', base, '--concept', 'kitchen knife', ...quick, '--out', join(dir, m)])));
    runs.forEach((r, i) => assert.equal(r.code, 0, `${methods[i]}: ${r.err}`));
    for (const m of methods) {
      const s = JSON.parse(readFileSync(join(dir, m, 'summary.json'), 'utf8')) as { changed: { params: number } };
      assert.equal(s.changed.params > 0, m !== 'sld', m);
    }
    const uce = JSON.parse(readFileSync(join(dir, 'uce', 'summary.json'), 'utf8')) as { settings: { sites: { weight: string }[] } };
    assert.ok(uce.settings.sites.length > 0 && uce.settings.sites.every((s) => /attn2\.to_[kv]\.weight$/.test(s.weight)));
    const gens = await Promise.all(methods.map((m) => runCli(['generate', '--model', join(dir, m), '--prompt', 'an emoji of a kitchen knife', '--steps', '2', '--out', join(dir, `${m}.png`)])));
    gens.forEach((g, i) => assert.equal(g.code, 0, `${methods[i]}: ${g.err}`));
    const fe = await runCli(['baseline', 'flowedit', '--model', base, '--concept', 'kitchen knife', '--out', join(dir, 'fe')]);
    assert.equal(fe.code, 1);
    assert.match(fe.err, /^mce: flowedit: FlowEdit edits along a flow: FLUX models only/);
    assert.equal(fe.err.trim().split('\n').length, 1);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
