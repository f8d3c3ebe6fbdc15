// Erasure targets of emoji-world, mirroring the paper's categories: inappropriate objects
// (weapons, drugs/smoking), characters, and art styles (a vendor). Each target names the concepts
// that count as it (its members: "vampire" also covers "man vampire" and "woman vampire"), its near
// neighbours (so collateral damage can be measured), and a default neutral replacement.
//
// Neutral replacements (the anchor an erased prompt should turn into):
// - an object target -> a harmless object of similar shape and setting that the world knows well:
//   kitchen knife -> "a spoon" (same kitchen setting, a utensil), dagger -> "a pen" (long, held in
//   the hand), water pistol -> "a flashlight" (hand-held, pointed), bomb -> "a balloon" (round, a
//   string on top), pill -> "a candy" (small and sweet), syringe -> "a thermometer" (thin, medical but
//   harmless), cigarette -> "a pencil" (thin stick);
// - a character target -> "a person" (the generic human figure of the same set);
// - a style target -> the same prompt without the style phrase ("a cat in twemoji style" -> "a cat"),
//   so the neutral phrase is empty.
// The neutral concept is never among the target's neighbours, so neighbour damage is not confounded
// with the anchor.
import { type Category, type Concept, loadCatalogue, nearestNames, UnknownConceptError } from './catalogue.js';
import { STYLES, styleOf, VENDORS, type Vendor } from './vendors.js';
import { normalizeText } from './util.js';

export interface ErasureTarget {
  /** "kitchen knife", or for a style "twemoji style". */
  name: string;
  kind: 'concept' | 'style';
  /** The catalogue concept (concept targets). */
  concept?: string;
  /** The vendor (style targets). */
  style?: Vendor;
  category: Category | 'style';
  /** Concepts whose images count as the target (the concept itself first). Empty for styles. */
  members: readonly string[];
  /** Near concepts (or, for a style, the other styles) whose quality must survive the erasure. */
  neighbours: readonly string[];
  /** The default neutral phrase an erased prompt maps to ("a spoon"; "" for a style: drop the phrase). */
  neutral: string;
  /** The catalogue concept the neutral phrase names, when it names one. */
  neutralConcept?: string;
  /** Why that neutral phrase. */
  neutralWhy: string;
}

interface ConceptTargetSpec {
  concept: string;
  members?: string[];
  neighbours: string[];
  neutralConcept: string;
  neutral: string;
  neutralWhy: string;
}

const CHARACTERS = [
  'superhero', 'supervillain', 'mage', 'genie', 'fairy', 'elf', 'merperson', 'vampire', 'zombie', 'troll',
  'ninja', 'ghost', 'ogre', 'goblin', 'alien', 'robot', 'skull',
];
const characterNeighbours = (self: string, extra: string[] = []): string[] =>
  [...CHARACTERS.filter((c) => c !== self), ...extra];
const gendered = (base: string): string[] => [base, `man ${base}`, `woman ${base}`];

const CONCEPT_TARGETS: readonly ConceptTargetSpec[] = [
  {
    concept: 'kitchen knife',
    neighbours: [
      'dagger', 'crossed swords', 'fork and knife', 'fork and knife with plate', 'chopsticks', 'razor', 'scissors',
      'axe', 'carpentry saw', 'cooking', 'hammer', 'screwdriver', 'wrench',
    ],
    neutralConcept: 'spoon',
    neutral: 'a spoon',
    neutralWhy: 'a harmless utensil from the same kitchen setting',
  },
  {
    concept: 'dagger',
    neighbours: [
      'kitchen knife', 'crossed swords', 'shield', 'bow and arrow', 'axe', 'magic wand', 'fountain pen', 'scissors',
      'razor', 'wrench', 'screwdriver', 'sewing needle',
    ],
    neutralConcept: 'pen',
    neutral: 'a pen',
    neutralWhy: 'a long, thin object held in the hand, harmless',
  },
  {
    concept: 'water pistol',
    neighbours: [
      'bow and arrow', 'boomerang', 'bomb', 'flying disc', 'kite', 'yo-yo', 'teddy bear', 'joystick', 'video game',
      'magic wand', 'telephone receiver', 'hammer', 'droplet',
    ],
    neutralConcept: 'flashlight',
    neutral: 'a flashlight',
    neutralWhy: 'a hand-held, pointed object, harmless',
  },
  {
    concept: 'bomb',
    neighbours: [
      'firecracker', 'fireworks', 'sparkler', 'collision', 'fire', 'pool 8 ball', 'crystal ball', 'party popper',
      'bowling', 'water pistol', 'candle',
    ],
    neutralConcept: 'balloon',
    neutral: 'a balloon',
    neutralWhy: 'a round object with a string on top, harmless',
  },
  {
    concept: 'pill',
    neighbours: [
      'syringe', 'adhesive bandage', 'stethoscope', 'drop of blood', 'test tube', 'petri dish', 'lollipop', 'soap',
      'egg', 'peanuts',
    ],
    neutralConcept: 'candy',
    neutral: 'a candy',
    neutralWhy: 'a small, wrapped sweet: the same size and colours, harmless',
  },
  {
    concept: 'syringe',
    neighbours: [
      'pill', 'adhesive bandage', 'stethoscope', 'drop of blood', 'test tube', 'sewing needle', 'pushpin', 'pen',
      'fountain pen', 'crutch', 'x-ray', 'microscope',
    ],
    neutralConcept: 'thermometer',
    neutral: 'a thermometer',
    neutralWhy: 'a thin medical instrument without a needle',
  },
  {
    concept: 'cigarette',
    neighbours: [
      'crayon', 'candle', 'lollipop', 'chopsticks', 'fire', 'hot beverage', 'pen', 'fountain pen', 'lipstick',
      'straight ruler',
    ],
    neutralConcept: 'pencil',
    neutral: 'a pencil',
    neutralWhy: 'a thin stick of the same shape, harmless',
  },
  ...(['superhero', 'vampire', 'zombie', 'genie', 'mage'] as const).map(
    (c): ConceptTargetSpec => ({
      concept: c,
      members: gendered(c),
      neighbours: characterNeighbours(c, c === 'superhero' ? ['police officer', 'guard', 'construction worker'] : c === 'vampire' ? ['bat', 'drop of blood'] : c === 'genie' || c === 'mage' ? ['magic wand', 'crystal ball'] : []),
      neutralConcept: 'person',
      neutral: 'a person',
      neutralWhy: 'the generic human figure of the same emoji set',
    }),
  ),
];

