// An I2P-style suite (after the Inappropriate Image Prompts set of SLD, AIML-TUDA/i2p): not a
// search, but the indirect ways a user names the target without its canonical prompt, drawn from
// emoji-world's own data, in four families:
// - synonyms: the held-out synonyms of the target's members (never in a training caption), in the
//   canonical template ("a hocho"); a style: its held-out style phrases ("a cat in twitter emoji style");
// - descriptions: emojilib keywords and emojibase tags of the target concept that do not use the
//   target's words ("blade emoji", and all of them as one description);
// - misspellings: deterministic typos of the target's name (seeded): adjacent characters swapped,
//   one dropped, one doubled, applied to every word of 3+ letters ("a kicthen knfie");
// - translations: the concept's label in other languages from emojibase-data (de, fr, es, it, ja),
//   found by the emoji's code point sequence as the catalogue keys it ("Küchenmesser").
// Each family's detection rate on the attacked model is reported in settings.families.
import { Rng, mixSeed } from '../engine/rng.js';
import { canonicalCaption, conceptPhrases, fillTemplate, stylePhrases, PLAIN_TEMPLATES, STYLE_TEMPLATES } from '../world/captions.js';
import { loadCatalogue } from '../world/catalogue.js';
import type { ErasureTarget } from '../world/targets.js';
import { requireJson } from '../world/util.js';
import { sequenceKey, STYLES } from '../world/vendors.js';
import { baselineRate, measureDetection, measureOptions } from './measure.js';
import { bannedIn, bannedWords, conceptPrompts, STYLE_SUBJECTS } from './tokens.js';
import type { Attack, AttackOptions } from './types.js';

export const I2P_FAMILIES = ['synonyms', 'descriptions', 'misspellings', 'translations'] as const;
export type I2pFamily = (typeof I2P_FAMILIES)[number];

export const I2P_LOCALES = ['de', 'fr', 'es', 'it', 'ja'] as const;

export const I2P_PUBLISHED = {
  prompts: 4703,
  categories: 7,
  source: 'I2P (SLD, CVPR 2023): 4,703 real user prompts in 7 inappropriate categories; here the same idea (indirect prompts for the concept) built from emoji-world data',
} as const;

export type Typo = 'swap' | 'drop' | 'double';
const TYPOS: readonly Typo[] = ['swap', 'drop', 'double'];

/** One typo of a word at a seeded position; undefined when the word has no such typo. */
function typoWord(w: string, op: Typo, rng: Rng): string | undefined {
  if (op === 'swap') {
    const at = [...Array(Math.max(0, w.length - 1)).keys()].filter((i) => w[i] !== w[i + 1]);
    if (!at.length) return undefined;
    const i = at[rng.int(at.length)]!;
    return w.slice(0, i) + w[i + 1] + w[i] + w.slice(i + 2);
  }
  const i = rng.int(w.length);
  return op === 'drop' ? w.slice(0, i) + w.slice(i + 1) : w.slice(0, i + 1) + w[i] + w.slice(i + 1);
}

/**
 * `n` misspellings of a phrase per typo kind, interleaved (swap, drop, double, swap, ...): each
 * applies its typo once to every word of 3+ letters. Distinct from each other and from the phrase;
 * the same seed gives the same list.
 */
export function misspellings(phrase: string, n: number, seed: number): Array<{ text: string; typo: Typo }> {
  const words = phrase.split(' ');
  const out: Array<{ text: string; typo: Typo }> = [];
  const seen = new Set([phrase]);
  TYPOS.forEach((op, o) => {
    const rng = new Rng(mixSeed(seed, 0x7479706f, o));
    let made = 0;
    for (let tries = 0; made < n && tries < 20 * n; tries++) {
      const text = words.map((w) => (w.length >= 3 && /^[a-z]+$/i.test(w) ? typoWord(w, op, rng) ?? w : w)).join(' ');
      if (seen.has(text)) continue;
      seen.add(text);
      out.push({ text, typo: op });
      made++;
    }
  });
  // Interleave the kinds so that a short prefix has all three.
  const by = TYPOS.map((op) => out.filter((m) => m.typo === op));
  const mixed: Array<{ text: string; typo: Typo }> = [];
  for (let i = 0; i < n; i++) for (const l of by) if (l[i]) mixed.push(l[i]!);
  return mixed;
}

interface EmojibaseEntry {
  hexcode: string;
  label: string;
}

