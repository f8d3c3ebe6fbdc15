// mce inspect FILE.safetensors: what a checkpoint holds (names, dtypes, shapes, totals, metadata),
// read from the header alone, so it is instant even on a 24 GB file.
import { UsageError, UserError, type Command } from './command.js';
import { SafetensorsError, SafetensorsFile, summarizeTensors } from '../io/safetensors.js';
import { recognizeFlux, type FluxRecognition } from '../io/checkpoint.js';
import { FLUX_PRESETS } from '../models/flux/params.js';

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

/** What the header says about a FLUX transformer in it (null when the names are not FLUX names). */
function fluxSummary(file: SafetensorsFile): FluxRecognition | { error: string } | null {
  if (loraSummary(file)) return null; // adapter weights, not a transformer
  try {
    return recognizeFlux(file.entries, FLUX_PRESETS);
  } catch (e) {
    return { error: (e as Error).message };
  }
}

/** A LoRA in diffusers/peft names: how many adapted modules, at which ranks. */
function loraSummary(file: SafetensorsFile): { modules: number; ranks: number[] } | null {
  const a = file.names.filter((n) => n.endsWith('.lora_A.weight'));
  if (!a.length) return null;
  const ranks = [...new Set(a.map((n) => file.entries.get(n)!.shape[0]!))].sort((x, y) => x - y);
  return { modules: a.length, ranks };
}

function describeFlux(f: FluxRecognition | { error: string }): string {
  if ('error' in f) return `FLUX transformer names, but not a readable config: ${f.error}`;
  const l = f.layout;
  const dtypes = Object.entries(f.dtypes).map(([d, n]) => `${n} ${d}`).join(', ');
  return [
    `FLUX transformer (${f.naming} names${f.prefix ? `, prefix '${f.prefix}'` : ''}): ${f.preset ?? 'custom config'}; ${f.tensors} tensors (${dtypes})`,
    `  hidden ${l.hidden_size}, heads ${l.num_heads}, double blocks ${l.depth}, single blocks ${l.depth_single_blocks}, ` +
      `mlp_ratio ${l.mlp_ratio}, in ${l.in_channels}, out ${l.out_channels}, vec ${l.vec_in_dim}, context ${l.context_in_dim}, ` +
      `qkv_bias ${l.qkv_bias}, guidance_embed ${l.guidance_embed}`,
  ].join('\n');
}

export const inspect: Command = {
  name: 'inspect',
  summary: 'list the tensors (name, dtype, shape), totals and metadata of a safetensors file; name a FLUX checkpoint\'s preset and params',
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
    const flux = fluxSummary(file);
    const lora = loraSummary(file);

    if (flags['json']) {
      process.stdout.write(JSON.stringify({ file: path, tensors, totalParams, totalBytes, metadata, flux, lora }, null, 2) + '\n');
      return 0;
    }
    const rows = [['name', 'dtype', 'shape', 'params'], ...tensors.map((t) => [t.name, t.dtype, `[${t.shape.join(', ')}]`, group(t.params)])];
    const widths = rows[0]!.map((_, c) => Math.max(...rows.map((r) => r[c]!.length)));
    const line = (r: string[]): string => r.map((cell, c) => (c === 3 ? cell.padStart(widths[c]!) : cell.padEnd(widths[c]!))).join('  ').trimEnd();
    const out = [`${path}: ${tensors.length} tensors`, '', ...rows.map(line), ''];
    if (flux) out.push(describeFlux(flux));
    if (lora) out.push(`LoRA (diffusers/peft names): ${lora.modules} modules, rank ${lora.ranks.join('/')}`);
    out.push(`total: ${group(totalParams)} params (${humanCount(totalParams)}), ${group(totalBytes)} bytes (${humanBytes(totalBytes)})`);
    const keys = Object.keys(metadata).sort();
    out.push(keys.length ? 'metadata:' : 'metadata: (none)');
    for (const k of keys) out.push(`  ${k}: ${shorten(metadata[k]!)}`);
    process.stdout.write(out.join('\n') + '\n');
    return 0;
  },
};
