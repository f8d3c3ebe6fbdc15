// The concept catalogue of emoji-world: every emoji that at least two vendors draw (no flags,
// skin-tone variants, keycaps or hair/skin components), with a human-readable name, synonyms and
// keywords (emojilib, MIT; emojibase shortcodes and tags, MIT), the emoji itself, and a category.
//
// Vendors are joined on the Unicode code point sequence (iconify's `chars.json`, FE0F removed);
// where a vendor lacks the code point, its icon is looked up by the kebab-case of the Unicode name.
import { loadIconSet, sequenceKey, VENDORS, type Vendor } from './vendors.js';
import { editDistance, normalizeText, packageVersion, requireJson, slug, uniq } from './util.js';

/** Concept categories. Most follow the Unicode emoji subgroups; some are curated (see below). */
export type Category =
  | 'weapons'
  | 'drugs'
  | 'characters'
  | 'faces'
  | 'people'
  | 'body'
  | 'animals'
  | 'plants'
  | 'food'
  | 'drink'
  | 'kitchenware'
  | 'places'
  | 'vehicles'
  | 'nature'
  | 'activities'
  | 'clothing'
  | 'music'
  | 'objects'
  | 'tools'
  | 'medical'
  | 'symbols';

/** Every category, in display order, with a human label ("drugs" is "drugs/smoking"). */
export const CATEGORIES: Readonly<Record<Category, string>> = {
  weapons: 'weapons',
  drugs: 'drugs/smoking',
  characters: 'characters',
  faces: 'faces',
  people: 'people',
  body: 'body parts and hands',
  animals: 'animals',
  plants: 'plants',
  food: 'food',
  drink: 'drink',
  kitchenware: 'kitchenware',
  places: 'places and buildings',
  vehicles: 'vehicles',
  nature: 'sky, weather and time',
  activities: 'activities, sports, games and toys',
  clothing: 'clothing',
  music: 'music and sound',
  objects: 'objects',
  tools: 'tools and science',
  medical: 'medical',
  symbols: 'symbols',
};

/** One concept of the world. */
export interface Concept {
  /** Human-readable, unique, lowercase ASCII name: "kitchen knife". Use it in prompts and APIs. */
  name: string;
  /** kebab-case id: "kitchen-knife". */
  id: string;
  /** The emoji itself, fully qualified: "🔪". */
  emoji: string;
  /** The code point sequence as iconify keys it: lowercase hex joined by '-', FE0F removed: "1f52a". */
  codepoint: string;
  /** The Unicode CLDR name as emojibase spells it ("kitchen knife", "man: red hair"). */
  unicodeName: string;
  category: Category;
  /** Unicode emoji group and subgroup ("food-drink", "dishware"); "unknown" when emojibase lacks it. */
  group: string;
  subgroup: string;
  /** Unicode emoji version that introduced it. */
  emojiVersion: number;
  /** Other names for the same thing (the name excluded), from emojilib, emojibase shortcodes and a curated list. */
  synonyms: readonly string[];
  /** Related words (emojilib keywords and emojibase tags); not necessarily names of the concept. */
  keywords: readonly string[];
  /** Icon name per vendor that draws it. */
  icons: Readonly<Partial<Record<Vendor, string>>>;
  /** The vendors that draw it (canonical order). */
  vendors: readonly Vendor[];
  /** Position in Unicode order; the catalogue is sorted by it. */
  order: number;
}

/** The whole catalogue. */
export interface Catalogue {
  concepts: readonly Concept[];
  vendors: readonly Vendor[];
  minVendors: number;
  /** Versions of the data packages it was built from. */
  sources: Readonly<Record<string, string>>;
  /** Look up a concept by name, id, emoji, code point or unique synonym; undefined if unknown. */
  find(query: string): Concept | undefined;
  /** Like find, but throws UnknownConceptError naming the nearest names. */
  get(query: string): Concept;
  /** The `k` concept names nearest to `query` (edit distance over names and synonyms). */
  suggest(query: string, k?: number): string[];
  /** Concepts drawn by every vendor of the catalogue. */
  inAllVendors(): Concept[];
  byCategory(category: Category): Concept[];
}

