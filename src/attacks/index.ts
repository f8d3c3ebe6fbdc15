// The attacks by name. Each module exports one Attack; they load lazily, so a run that uses two
// attacks does not load the others.
import type { Attack, AttackName } from './types.js';

export { ATTACK_NAMES, type Attack, type AttackName, type AttackResult, type AttackSubject, type AttackOptions } from './types.js';

/** Module file and export name of each attack. */
const MODULES: Record<AttackName, [file: string, exported: string]> = {
  'ring-a-bell': ['ring-a-bell', 'ringABell'],
  p4d: ['p4d', 'p4d'],
  unlearndiff: ['unlearndiff', 'unlearndiff'],
  mma: ['mma', 'mma'],
  inversion: ['inversion', 'inversion'],
  edit: ['edit', 'edit'],
  i2p: ['i2p', 'i2p'],
};

export async function loadAttack(name: AttackName): Promise<Attack> {
  const [file, exported] = MODULES[name];
  const mod = (await import(`./${file}.js`)) as Record<string, unknown>;
  const attack = mod[exported];
  if (typeof attack !== 'function') throw new Error(`attacks/${file}: no exported attack '${exported}'`);
  return attack as Attack;
}
