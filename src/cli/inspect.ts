// mce inspect FILE.safetensors: what a checkpoint holds (names, dtypes, shapes, totals, metadata),
// read from the header alone, so it is instant even on a 24 GB file.
import { UsageError, UserError, type Command } from './command.js';
import { SafetensorsError, SafetensorsFile, summarizeTensors } from '../io/safetensors.js';

/** 1234567 -> "1.23M" (parameter counts). */
export function humanCount(n: number): string {
  const units: [number, string][] = [[1e12, 'T'], [1e9, 'B'], [1e6, 'M'], [1e3, 'K']];
  for (const [size, u] of units) if (n >= size) return `${(n / size).toFixed(2)}${u}`;
  return String(n);
}

/** 3735552 -> "3.56 MiB". */
export function humanBytes(n: number): string {
  const units = ['KiB', 'MiB', 'GiB', 'TiB'];
  if (n < 1024) return `${n} B`;
  let v = n;
  let i = -1;
  while (v >= 1024 && i < units.length - 1) { v /= 1024; i++; }
  return `${v.toFixed(2)} ${units[i]}`;
}

// Metadata values can be whole training configs or UI workflows: keep the table to one line each
// (--json prints them in full).
function shorten(v: string, max = 200): string {
  const flat = v.replace(/\s*\n\s*/g, ' ');
  return flat.length <= max ? flat : `${flat.slice(0, max)}... (${v.length} chars, see --json)`;
}

const group = (n: number): string => n.toLocaleString('en-US');

export const inspect: Command = {
  name: 'inspect',
  summary: 'list the tensors (name, dtype, shape), totals and metadata of a safetensors file',
  args: 'FILE.safetensors',
  flags: {
    json: { type: 'boolean', help: 'print JSON instead of a table', default: false },
  },
  async run(args, flags) {
    if (args.length !== 1) throw new UsageError(`mce inspect: expected one FILE.safetensors, got ${args.length} arguments`);
    const path = args[0]!;
    let file: SafetensorsFile;
    try {
      file = await SafetensorsFile.open(path);
    } catch (e) {
      if (e instanceof SafetensorsError) throw new UserError(e.message);
      throw e;
    }
    await file.close(); // everything we print is in the header
    const { tensors, totalParams, totalBytes } = summarizeTensors(file);
    const metadata = { ...file.metadata };

    if (flags['json']) {
      process.stdout.write(JSON.stringify({ file: path, tensors, totalParams, totalBytes, metadata }, null, 2) + '\n');
      return 0;
    }
    const rows = [['name', 'dtype', 'shape', 'params'], ...tensors.map((t) => [t.name, t.dtype, `[${t.shape.join(', ')}]`, group(t.params)])];
    const widths = rows[0]!.map((_, c) => Math.max(...rows.map((r) => r[c]!.length)));
    const line = (r: string[]): string => r.map((cell, c) => (c === 3 ? cell.padStart(widths[c]!) : cell.padEnd(widths[c]!))).join('  ').trimEnd();
    const out = [`${path}: ${tensors.length} tensors`, '', ...rows.map(line), ''];
    out.push(`total: ${group(totalParams)} params (${humanCount(totalParams)}), ${group(totalBytes)} bytes (${humanBytes(totalBytes)})`);
    const keys = Object.keys(metadata).sort();
    out.push(keys.length ? 'metadata:' : 'metadata: (none)');
    for (const k of keys) out.push(`  ${k}: ${shorten(metadata[k]!)}`);
    process.stdout.write(out.join('\n') + '\n');
    return 0;
  },
};