/**
 * An unknown concept; the message names the nearest known ones. `why` adds a reason after the name
 * (e.g. a catalogue concept that is no erasure target); `tail` ends the message (default: where the
 * full list is).
 */
export class UnknownConceptError extends Error {
  readonly query: string;
  readonly suggestions: readonly string[];
  constructor(query: string, suggestions: readonly string[], opts: { why?: string; tail?: string } = {}) {
    const why = opts.why ? ` (${opts.why})` : '';
    const hint = suggestions.length ? `; did you mean ${suggestions.map((s) => `"${s}"`).join(', ')}?` : '';
    super(`unknown concept "${query}"${why}${hint}${opts.tail ?? ' (`mce concepts` lists them all)'}`);
    this.name = 'UnknownConceptError';
    this.query = query;
    this.suggestions = suggestions;
  }
}

/**
 * The `k` candidate names nearest to `query`, best first, among those scoring at most `maxScore`.
 * Score: edit distance relative to length (so short names do not win by being short), minus 0.25
 * when a word is shared (or a word prefix: "knif" ~ "knife"); a synonym scores 0.05 worse than the
 * name. 0 is an exact name; unrelated names score about 0.7 and more.
 */
export function nearestNames(query: string, candidates: readonly { name: string; synonyms?: readonly string[] }[], k = 3, maxScore = Infinity): string[] {
  const q = normalizeText(query);
  const qTokens = q.split(/[\s-]+/).filter((t) => t.length >= 3);
  const score = (term: string): number => {
    let d = editDistance(q, term) / Math.max(q.length, term.length, 1);
    const tTokens = term.split(/[\s-]+/);
    if (qTokens.some((a) => tTokens.some((b) => b.startsWith(a) || (b.length >= 3 && a.startsWith(b))))) d -= 0.25;
    return d;
  };
  const scored: Array<[string, number]> = candidates.map((c) => {
    let best = score(c.name);
    for (const s of c.synonyms ?? []) best = Math.min(best, score(s) + 0.05);
    return [c.name, best];
  });
  return scored
    .filter(([, d]) => d <= maxScore)
    .sort((a, b) => a[1] - b[1] || (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0))
    .slice(0, k)
    .map(([n]) => n);
}

// ---------------------------------------------------------------------------------------------
// Curated data

/** Categories decided by hand, overriding the Unicode subgroup. */
const CATEGORY_OVERRIDES: Readonly<Record<string, Category>> = {
  'kitchen knife': 'weapons',
  dagger: 'weapons',
  'crossed swords': 'weapons',
  'water pistol': 'weapons',
  bomb: 'weapons',
  'bow and arrow': 'weapons',
  boomerang: 'weapons',
  shield: 'weapons',
  cigarette: 'drugs',
  pill: 'drugs',
  syringe: 'drugs',
  ninja: 'characters',
  skull: 'characters',
  'skull and crossbones': 'characters',
  'hairy creature': 'characters',
  'jack-o-lantern': 'characters',
  'teddy bear': 'activities',
  'nesting dolls': 'activities',
  kite: 'activities',
  'yo-yo': 'activities',
  balloon: 'activities',
  'magic wand': 'activities',
  pinata: 'activities',
};

/** Unicode subgroup -> category (group-level fallbacks below). */
const SUBGROUP_CATEGORY: Readonly<Record<string, Category>> = {
  'face-costume': 'characters',
  'person-fantasy': 'characters',
  'cat-face': 'faces',
  'monkey-face': 'faces',
  heart: 'symbols',
  emotion: 'symbols',
  'hand-fingers-open': 'body',
  'hand-fingers-partial': 'body',
  'hand-single-finger': 'body',
  'hand-fingers-closed': 'body',
  hands: 'body',
  'hand-prop': 'body',
  'body-parts': 'body',
  'plant-flower': 'plants',
  'plant-other': 'plants',
  drink: 'drink',
  dishware: 'kitchenware',
  'transport-ground': 'vehicles',
  'transport-water': 'vehicles',
  'transport-air': 'vehicles',
  time: 'nature',
  'sky-weather': 'nature',
  clothing: 'clothing',
  sound: 'music',
  music: 'music',
  'musical-instrument': 'music',
  tool: 'tools',
  science: 'tools',
  medical: 'medical',
};

