// mce command-line entry: dispatch, flag parsing and the error policy.
// Exit codes: 0 ok, 1 failure, 2 usage error. Errors print one line; --debug adds the stack.
import { parseArgs } from 'node:util';
import { UsageError, UserError, type Command, type FlagSpec, type FlagValues } from './command.js';
import { commands } from './commands.js';
import { editDistance } from '../world/util.js';

async function usage(): Promise<string> {
  const all = await Promise.all(commands.map((c) => c.load()));
  const width = Math.max(...all.map((c) => c.name.length));
  const lines = ['usage: mce <command> [flags]', '', 'commands:'];
  for (const c of all) lines.push(`  ${c.name.padEnd(width)}  ${c.summary}`);
  lines.push('', 'Run `mce <command> --help` (or `mce help <command>`) for its flags and their defaults.');
  lines.push('Global: --debug prints stack traces. Exit codes: 0 ok, 1 failure, 2 usage error.');
  return lines.join('\n');
}

/** The name in `names` nearest to `typo` by edit distance, if it is near (a third of its length, at least 2). */
function nearest(typo: string, names: readonly string[]): string | undefined {
  let best: string | undefined;
  let bestD = Infinity;
  for (const n of names) {
    const d = editDistance(typo, n);
    if (d < bestD) [best, bestD] = [n, d];
  }
  return best !== undefined && bestD <= Math.max(2, Math.floor(best.length / 3)) ? best : undefined;
}

/** What a flag's help line says about its default, so that every flag states one. */
function flagDefault(f: FlagSpec): string {
  if (f.default !== undefined) return ` (default: ${String(f.default)})`;
  if (f.required) return ' (required)';
  if (f.type === 'boolean') return ' (default: off)';
  // Some help lines state a computed default themselves ("default: the model's").
  return /\bdefault\b/.test(f.help) ? '' : ' (no default)';
}

export function commandHelp(c: Command): string {
  const lines = [`usage: mce ${c.name}${c.args ? ' ' + c.args : ''} [flags]`, '', c.summary, '', 'flags:'];
  const rows = Object.entries(c.flags).map(([name, f]) => [`--${name}${f.type === 'boolean' ? '' : f.type === 'list' ? ' <text>...' : ` <${f.type}>`}`, f.help + flagDefault(f)] as const);
  rows.push(['--help', 'show this help'], ['--debug', 'print stack traces on errors']);
  const width = Math.max(...rows.map((r) => r[0].length));
  for (const [h, d] of rows) lines.push(`  ${h.padEnd(width)}  ${d}`);
  return lines.join('\n');
}

export function parseFlags(c: Command, argv: string[]): { args: string[]; flags: FlagValues } {
  // Every string flag is parsed as repeatable, so that a repeated one-value flag is an error
  // instead of the last one silently winning.
  const options: Record<string, { type: 'string' | 'boolean'; multiple?: boolean; short?: string }> = {
    help: { type: 'boolean' },
    debug: { type: 'boolean' },
  };
  for (const [name, f] of Object.entries(c.flags)) {
    options[name] = f.type === 'boolean' ? { type: 'boolean' } : { type: 'string', multiple: true };
    if (f.short) options[name]!.short = f.short;
  }
  let parsed;
  try {
    parsed = parseArgs({ args: argv, options, allowPositionals: true, strict: true });
  } catch (e) {
    const msg = (e as Error).message.split('\n')[0]!;
    // parseArgs refuses `--reps -1` (the value looks like a flag); say how to write it.
    const ambiguous = /^Option '(--[\w-]+)' argument is ambiguous/.exec(msg);
    if (ambiguous) {
      const flag = ambiguous[1]!;
      const value = argv[argv.indexOf(flag) + 1] ?? '';
      throw new UsageError(`mce ${c.name}: ${flag} ${value}: a value starting with '-' must be written ${flag}=${value}`);
    }
    // An unknown flag (parseArgs adds advice about '--' that rarely applies): name the nearest real one.
    const unknown = /^Unknown option '--([^']+)'/.exec(msg);
    if (unknown) {
      const near = nearest(unknown[1]!, Object.keys(options));
      throw new UsageError(`mce ${c.name}: Unknown option '--${unknown[1]}'. ${near ? `Did you mean --${near}?` : `\`mce ${c.name} --help\` lists the flags.`}`);
    }
    throw new UsageError(`mce ${c.name}: ${msg}`);
  }
  const flags: FlagValues = { help: parsed.values['help'] as boolean | undefined };
  for (const [name, f] of Object.entries(c.flags)) {
    const given = parsed.values[name];
    if (given === undefined) {
      if (f.required && !parsed.values['help']) throw new UsageError(`mce ${c.name}: --${name} is required`);
      flags[name] = f.default;
      continue;
    }
    if (f.type === 'list') {
      const items = (given as string[]).flatMap((v) => v.split(',')).map((v) => v.trim()).filter(Boolean);
      if (!items.length) throw new UsageError(`mce ${c.name}: --${name} needs a value`);
      flags[name] = items;
      continue;
    }
    if (Array.isArray(given) && given.length > 1) throw new UsageError(`mce ${c.name}: --${name} given ${given.length} times (${given.map((v) => `'${v}'`).join(', ')}); give it once`);
    const raw = Array.isArray(given) ? given[0]! : given;
    if (f.type === 'number') {
      const n = Number(raw);
      if (raw === '' || !Number.isFinite(n)) throw new UsageError(`mce ${c.name}: --${name} must be a number, got '${String(raw)}'`);
      flags[name] = n;
    } else {
      flags[name] = raw as string | boolean;
    }
  }
  return { args: parsed.positionals, flags };
}

/** Run the CLI; returns the exit code. */
export async function main(argv: string[]): Promise<number> {
  const debug = argv.includes('--debug');
  const [name, ...rest] = argv.filter((a) => a !== '--debug');
  if (!name || name === '--help' || name === '-h' || name === 'help') {
    // `mce help COMMAND` is `mce COMMAND --help`.
    if (name === 'help' && rest.length) return main([rest[0]!, '--help', ...(debug ? ['--debug'] : [])]);
    process.stdout.write((await usage()) + '\n');
    return name ? 0 : 2;
  }
  const entry = commands.find((c) => c.name === name);
  if (!entry) {
    const near = nearest(name, commands.map((c) => c.name));
    process.stderr.write(`mce: unknown command '${name}'.${near ? ` Did you mean '${near}'?` : ''} Commands: ${commands.map((c) => c.name).join(', ')}\n`);
    return 2;
  }
  try {
    const cmd = await entry.load();
    const { args, flags } = parseFlags(cmd, rest);
    if (flags['help']) {
      process.stdout.write(commandHelp(cmd) + '\n');
      return 0;
    }
    return await cmd.run(args, flags);
  } catch (e) {
    const err = e as Error;
    if (debug) process.stderr.write((err.stack ?? String(err)) + '\n');
    else process.stderr.write(`${err instanceof UsageError ? '' : 'mce: '}${err.message.split('\n')[0]}\n`);
    return e instanceof UsageError ? 2 : 1;
  }
}

export { UsageError, UserError };
