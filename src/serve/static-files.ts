// Files under one folder, by URL path, and never anything outside it: the built page (web/dist)
// and the PNGs of a run folder. `..`, encoded `%2e%2e`, backslashes, NUL bytes and symlinks that
// point out of the folder are all refused.
import { realpathSync, statSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { extname, resolve, sep } from 'node:path';
import { HttpError } from './http.js';

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.png': 'image/png',
  '.svg': 'image/svg+xml',
  '.json': 'application/json; charset=utf-8',
  '.ico': 'image/x-icon',
};

export function contentType(path: string): string {
  return TYPES[extname(path).toLowerCase()] ?? 'application/octet-stream';
}

/**
 * The real path of `urlPath` inside `root`, or an HttpError: 400 for a malformed path, 403 for one
 * that leaves `root` (lexically or through a symlink), 404 for one that is not a file.
 */
export function resolveInside(root: string, urlPath: string): string {
  let decoded: string;
  try {
    decoded = decodeURIComponent(urlPath);
  } catch {
    throw new HttpError(400, 'malformed path');
  }
  if (decoded.includes('\0') || decoded.includes('\\')) throw new HttpError(400, 'malformed path');
  const segments = decoded.split('/');
  if (segments.some((s) => s === '..')) throw new HttpError(403, 'path leaves the served folder');
  const base = realpathSync(root);
  const candidate = resolve(base, '.' + (decoded.startsWith('/') ? decoded : '/' + decoded));
  if (candidate !== base && !candidate.startsWith(base + sep)) throw new HttpError(403, 'path leaves the served folder');
  let real: string;
  try {
    real = realpathSync(candidate);
  } catch {
    throw new HttpError(404, 'not found');
  }
  // A symlink inside the folder may still point elsewhere.
  if (real !== base && !real.startsWith(base + sep)) throw new HttpError(403, 'path leaves the served folder');
  if (!statSync(real).isFile()) throw new HttpError(404, 'not found');
  return real;
}

/** The file's bytes and content type, for `urlPath` under `root`. */
export async function readInside(root: string, urlPath: string): Promise<{ data: Buffer; type: string }> {
  const path = resolveInside(root, urlPath);
  return { data: await readFile(path), type: contentType(path) };
}
