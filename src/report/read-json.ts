// Reading the JSON files of a run folder for a report: a missing file is `undefined` (sections are
// optional), a broken one is a ReportError naming the file.
import { existsSync, readFileSync } from 'node:fs';
import { ReportError } from './report-error.js';

export function readJsonIfPresent(path: string): unknown {
  if (!existsSync(path)) return undefined;
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    throw new ReportError(`${path}: cannot read (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
  }
  try {
    return JSON.parse(text) as unknown;
  } catch (e) {
    throw new ReportError(`${path}: not valid JSON (${(e as Error).message})`);
  }
}

export const isRecord = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

export const isNumberArray = (v: unknown): v is number[] => Array.isArray(v) && v.every((x) => typeof x === 'number' || x === null);