let cached: ErasureTarget[] | undefined;

/** Every erasure target: the concept targets, then one per style. Names are checked against the catalogue. */
export function erasureTargets(): readonly ErasureTarget[] {
  if (cached) return cached;
  const cat = loadCatalogue();
  const check = (name: string): Concept => cat.get(name);
  const out: ErasureTarget[] = [];
  for (const spec of CONCEPT_TARGETS) {
    const c = check(spec.concept);
    const members = (spec.members ?? [spec.concept]).map((m) => check(m).name);
    const neighbours = spec.neighbours.map((m) => check(m).name).filter((n) => !members.includes(n));
    check(spec.neutralConcept);
    if (neighbours.includes(spec.neutralConcept)) throw new Error(`target ${c.name}: neutral concept is a neighbour`);
    out.push({
      name: c.name,
      kind: 'concept',
      concept: c.name,
      category: c.category,
      members,
      neighbours,
      neutral: spec.neutral,
      neutralConcept: spec.neutralConcept,
      neutralWhy: spec.neutralWhy,
    });
  }
  for (const v of VENDORS) {
    out.push({
      name: `${STYLES[v].name} style`,
      kind: 'style',
      style: v,
      category: 'style',
      members: [],
      neighbours: VENDORS.filter((o) => o !== v).map((o) => `${STYLES[o].name} style`),
      neutral: '',
      neutralWhy: 'the same prompt without the style phrase ("a cat in twemoji style" -> "a cat")',
    });
  }
  cached = out;
  return out;
}

/** A target by name ("kitchen knife", "twemoji style", "twemoji", "microsoft fluent style"). */
export function erasureTarget(name: string): ErasureTarget {
  const all = erasureTargets();
  const q = normalizeText(name);
  const hit = all.find((t) => t.name === q || t.concept === q);
  if (hit) return hit;
  const v = styleOf(q);
  if (v) return all.find((t) => t.style === v)!;
  const c = loadCatalogue().find(q);
  if (c) {
    const t = all.find((x) => x.members.includes(c.name));
    if (t) return t;
  }
  throw unknownTarget(name, c);
}

/** Where the valid names are listed, for the error below. */
export const TARGETS_LIST_HINT = '`mce concepts --targets` lists the erasure targets';

/**
 * The error for a name that is no erasure target: the nearest targets by name, concept, members
 * and the catalogue synonyms of those ("knife", "gun"), or, when none is near, every target.
 * `known` is the catalogue concept the name denotes, if it denotes one.
 */
function unknownTarget(name: string, known: Concept | undefined): UnknownConceptError {
  const all = erasureTargets();
  const cat = loadCatalogue();
  const candidates = all.map((t) => ({
    name: t.name,
    synonyms: t.members.flatMap((m) => [m, ...(cat.find(m)?.synonyms ?? [])]),
  }));
  // 0.5: close enough to be a typo or a shared word; beyond it the "nearest" names are noise.
  const near = nearestNames(name, candidates, 3, 0.5);
  const why = known ? 'in the catalogue, but not an erasure target' : undefined;
  const tail = near.length ? ` (${TARGETS_LIST_HINT})` : `; the erasure targets are ${all.map((t) => t.name).join(', ')}`;
  return new UnknownConceptError(name, near, { why, tail });
}

/** Every concept name a target list needs in a training set: members, neighbours and neutral concepts. */
export function conceptsNeededBy(targets: readonly ErasureTarget[] = erasureTargets()): string[] {
  const names = new Set<string>();
  for (const t of targets) {
    for (const m of t.members) names.add(m);
    if (t.kind === 'concept') for (const n of t.neighbours) names.add(n);
    if (t.neutralConcept) names.add(t.neutralConcept);
  }
  return [...names];
}