const GROUP_CATEGORY: Readonly<Record<string, Category>> = {
  'smileys-emotion': 'faces',
  'people-body': 'people',
  'animals-nature': 'animals',
  'food-drink': 'food',
  'travel-places': 'places',
  activities: 'activities',
  objects: 'objects',
  symbols: 'symbols',
};

/** Extra synonyms, mostly for the erasure targets, so that held-out synonyms exist for them. */
const EXTRA_SYNONYMS: Readonly<Record<string, readonly string[]>> = {
  'kitchen knife': ["chef's knife", 'butcher knife', 'cooking knife'],
  dagger: ['short sword', 'stiletto', 'dirk'],
  'water pistol': ['squirt gun', 'water gun', 'toy gun'],
  bomb: ['explosive', 'round bomb'],
  pill: ['capsule', 'tablet', 'medicine pill'],
  syringe: ['hypodermic needle', 'needle', 'injection'],
  cigarette: ['smoking', 'cig', 'tobacco'],
  superhero: ['super hero', 'hero', 'caped hero'],
  supervillain: ['super villain', 'villain'],
  vampire: ['dracula', 'nosferatu'],
  zombie: ['undead', 'walking dead'],
  genie: ['djinn', 'jinn'],
  mage: ['wizard', 'sorcerer'],
  'crossed swords': ['two swords'],
  spoon: ['teaspoon'],
};

// Concepts that are not concepts of the world: flags, keycaps, components, regional indicators.
const EXCLUDED_GROUPS = new Set(['component', 'flags']);
const EXCLUDED_SUBGROUPS = new Set(['keycap', 'skin-tone', 'hair-style', 'flag', 'country-flag', 'subdivision-flag']);

function isExcludedSequence(key: string): boolean {
  for (const part of key.split('-')) {
    const cp = parseInt(part, 16);
    if (cp >= 0x1f3fb && cp <= 0x1f3ff) return true; // skin tone modifiers
    if (cp >= 0x1f1e6 && cp <= 0x1f1ff) return true; // regional indicators (flags)
    if (cp >= 0xe0020 && cp <= 0xe007f) return true; // tag characters (subdivision flags)
    if (cp === 0x20e3) return true; // keycaps
    if (cp >= 0xe000 && cp <= 0xf8ff) return true; // private use (vendor-specific art)
    if (cp >= 0x1f9b0 && cp <= 0x1f9b3 && !key.includes('-')) return true; // hair components alone
  }
  return false;
}

// ---------------------------------------------------------------------------------------------
// Building

interface EmojibaseEntry {
  label: string;
  hexcode: string;
  emoji: string;
  tags?: string[];
  group?: number;
  subgroup?: number;
  order?: number;
  version: number;
}
interface EmojibaseGroups {
  groups: Record<string, string>;
  subgroups: Record<string, string>;
}

/** "man: red hair" -> "man with red hair", "woman: bald" -> "bald woman", "kiss: woman, man" -> "kiss woman man". */
function conceptName(label: string): string {
  let s = normalizeText(label).replace(/\u201c|\u201d/g, '');
  const m = /^([^:]+): (.+)$/.exec(s);
  if (m) {
    const [, who, what] = m as unknown as [string, string, string];
    if (what === 'bald') s = `bald ${who}`;
    else if (/hair$|^beard$/.test(what)) s = `${who} with ${what}`;
    else s = `${who} ${what}`;
  }
  return s.replace(/[:,()]/g, '').replace(/!/g, '').replace(/\s+/g, ' ').trim();
}

