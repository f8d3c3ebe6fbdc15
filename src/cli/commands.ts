// The command table. One file per command; add a line here for each. Commands load lazily, so
// `mce inspect` does not pay for loading tfjs and the models that other commands need.
import type { Command } from './command.js';

export interface CommandEntry {
  name: string;
  load(): Promise<Command>;
}

export const commands: CommandEntry[] = [
  { name: 'inspect', load: async () => (await import('./inspect.js')).inspect },
  { name: 'bench', load: async () => (await import('./bench.js')).benchCommand },
  { name: 'generate', load: async () => (await import('./generate.js')).generateCommand },
  { name: 'train', load: async () => (await import('./train.js')).trainCommand },
  { name: 'detect', load: async () => (await import('./detect.js')).detectCommand },
  { name: 'concepts', load: async () => (await import('./concepts.js')).conceptsCommand },
  { name: 'erase', load: async () => (await import('./erase.js')).eraseCommand },
  { name: 'apply-masks', load: async () => (await import('./apply-masks.js')).applyMasksCommand },
  { name: 'merge-masks', load: async () => (await import('./merge-masks.js')).mergeMasksCommand },
  { name: 'eval', load: async () => (await import('./eval.js')).evalCommand },
  { name: 'baseline', load: async () => (await import('./baseline.js')).baselineCommand },
  { name: 'attack', load: async () => (await import('./attack.js')).attackCommand },
  { name: 'serve', load: async () => (await import('./serve.js')).serveCommand },
  { name: 'report', load: async () => (await import('./report.js')).reportCommand },
];
