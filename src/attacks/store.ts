// Saving what an attack found: one JSON file per (attack, target, attacked model) under a folder,
// named by the model hash's first 12 hex digits, holding the result with every adversarial prompt
// and the full hash of the model it was found on. A reader can refuse prompts found on another
// model (loadAdversarialPrompts checks the hash).
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { writeFileAtomicSync } from '../io/atomic.js';
import type { AttackName, AttackResult } from './types.js';

export function attackFile(dir: string, attack: AttackName, target: string, modelHash: string): string {
  const slug = target.replace(/[^a-z0-9]+/gi, '-').replace(/^-|-$/g, '').toLowerCase();
  return join(dir, `${attack}--${slug}--${modelHash.slice(0, 12)}.json`);
}

export function saveAttackResult(dir: string, r: AttackResult): string {
  const file = attackFile(dir, r.attack, r.target, r.model.sha256);
  mkdirSync(dir, { recursive: true });
  writeFileAtomicSync(file, JSON.stringify(r, null, 2) + '\n');
  return file;
}

/** A saved result, or null when none was saved for this model; throws when the file's hash differs. */
export function loadAttackResult(dir: string, attack: AttackName, target: string, modelHash: string): AttackResult | null {
  const file = attackFile(dir, attack, target, modelHash);
  if (!existsSync(file)) return null;
  const r = JSON.parse(readFileSync(file, 'utf8')) as AttackResult;
  if (r.model.sha256 !== modelHash) throw new Error(`${file}: prompts were found on model ${r.model.sha256.slice(0, 12)}, not ${modelHash.slice(0, 12)}`);
  return r;
}
