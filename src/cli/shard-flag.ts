// `--shard I/N` as every scale-out command takes it: 1-based on the command line (Slurm array and
// GNU parallel indices), 0-based inside.
import { UsageError } from './command.js';

/** Parse --shard I/N (1 <= I <= N); null when the flag is absent. */
export function parseShard(command: string, raw: unknown): { i: number; n: number } | null {
  if (raw === undefined) return null;
  const m = /^(\d+)\/(\d+)$/.exec(String(raw));
  if (!m || Number(m[1]) < 1 || Number(m[1]) > Number(m[2])) throw new UsageError(`${command}: --shard must be I/N with 1 <= I <= N, got '${String(raw)}'`);
  return { i: Number(m[1]) - 1, n: Number(m[2]) };
}
