// What the lab server accepts: sizes and ranges of every request field, checked in one place so a
// bad request is one 4xx line and never reaches a model or a child process.
import { HttpError } from './http.js';

export const LIMITS = {
  /** Bytes of a JSON request body (the largest real one, an erase form, is a few hundred). */
  bodyBytes: 16 * 1024,
  /** Characters of a prompt: the text encoders read 16-77 tokens, so longer prompts only cost memory. */
  promptChars: 300,
  /** Sampling steps one comparison may ask for (each step decodes a trajectory frame). */
  steps: 50,
  /** Optimizer steps an erase started from the page may ask for. */
  iters: 2000,
  /** Erase runs running at once: each is a training process on the same cores. */
  eraseJobs: 1,
} as const;

/** Run folder names: one path segment, no dots or slashes to climb out of the runs folder. */
export const RUN_NAME = /^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$/;

export function asObject(body: unknown): Record<string, unknown> {
  if (typeof body !== 'object' || body === null || Array.isArray(body)) throw new HttpError(400, 'request body must be a JSON object');
  return body as Record<string, unknown>;
}

export function text(o: Record<string, unknown>, field: string, maxChars: number): string {
  const v = o[field];
  if (typeof v !== 'string' || !v.trim()) throw new HttpError(400, `${field}: a non-empty string is required`);
  if (v.length > maxChars) throw new HttpError(400, `${field}: at most ${maxChars} characters, got ${v.length}`);
  return v;
}

export function integer(o: Record<string, unknown>, field: string, lo: number, hi: number, fallback?: number): number {
  const v = o[field] ?? fallback;
  if (v === undefined) throw new HttpError(400, `${field}: an integer is required`);
  if (typeof v !== 'number' || !Number.isInteger(v) || v < lo || v > hi) throw new HttpError(400, `${field}: an integer in [${lo}, ${hi}] is required`);
  return v;
}

export function optionalInteger(o: Record<string, unknown>, field: string, lo: number, hi: number): number | undefined {
  return o[field] === undefined || o[field] === null ? undefined : integer(o, field, lo, hi);
}

export function runName(v: unknown): string {
  if (typeof v !== 'string' || !RUN_NAME.test(v)) throw new HttpError(400, `run name must match ${RUN_NAME.source}`);
  return v;
}