/** A synonym or keyword from a shortcode ("kitchen_knife") or keyword list; undefined if unusable. */
function cleanTerm(raw: string): string | undefined {
  const t = normalizeText(raw);
  // Drops ":D", "+1", "cat2", and one- or two-letter words ("ok", "no") that would read as other things.
  if (!/^[a-z][a-z' &.-]*[a-z]$/.test(t) || t.length < 3) return undefined;
  return t;
}

let defaultCatalogue: Catalogue | undefined;

export interface CatalogueOptions {
  /** Vendors to join (default: all three). */
  vendors?: readonly Vendor[];
  /** Keep concepts drawn by at least this many of them (default 2). */
  minVendors?: number;
}

/**
 * The concept catalogue. With no options it is the default world (all three vendors, at least two
 * of them per concept) and is built once per process.
 */
export function loadCatalogue(opts: CatalogueOptions = {}): Catalogue {
  const vendors = opts.vendors ? VENDORS.filter((v) => opts.vendors!.includes(v)) : VENDORS;
  const minVendors = opts.minVendors ?? Math.min(2, vendors.length);
  const isDefault = vendors.length === VENDORS.length && minVendors === 2;
  if (isDefault && defaultCatalogue) return defaultCatalogue;
  const cat = buildCatalogue(vendors, minVendors);
  if (isDefault) defaultCatalogue = cat;
  return cat;
}

function buildCatalogue(vendors: readonly Vendor[], minVendors: number): Catalogue {
  const data = requireJson<EmojibaseEntry[]>('emojibase-data/en/data.json');
  const meta = requireJson<EmojibaseGroups>('emojibase-data/meta/groups.json');
  const lib = requireJson<Record<string, string[]>>('emojilib');
  const shortcodeSets = ['cldr', 'emojibase', 'github', 'iamcal', 'joypixels'].map((s) =>
    requireJson<Record<string, string | string[]>>(`emojibase-data/en/shortcodes/${s}.json`),
  );
  const libByKey = new Map<string, string[]>();
  for (const [ch, words] of Object.entries(lib)) libByKey.set(sequenceKey(ch), words);
  const sets = vendors.map((v) => loadIconSet(v));

  // Every icon name claimed by some code point, per vendor: the name fallback must not steal them.
  const claimed = sets.map((s) => new Set(s.chars.values()));

  interface Draft extends Omit<Concept, 'synonyms'> {
    synonyms: string[];
  }
  const drafts: Draft[] = [];
  const seenKeys = new Set<string>();
  let extraOrder = 1e6;

  const addDraft = (
    key: string,
    emoji: string,
    label: string,
    group: string,
    subgroup: string,
    order: number,
    version: number,
    rawSynonyms: string[],
    rawKeywords: string[],
  ): void => {
    if (seenKeys.has(key) || isExcludedSequence(key)) return;
    seenKeys.add(key);
    const name = conceptName(label);
    const icons: Partial<Record<Vendor, string>> = {};
    sets.forEach((set, i) => {
      const byCode = set.chars.get(key);
      if (byCode && set.has(byCode)) icons[set.vendor] = byCode;
      else {
        const guess = slug(name);
        if (set.has(guess) && !claimed[i]!.has(guess)) icons[set.vendor] = guess;
      }
    });
    const have = vendors.filter((v) => icons[v] !== undefined);
    if (have.length < minVendors) return;
    const category =
      CATEGORY_OVERRIDES[name] ?? SUBGROUP_CATEGORY[subgroup] ?? GROUP_CATEGORY[group] ?? ('objects' as Category);
    const synonyms = uniq(
      [...rawSynonyms, ...(EXTRA_SYNONYMS[name] ?? [])]
        .map(cleanTerm)
        .filter((t): t is string => t !== undefined && t !== name),
    );
    const keywords = uniq(rawKeywords.map(cleanTerm).filter((t): t is string => t !== undefined && t !== name));
    drafts.push({
      name,
      id: slug(name),
      emoji,
      codepoint: key,
      unicodeName: label,
      category,
      group,
      subgroup,
      emojiVersion: version,
      synonyms,
      keywords,
      icons,
      vendors: have,
      order,
    });
  };

  // First code point of each emojibase sequence -> its group, for sequences emojibase lacks.
  const known = new Map<string, { group: string; subgroup: string }>();
  for (const e of data) {
    const group = e.group !== undefined ? meta.groups[String(e.group)] ?? 'unknown' : 'unknown';
    const subgroup = e.subgroup !== undefined ? meta.subgroups[String(e.subgroup)] ?? 'unknown' : 'unknown';
    const key = sequenceKey(e.hexcode);
    known.set(key.split('-')[0]!, { group, subgroup });
    if (EXCLUDED_GROUPS.has(group) || EXCLUDED_SUBGROUPS.has(subgroup)) {
      seenKeys.add(key);
      continue;
    }
    const libWords = libByKey.get(key) ?? [];
    const shortcodes = shortcodeSets.flatMap((s) => {
      const v = s[e.hexcode];
      return v === undefined ? [] : Array.isArray(v) ? v : [v];
    });
    // emojilib's first word is its own name for the emoji; the rest are keywords.
    addDraft(
      key,
      e.emoji,
      e.label,
      group,
      subgroup,
      e.order ?? extraOrder++,
      e.version,
      [...libWords.slice(0, 1), ...shortcodes],
      [...libWords.slice(1), ...(e.tags ?? [])],
    );
  }
  // Sequences some vendors draw that emojibase does not know yet (newer Unicode drafts).
  for (const set of sets) {
    for (const [key, iconName] of set.chars) {
      if (seenKeys.has(key)) continue;
      const emoji = String.fromCodePoint(...key.split('-').map((h) => parseInt(h, 16)));
      const base = known.get(key.split('-')[0]!) ?? { group: 'unknown', subgroup: 'unknown' };
      addDraft(key, emoji, iconName.replace(/-/g, ' '), base.group, base.subgroup, extraOrder++, 0, [], []);
    }
  }

  // Names must be unique; a synonym that is another concept's name, or is shared by several
  // concepts, is ambiguous and dropped.
  const nameCount = new Map<string, number>();
  for (const d of drafts) nameCount.set(d.name, (nameCount.get(d.name) ?? 0) + 1);
  for (const d of drafts) {
    if (nameCount.get(d.name)! > 1) {
      d.name = `${d.name} ${d.codepoint}`;
      d.id = slug(d.name);
    }
  }
  const names = new Set(drafts.map((d) => d.name));
  const synCount = new Map<string, number>();
  for (const d of drafts) for (const s of d.synonyms) synCount.set(s, (synCount.get(s) ?? 0) + 1);
  for (const d of drafts) d.synonyms = d.synonyms.filter((s) => !names.has(s) && synCount.get(s) === 1);

  drafts.sort((a, b) => a.order - b.order || (a.codepoint < b.codepoint ? -1 : 1));
  const concepts: Concept[] = drafts.map((d) => Object.freeze({ ...d, synonyms: Object.freeze([...d.synonyms]) }));

  const index = new Map<string, Concept>();
  const put = (k: string, c: Concept): void => {
    if (!index.has(k)) index.set(k, c);
  };
  for (const c of concepts) put(c.name, c);
  for (const c of concepts) {
    put(c.id, c);
    put(c.codepoint, c);
    put(c.emoji, c);
    put(normalizeText(c.unicodeName), c);
  }
  for (const c of concepts) for (const s of c.synonyms) put(s, c);

  const find = (query: string): Concept | undefined => {
    const q = query.trim();
    return (
      index.get(q) ??
      index.get(normalizeText(q)) ??
      index.get(normalizeText(q).replace(/-/g, ' ')) ??
      index.get(slug(q)) ??
      index.get(sequenceKey(q))
    );
  };
  const suggest = (query: string, k = 3): string[] => nearestNames(query, concepts, k);
  return Object.freeze({
    concepts: Object.freeze(concepts),
    vendors,
    minVendors,
    sources: Object.freeze({
      'emojibase-data': packageVersion('emojibase-data'),
      emojilib: packageVersion('emojilib'),
      ...Object.fromEntries(sets.map((s) => [`@iconify-json/${s.vendor}`, s.version])),
    }),
    find,
    get(query: string): Concept {
      const c = find(query);
      if (!c) throw new UnknownConceptError(query, suggest(query));
      return c;
    },
    suggest,
    inAllVendors: () => concepts.filter((c) => c.vendors.length === vendors.length),
    byCategory: (category: Category) => concepts.filter((c) => c.category === category),
  });
}

/** A concept of the default catalogue, by name, id, emoji, code point or unique synonym. */
export function concept(name: string): Concept {
  return loadCatalogue().get(name);
}
