// What a CLI command is: a name, its flags (each with a default and a help line), and a run
// function. main.ts parses flags from this description, so `--help` always lists every flag.

/** 'list': a string flag that may be repeated and may hold comma-separated items (`--concept a --concept b,c`). */
export type FlagType = 'string' | 'number' | 'boolean' | 'list';

export interface FlagSpec {
  type: FlagType;
  help: string;
  default?: string | number | boolean;
  /** The command cannot run without it: `--help` says so, and leaving it out is a usage error. */
  required?: boolean;
  short?: string;
}

export type FlagValues = Record<string, string | number | boolean | string[] | undefined>;

export interface Command {
  name: string;
  summary: string;
  /** Positional arguments, for the usage line, e.g. 'FILE.safetensors'. */
  args?: string;
  flags: Record<string, FlagSpec>;
  run(args: string[], flags: FlagValues): Promise<number>;
}

/** A mistake in how the command was called: printed as one line, exit code 2. */
export class UsageError extends Error {}

/** A failure the user can fix (bad file, unknown concept): printed as one line, exit code 1. */
export class UserError extends Error {}

/**
 * Readers of a command's numeric flags, each undefined when the flag is absent and a one-line
 * usage error when it is out of range: `mce erase: --steps must be an integer in [1, 100], got 0`.
 */
export function numericFlags(command: string, flags: FlagValues): {
  int(name: string, lo: number, hi: number): number | undefined;
  num(name: string, lo: number, hi: number): number | undefined;
} {
  return {
    int(name, lo, hi) {
      const v = flags[name];
      if (v === undefined) return undefined;
      if (typeof v !== 'number' || !Number.isInteger(v) || v < lo || v > hi) throw new UsageError(`${command}: --${name} must be an integer in [${lo}, ${hi}], got ${String(v)}`);
      return v;
    },
    num(name, lo, hi) {
      const v = flags[name];
      if (v === undefined) return undefined;
      if (typeof v !== 'number' || !(v >= lo && v <= hi)) throw new UsageError(`${command}: --${name} must be in [${lo}, ${hi}], got ${String(v)}`);
      return v;
    },
  };
}

/** This process's command line as one could type it again: `mce eval quality --out 'a b'`. */
export function typedCommand(argv: readonly string[] = process.argv.slice(2)): string {
  const quote = (a: string) => (/^[\w@%+=:,./-]+$/.test(a) ? a : `'${a.replace(/'/g, `'\\''`)}'`);
  return ['mce', ...argv.map(quote)].join(' ');
}
