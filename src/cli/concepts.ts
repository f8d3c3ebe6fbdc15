// mce concepts [--json] [--category C]: the emoji-world catalogue, the names `mce detect` prints and
// prompts use. With --json, one line per concept: {"name", "category", "vendors", "emoji", "synonyms"}.
// --targets lists the erasure targets instead (`mce erase --concept` names), with --json
// {"name", "kind", "category", "neutral", "members", "neighbours"}.
import { UsageError, type Command } from './command.js';
import { CATEGORIES, loadCatalogue, nearestNames, type Category } from '../world/catalogue.js';
import { erasureTargets } from '../world/targets.js';

export const conceptsCommand: Command = {
  name: 'concepts',
  summary: 'list the emoji-world concepts (name, category, vendors)',
  flags: {
    json: { type: 'boolean', help: 'one JSON line per concept' },
    category: { type: 'string', help: `only this category (${Object.keys(CATEGORIES).join(', ')})` },
    targets: { type: 'boolean', help: 'list the erasure targets instead (the names `mce erase --concept` takes)' },
  },
  async run(args, flags) {
    if (args.length) throw new UsageError('mce concepts: takes no arguments');
    if (flags['targets'] === true) return listTargets(flags['json'] === true);
    const cat = loadCatalogue();
    const want = flags['category'];
    if (typeof want === 'string' && !(want in CATEGORIES)) {
      const near = nearestNames(want, Object.keys(CATEGORIES).map((name) => ({ name })), 1, 0.5);
      const hint = near.length ? `; did you mean '${near[0]}'?` : '';
      throw new UsageError(`mce concepts: unknown category '${want}'${hint} (known: ${Object.keys(CATEGORIES).join(', ')})`);
    }
    const list = cat.concepts.filter((c) => typeof want !== 'string' || c.category === (want as Category));
    const out: string[] = [];
    if (flags['json'] === true) {
      for (const c of list) out.push(JSON.stringify({ name: c.name, category: c.category, vendors: c.vendors, emoji: c.emoji, synonyms: c.synonyms }));
    } else {
      const w = Math.max(...list.map((c) => c.name.length), 4);
      const wc = Math.max(...list.map((c) => c.category.length), 8);
      out.push(`${'name'.padEnd(w)}  ${'category'.padEnd(wc)}  vendors`);
      for (const c of list) out.push(`${c.name.padEnd(w)}  ${c.category.padEnd(wc)}  ${c.vendors.join(',')}`);
      out.push(`${list.length} concepts`);
    }
    process.stdout.write(out.join('\n') + '\n');
    return 0;
  },
};

function listTargets(json: boolean): number {
  const all = erasureTargets();
  const out: string[] = [];
  if (json) {
    for (const t of all) out.push(JSON.stringify({ name: t.name, kind: t.kind, category: t.category, neutral: t.neutral, members: t.members, neighbours: t.neighbours }));
  } else {
    const w = Math.max(...all.map((t) => t.name.length), 4);
    const wc = Math.max(...all.map((t) => t.category.length), 8);
    out.push(`${'name'.padEnd(w)}  ${'category'.padEnd(wc)}  neutral`);
    for (const t of all) out.push(`${t.name.padEnd(w)}  ${t.category.padEnd(wc)}  ${t.neutral ? `"${t.neutral}"` : '(the prompt without the style phrase)'}`);
    out.push(`${all.length} erasure targets (mce erase --concept NAME)`);
  }
  process.stdout.write(out.join('\n') + '\n');
  return 0;
}
