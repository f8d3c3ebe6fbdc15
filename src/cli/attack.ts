// `mce attack <name>`: run one robustness attack on an erased model (a bundle from mce baseline or
// mce bench, or any model folder) for an erasure target, print the attack success rate next to the
// plain prompts' detection rate, and save what it found (JSON, with the attacked model's hash).
//
//   mce attack ring-a-bell --model runs/bench/models/flux-emoji--uce--kitchen-knife --concept "kitchen knife" --out runs/attacks
import { UsageError, UserError, type Command } from './command.js';
import { ATTACK_NAMES } from '../attacks/types.js';

export const attackCommand: Command = {
  name: 'attack',
  summary: `try to bring an erased concept back (${ATTACK_NAMES.join(', ')}); prints the attack success rate and saves the prompts found`,
  args: '<attack>',
  flags: {
    model: { type: 'string', help: 'the attacked model: an erased bundle folder (or a shipped model name)', required: true },
    original: { type: 'string', help: 'the original model the erased one came from (P4D\'s teacher, concept images)', default: 'flux-emoji' },
    concept: { type: 'string', help: 'the erasure target to bring back (mce concepts --targets)', required: true },
    budget: { type: 'string', help: 'quick (seconds to a minute) | full (the published budget scaled to this machine)', default: 'quick' },
    seed: { type: 'number', help: 'seed of every random choice', default: 0 },
    out: { type: 'string', help: 'folder for the result JSON (prompts found, ASR, settings, model hash)', default: 'runs/attacks' },
    json: { type: 'boolean', help: 'print the result as one JSON line' },
  },
  async run(args, flags) {
    const name = args[0];
    if (!name || args.length > 1) throw new UsageError(`mce attack: give one attack: ${ATTACK_NAMES.join(', ')}`);
    if (!(ATTACK_NAMES as readonly string[]).includes(name)) throw new UsageError(`mce attack: unknown attack '${name}' (known: ${ATTACK_NAMES.join(', ')})`);
    const budget = flags['budget'];
    if (budget !== 'quick' && budget !== 'full') throw new UsageError(`mce attack: --budget must be quick or full, got '${String(budget)}'`);
    const seed = flags['seed'];
    if (typeof seed !== 'number' || !Number.isInteger(seed) || seed < 0) throw new UsageError(`mce attack: --seed must be a non-negative integer, got ${String(seed)}`);
    const { erasureTarget } = await import('../world/targets.js');
    const { UnknownConceptError } = await import('../world/catalogue.js');
    let target;
    try {
      target = erasureTarget(String(flags['concept']));
    } catch (e) {
      if (e instanceof UnknownConceptError) throw new UserError(e.message);
      throw e;
    }
    const { useBackend } = await import('../engine/backend.js');
    const { ModelLoadError } = await import('../generate/bundle.js');
    const { loadAttackSubject } = await import('../attacks/subject.js');
    const { loadAttack } = await import('../attacks/index.js');
    const { saveAttackResult } = await import('../attacks/store.js');
    await useBackend();
    let subject;
    try {
      subject = await loadAttackSubject(String(flags['model']), String(flags['original']));
    } catch (e) {
      if (e instanceof ModelLoadError) throw new UserError(e.message);
      throw e;
    }
    try {
      const attack = await loadAttack(name as (typeof ATTACK_NAMES)[number]);
      const r = await attack(subject, target, { seed, budget, progress: true });
      const file = saveAttackResult(String(flags['out']), r);
      if (flags['json']) process.stdout.write(JSON.stringify({ ...r, file }) + '\n');
      else {
        const pct = (x: number): string => `${(100 * x).toFixed(1)}%`;
        process.stdout.write(`${name} on ${r.model.name} (${r.model.sha256.slice(0, 12)}) for "${r.target}": ASR ${pct(r.asr)} over ${r.generations} generations (plain prompts: ${pct(r.baseline)}), ${r.seconds.toFixed(1)} s\n`);
        for (const p of r.prompts.slice(0, 5)) process.stdout.write(`  ${pct(p.detected).padStart(6)}  ${p.prompt}\n`);
        process.stdout.write(`saved ${file}\n`);
      }
      return 0;
    } finally {
      subject.dispose();
    }
  },
};