/** The concept's emojibase label per locale (locales without the emoji are left out). */
export function translations(conceptName: string, locales: readonly string[] = I2P_LOCALES): Array<{ locale: string; label: string }> {
  const c = loadCatalogue().get(conceptName);
  const out: Array<{ locale: string; label: string }> = [];
  for (const loc of locales) {
    const data = requireJson<EmojibaseEntry[]>(`emojibase-data/${loc}/data.json`);
    const e = data.find((x) => sequenceKey(x.hexcode) === c.codepoint);
    if (e) out.push({ locale: loc, label: e.label });
  }
  return out;
}

/** Every prompt of the suite for a target, by family, in a fixed order (the seed only picks the typos). */
export function i2pPrompts(target: ErasureTarget, seed: number, perFamily = Infinity): Record<I2pFamily, string[]> {
  const cap = (xs: string[]): string[] => [...new Set(xs)].slice(0, perFamily);
  if (target.kind === 'style') {
    const v = target.style!;
    const subjects = STYLE_SUBJECTS.slice(0, 4);
    const held = stylePhrases(v, 'heldout');
    const name = STYLES[v].name;
    const typos = misspellings(name, 4, seed);
    return {
      synonyms: cap(held.flatMap((p) => subjects.map((s) => fillTemplate(STYLE_TEMPLATES[0]!, s, p)))),
      descriptions: [],
      misspellings: cap(typos.map((m, i) => fillTemplate(STYLE_TEMPLATES[0]!, subjects[i % subjects.length]!, m.text))),
      translations: [],
    };
  }
  const cat = loadCatalogue();
  const name = target.concept ?? target.members[0]!;
  const banned = bannedWords(target);
  const held = target.members.flatMap((m) => conceptPhrases(m, 'heldout'));
  const keywords = cat.get(name).keywords.filter((k) => bannedIn(k, banned).length === 0);
  return {
    synonyms: cap(held.map((p) => fillTemplate(PLAIN_TEMPLATES[0]!, p))),
    descriptions: cap([
      ...(keywords.length > 1 ? [keywords.join(', ')] : []),
      ...keywords.map((k) => fillTemplate('{c} emoji', k)),
    ]),
    misspellings: cap(misspellings(name, 4, seed).map((m) => fillTemplate(PLAIN_TEMPLATES[0]!, m.text))),
    translations: cap(translations(name).map((t) => t.label)),
  };
}

export function i2pConfig(budget: AttackOptions['budget']): { perFamily: number; baselinePrompts: number } {
  return budget === 'quick' ? { perFamily: 2, baselinePrompts: 2 } : { perFamily: 8, baselinePrompts: 4 };
}

export const i2p: Attack = async (subject, target, opts) => {
  const t0 = performance.now();
  const cfg = i2pConfig(opts.budget);
  const fams = i2pPrompts(target, opts.seed, cfg.perFamily);
  const all: Array<{ family: I2pFamily; prompt: string }> = I2P_FAMILIES.flatMap((f) => fams[f].map((prompt) => ({ family: f, prompt })));
  const det = await measureDetection(subject.erased, all.map((a) => a.prompt), target, measureOptions(opts));
  const plain = conceptPrompts(target, cfg.baselinePrompts);
  const baseline = await baselineRate(subject, target, opts, cfg.baselinePrompts);
  const families: Record<string, { prompts: number; asr: number | null }> = {};
  for (const f of I2P_FAMILIES) {
    const rates = all.map((a, i) => (a.family === f ? det.perPrompt[i]! : -1)).filter((r) => r >= 0);
    families[f] = { prompts: rates.length, asr: rates.length ? rates.reduce((a, b) => a + b, 0) / rates.length : null };
  }
  return {
    attack: 'i2p',
    target: target.name,
    model: { name: subject.modelName, sha256: subject.modelHash },
    asr: det.rate,
    baseline,
    prompts: all.map((a, i) => ({ prompt: a.prompt, detected: det.perPrompt[i]! })),
    generations: det.generations,
    seconds: (performance.now() - t0) / 1000,
    settings: {
      budget: opts.budget,
      published: I2P_PUBLISHED,
      used: { ...cfg, families: I2P_FAMILIES, locales: I2P_LOCALES },
      families,
      promptFamilies: all.map((a) => a.family),
      search: 'none: a fixed suite of indirect prompts',
      descriptionsNote: "keywords that use the target's words are left out, so descriptions stay indirect",
      baselinePrompts: plain,
      seedsPerPrompt: opts.seedsPerPrompt ?? 2,
      canonical: target.kind === 'style' ? canonicalCaption(STYLE_SUBJECTS[0]!, target.style!) : canonicalCaption(target.concept ?? target.members[0]!),
    },
  };
};
