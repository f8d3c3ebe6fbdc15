import { test } from 'node:test';
import assert from 'node:assert/strict';
import { commands } from '../../src/cli/commands.js';
import { runCli } from './run.js';

// Each case runs the CLI as a real process, all started at once (start-up dominates).
const runs = {
  none: runCli([]),
  help: runCli(['--help']),
  unknown: runCli(['frobnicate']),
  helps: Promise.all(commands.map((c) => runCli([c.name, '--help']))),
  badFlag: runCli(['inspect', 'x.safetensors', '--no-such-flag']),
};

test('no command prints usage with exit 2; --help lists every command, exit 0', async () => {
  const none = await runs.none;
  assert.equal(none.code, 2);
  assert.match(none.out, /usage: mce <command>/);
  const help = await runs.help;
  assert.equal(help.code, 0);
  for (const c of commands) assert.match(help.out, new RegExp(`^  ${c.name} +\\S`, 'm'));
});

test('an unknown command is a usage error in one line', async () => {
  const r = await runs.unknown;
  assert.equal(r.code, 2);
  assert.match(r.err, /^mce: unknown command 'frobnicate'/);
  assert.equal(r.err.trim().split('\n').length, 1);
});

test('an unknown flag is a usage error in one line', async () => {
  const r = await runs.badFlag;
  assert.equal(r.code, 2);
  assert.match(r.err, /^mce inspect: Unknown option '--no-such-flag'/);
  assert.equal(r.err.trim().split('\n').length, 1);
});

test('every command loads under its own name, and its help lists every flag with its default', async () => {
  const helps = await runs.helps;
  for (const [i, entry] of commands.entries()) {
    const cmd = await entry.load();
    assert.equal(cmd.name, entry.name);
    const r = helps[i]!;
    assert.equal(r.code, 0, r.err);
    for (const [flag, spec] of Object.entries(cmd.flags)) {
      assert.ok(r.out.includes(`--${flag}`), `${entry.name} --help lists --${flag}`);
      if (spec.default !== undefined) assert.ok(r.out.includes(`(default: ${String(spec.default)})`), `${entry.name} --${flag} default`);
    }
  }
});
