import { test } from 'node:test';
import assert from 'node:assert/strict';
import { commands } from '../../src/cli/commands.js';
import { commandHelp, parseFlags, UsageError } from '../../src/cli/main.js';
import type { Command } from '../../src/cli/command.js';
import { runCli } from './run.js';

// Each case runs the CLI as a real process, all started at once (start-up dominates).
const runs = {
  none: runCli([]),
  help: runCli(['--help']),
  unknown: runCli(['frobnicate']),
  helps: Promise.all(commands.map((c) => runCli([c.name, '--help']))),
  badFlag: runCli(['inspect', 'x.safetensors', '--no-such-flag']),
  helpCmd: runCli(['help', 'generate']),
  // Exit codes: 0 ok, 1 failure (something the user can fix: a missing file, an unknown concept),
  // 2 usage error (how the command was called), for every command.
  codes: Promise.all(
    ([
      [['concepts', '--targets'], 0, /^$/],
      [['help', 'no-such-command'], 2, /^mce: unknown command 'no-such-command'/],
      [['inspect'], 2, /^mce inspect: expected one FILE\.safetensors/],
      [['inspect', '/no/such.safetensors'], 1, /^mce: \/no\/such\.safetensors: cannot open: no such file/],
      [['train'], 2, /^mce train: give one kind/],
      [['train', 'ae', '--config', '/no/such.json'], 1, /^mce: cannot read config \/no\/such\.json/],
      [['detect'], 2, /^mce detect: give one or more PNG files/],
      [['detect', '/no/such.png'], 1, /^mce: \/no\/such\.png: no such file/],
      [['concepts', 'extra'], 2, /^mce concepts: takes no arguments/],
      [['concepts', '--category', 'weapon'], 2, /^mce concepts: unknown category 'weapon'; did you mean 'weapons'\? \(known: /],
      [['erase'], 2, /^mce erase: --concept NAME is required/],
      [['erase', '--concept', 'zombi', '--out', '/tmp/mce-never'], 1, /^mce: unknown concept "zombi"; did you mean "zombie"/],
      [['erase', '--concept', 'bomb', '--out', '/tmp/mce-never', '--iters', '-3'], 2, /^mce erase: --iters -3: a value starting with '-' must be written --iters=-3/],
      [['apply-masks'], 2, /^mce apply-masks: --weights is required/],
      [['apply-masks', '--weights', '/no/w.safetensors', '--masks', '/no/m.safetensors', '--out', '/tmp/mce-never.safetensors'], 1, /^mce: \/no\/\w\.safetensors: cannot open: no such file/],
      [['generate', '--prompt', 'a cat', '--steps', 'x'], 2, /^mce generate: --steps must be a number/],
      [['bench', 'engine', '--backend', 'gpu'], 2, /^mce bench: --backend must be one of/],
      [['bench', '--models', 'flux-emojii', '--out', '/tmp/mce-never'], 1, /^mce: bench --models flux-emojii: no model at flux-emojii: .*manifest\.json not found$/m],
      // Misspelt commands and flags name the nearest real one.
      [['genrate', '--prompt', 'x'], 2, /^mce: unknown command 'genrate'\. Did you mean 'generate'\?/],
      [['erase', '--concpet', 'bomb'], 2, /^mce erase: Unknown option '--concpet'\. Did you mean --concept\?$/m],
    ] as const).map(async ([argv, code, err]) => ({ argv, code, err, r: await runCli([...argv]) })),
  ),
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
  assert.match(r.err, /^mce inspect: Unknown option '--no-such-flag'\. `mce inspect --help` lists the flags\.$/m);
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

test('every command follows the exit codes: 0 ok, 1 failure, 2 usage error, with one line on stderr', async () => {
  for (const { argv, code, err, r } of await runs.codes) {
    assert.equal(r.code, code, `mce ${argv.join(' ')}: exit ${r.code}, stderr ${r.err}`);
    assert.match(r.err, err, `mce ${argv.join(' ')}`);
    if (code !== 0) assert.equal(r.err.trim().split('\n').length, 1, `mce ${argv.join(' ')}: ${r.err}`);
  }
});

test('mce help COMMAND is mce COMMAND --help', async () => {
  const [r, helps] = [await runs.helpCmd, await runs.helps];
  assert.equal(r.code, 0);
  assert.equal(r.out, helps[commands.findIndex((c) => c.name === 'generate')]!.out);
});

const fake: Command = {
  name: 'fake',
  summary: 'a test command',
  flags: {
    weights: { type: 'string', help: 'input file', required: true },
    steps: { type: 'number', help: 'steps', default: 4 },
    cfg: { type: 'number', help: "guidance (default: the model's)" },
    name: { type: 'string', help: 'a name' },
    fast: { type: 'boolean', help: 'go fast' },
  },
  run: async () => 0,
};

test('help states a default for every flag: its value, required, off, or no default', async () => {
  const lines = commandHelp(fake).split('\n');
  const row = (flag: string): string => lines.find((l) => l.trimStart().startsWith(`--${flag} `))!;
  assert.match(row('weights'), /input file \(required\)$/);
  assert.match(row('steps'), /steps \(default: 4\)$/);
  assert.match(row('cfg'), /guidance \(default: the model's\)$/);
  assert.match(row('name'), /a name \(no default\)$/);
  assert.match(row('fast'), /go fast \(default: off\)$/);
  // The same holds for every real command's flags.
  for (const entry of commands) {
    const cmd = await entry.load();
    for (const l of commandHelp(cmd).split('\n').filter((x) => /^  --/.test(x) && !/^  --(help|debug) /.test(x))) {
      assert.match(l, /\((default: .+|required|no default)\)$|default/, `${cmd.name}: ${l}`);
    }
  }
});

test('a required flag left out is a usage error, except with --help', () => {
  assert.throws(() => parseFlags(fake, []), (e: unknown) => e instanceof UsageError && e.message === 'mce fake: --weights is required');
  assert.equal(parseFlags(fake, ['--weights', 'w']).flags['steps'], 4);
  assert.equal(parseFlags(fake, ['--help']).flags['help'], true);
});

test('a list flag may be repeated and comma-separated; a repeated one-value flag is an error, not last-wins', () => {
  const withList: Command = { ...fake, flags: { ...fake.flags, concept: { type: 'list', help: 'what to erase' } } };
  assert.deepEqual(parseFlags(withList, ['--weights', 'w', '--concept', 'kitchen knife', '--concept', 'dagger, vampire']).flags['concept'], ['kitchen knife', 'dagger', 'vampire']);
  assert.equal(parseFlags(withList, ['--weights', 'w']).flags['concept'], undefined);
  assert.throws(() => parseFlags(withList, ['--weights', 'w', '--concept', ' , ']), (e: unknown) => e instanceof UsageError && e.message === 'mce fake: --concept needs a value');
  assert.throws(
    () => parseFlags(withList, ['--weights', 'a', '--steps', '2', '--weights', 'b']),
    (e: unknown) => e instanceof UsageError && e.message === "mce fake: --weights given 2 times ('a', 'b'); give it once",
  );
  assert.match(commandHelp(withList), /--concept <text>\.\.\. +what to erase/);
});
