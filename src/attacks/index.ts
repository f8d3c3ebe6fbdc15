// The attacks by name. Each module exports one Attack; they load lazily, so a run that uses two
// attacks does not load the others.
import type { Attack, AttackName } from './types.js';

export { ATTACK_NAMES, type Attack, type AttackName, type AttackResult, type AttackSubject, type AttackOptions } from './types.js';

const LOADERS: Record<AttackName, () => Promise<Attack>> = {
  'ring-a-bell': async () => (await import('./ring-a-bell.js')).ringABell,
  p4d: async () => (await import('./p4d.js')).p4d,
  unlearndiff: async () => (await import('./unlearndiff.js')).unlearndiff,
  mma: async () => (await import('./mma.js')).mma,
  inversion: async () => (await import('./inversion.js')).inversion,
  edit: async () => (await import('./edit.js')).edit,
  i2p: async () => (await import('./i2p.js')).i2p,
};

export function loadAttack(name: AttackName): Promise<Attack> {
  return LOADERS[name]();
}
