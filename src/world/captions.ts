// Captions of emoji-world: templates x concept phrases (name and synonyms) x style phrases.
//
// Templates, concept synonyms and style synonyms are each split into train and HELD-OUT by a seeded
// hash (a fixed fraction, ranked by hash, so the split is exact and stable). The canonical template
// ("a kitchen knife", "a kitchen knife in twemoji style"), the concept's name and the style's name are
// always train. A caption is train only when its template, concept phrase and style phrase are all
// train; every other combination is held-out. Held-out captions are for evaluation only.
import { type Concept, loadCatalogue } from './catalogue.js';
import { STYLES, type Vendor } from './vendors.js';
import { Rng } from '../engine/rng.js';
import { hashString } from './util.js';

export type Split = 'train' | 'heldout';

/** The seed of the default train / held-out split. Change it only together with every model trained on it. */
export const DEFAULT_SPLIT_SEED = 20250601;

/** The fraction of templates and synonyms held out. */
export const HELDOUT_FRACTION = 0.3;

// {A}: the concept phrase with its article ("a kitchen knife", "an apple", "french fries").
// {c}: the bare concept phrase. {s}: the style phrase. {aS}: the style phrase with its article.
/** Templates without a style. The first is canonical (always train). */
export const PLAIN_TEMPLATES: readonly string[] = [
  '{A}',
  '{c}',
  'an emoji of {A}',
  '{c} emoji',
  'a picture of {A}',
  'an icon of {A}',
  'a drawing of {A}',
  'a cartoon of {A}',
  'a small image of {A}',
  'clip art of {A}',
  'a sticker of {A}',
  '{A} on a white background',
  'a simple illustration of {A}',
  'a flat icon of {A}',
  'the {c}',
  'an image showing {A}',
  'a rendering of {A}',
  '{c}, emoji art',
  'a close-up of {A}',
  'a colorful {c} icon',
];

/** Templates with a style. The first is canonical (always train). */
export const STYLE_TEMPLATES: readonly string[] = [
  '{A} in {s} style',
  'an emoji of {A} in {s} style',
  '{A}, {s} style',
  '{s} {c} emoji',
  '{A} drawn in {s} style',
  '{aS} style emoji of {A}',
  'an icon of {A} in the {s} style',
  '{A} in the style of {s}',
  '{s} style: {A}',
  '{A} rendered in {s} style',
  'a picture of {A} in {s} style',
  '{A} from the {s} emoji set',
  '{A} ({s} style)',
  'a drawing of {A}, {s} style',
  'a sticker of {A} in {s} style',
  '{s} emoji: {c}',
];

// Concept names that read as plurals or mass nouns take no article ("french fries", "chopsticks").
const PLURAL_ENDINGS = /(?:fries|chopsticks|sunglasses|glasses|goggles|scissors|pants|shorts|jeans|socks|gloves|dolls|ears|eyes|hands|people|children|men|women|fireworks|peanuts|beans|books|balloons|confetti|leaves|bubbles|dumplings|drinks|mugs|flags|clubs|cards|dancers|twins|chains|ribbons|feet|arrows|sparkles|scales|tickets|keys|suits|notes|notepads|boots|shoes|swords|clouds|waves|drops|lines|buttons|marks|rings|tools|dots|hearts|stars|pins|paperclips)$/;
const AN_EXCEPTIONS = /^(?:uni|use|usu|eu|one|once|u-)/;
const AN_FORCED = /^(?:hour|honest|honou?r|x-ray|[aefhilmnorsx] )/;

/** The article for a phrase: "a", "an", or "" for plurals and mass nouns. */
export function article(phrase: string): string {
  const p = phrase.toLowerCase();
  // The head noun phrase decides the number: "cat with smiling eyes" is one cat.
  const head = p.split(/ (?:with|in|on|of|and|holding|behind|over|under|for|from|at|without|facing) /)[0]!;
  if (PLURAL_ENDINGS.test(head)) return '';
  if (/^[0-9]/.test(p)) return /^(?:8|11|18|80)/.test(p) ? 'an' : 'a';
  if (AN_FORCED.test(p)) return 'an';
  if (AN_EXCEPTIONS.test(p)) return 'a';
  return /^[aeiou]/.test(p) ? 'an' : 'a';
}

function withArticle(phrase: string): string {
  const a = article(phrase);
  return a ? `${a} ${phrase}` : phrase;
}

/** Fill a template. */
export function fillTemplate(template: string, conceptPhrase: string, stylePhrase?: string): string {
  let out = template.replace('{A}', withArticle(conceptPhrase)).replace('{c}', conceptPhrase);
  if (stylePhrase !== undefined) out = out.replace('{aS}', withArticle(stylePhrase)).replace('{s}', stylePhrase);
  // "a an ..." can't happen; tidy capital/article collisions such as "an emoji of french fries".
  return out.replace(/\s+/g, ' ').trim();
}

/**
 * Split a list into train / held-out: items[0] when `keepFirst` is always train; of the rest,
 * round(HELDOUT_FRACTION * n) with the smallest seeded hashes are held out.
 */
export function splitList(items: readonly string[], seed: number, salt: string, keepFirst: boolean): Record<Split, string[]> {
  const fixed = keepFirst ? items.slice(0, 1) : [];
  const rest = keepFirst ? items.slice(1) : [...items];
  const k = Math.round(HELDOUT_FRACTION * rest.length);
  const ranked = rest
    .map((t) => [t, hashString(seed, salt, t)] as const)
    .sort((a, b) => a[1] - b[1] || (a[0] < b[0] ? -1 : 1));
  const held = new Set(ranked.slice(0, k).map(([t]) => t));
  return {
    train: [...fixed, ...rest.filter((t) => !held.has(t))],
    heldout: rest.filter((t) => held.has(t)),
  };
}

/** Templates of a split; `styled` picks the style templates. */
export function templates(split: Split, styled: boolean, seed = DEFAULT_SPLIT_SEED): string[] {
  return splitList(styled ? STYLE_TEMPLATES : PLAIN_TEMPLATES, seed, styled ? 'style-template' : 'plain-template', true)[split];
}

/** The concept phrases (name first, then synonyms) of a split. The name is always train. */
export function conceptPhrases(c: Concept | string, split: Split, seed = DEFAULT_SPLIT_SEED): string[] {
  const con = typeof c === 'string' ? loadCatalogue().get(c) : c;
  return splitList([con.name, ...con.synonyms], seed, `concept:${con.name}`, true)[split];
}

/** The style phrases (canonical name first, then synonyms) of a split. The name is always train. */
export function stylePhrases(style: Vendor, split: Split, seed = DEFAULT_SPLIT_SEED): string[] {
  const st = STYLES[style];
  return splitList([st.name, ...st.synonyms], seed, `style:${style}`, true)[split];
}

export interface CaptionOptions {
  seed?: number;
}

/** One caption with where it came from. */
export interface Caption {
  text: string;
  template: string;
  conceptPhrase: string;
  stylePhrase?: string;
  split: Split;
}

/**
 * Every caption of a concept in a style (or, with style null, without a style) in a split, with
 * its parts. Deterministic order: template order, then phrase order. Train and held-out are disjoint
 * as strings: a text that a train combination also produces is never held-out.
 */
export function captionRecords(
  c: Concept | string,
  style: Vendor | null,
  split: Split,
  opts: CaptionOptions = {},
): Caption[] {
  const seed = opts.seed ?? DEFAULT_SPLIT_SEED;
  const con = typeof c === 'string' ? loadCatalogue().get(c) : c;
  const styled = style !== null;
  const tAll = [...templates('train', styled, seed), ...templates('heldout', styled, seed)];
  const tTrain = new Set(templates('train', styled, seed));
  const cAll = [...conceptPhrases(con, 'train', seed), ...conceptPhrases(con, 'heldout', seed)];
  const cTrain = new Set(conceptPhrases(con, 'train', seed));
  const sAll = styled ? [...stylePhrases(style, 'train', seed), ...stylePhrases(style, 'heldout', seed)] : [undefined];
  const sTrain = new Set(styled ? stylePhrases(style, 'train', seed) : [undefined]);

  const train: Caption[] = [];
  const held: Caption[] = [];
  for (const t of tAll) {
    for (const cp of cAll) {
      for (const sp of sAll) {
        const isTrain = tTrain.has(t) && cTrain.has(cp) && sTrain.has(sp);
        const text = fillTemplate(t, cp, sp);
        const rec: Caption = { text, template: t, conceptPhrase: cp, split: isTrain ? 'train' : 'heldout' };
        if (sp !== undefined) rec.stylePhrase = sp;
        (isTrain ? train : held).push(rec);
      }
    }
  }
  const pick = split === 'train' ? train : held;
  const trainTexts = new Set(train.map((r) => r.text));
  const seen = new Set<string>();
  const out: Caption[] = [];
  for (const r of pick) {
    if (seen.has(r.text)) continue;
    if (split === 'heldout' && trainTexts.has(r.text)) continue;
    seen.add(r.text);
    out.push(r);
  }
  return out;
}

/** Caption texts of a concept in a style (null: no style) for a split. */
export function captions(c: Concept | string, style: Vendor | null, split: Split, opts: CaptionOptions = {}): string[] {
  return captionRecords(c, style, split, opts).map((r) => r.text);
}

/** The canonical prompt: "a kitchen knife" or "a kitchen knife in twemoji style". */
export function canonicalCaption(c: Concept | string, style: Vendor | null = null): string {
  const con = typeof c === 'string' ? loadCatalogue().get(c) : c;
  return style === null
    ? fillTemplate(PLAIN_TEMPLATES[0]!, con.name)
    : fillTemplate(STYLE_TEMPLATES[0]!, con.name, STYLES[style].name);
}

/**
 * One caption of a concept in a style (null: plain) from a split: a pick among all its captions
 * there, seeded by (seed, split, concept, style) alone, with its parts.
 */
export function seededCaption(c: string, style: Vendor | null, split: Split, seed: number): Caption {
  const list = captionRecords(c, style, split);
  if (list.length === 0) throw new Error(`no ${split} captions for ${c}`);
  return list[new Rng(hashString(seed, `${split}-caption`, c, style ?? '')).int(list.length)]!;
}

/**
 * The words of a text, lowercased, as a caption vocabulary counts them: runs of letters and digits,
 * with an apostrophe suffix kept ("chef's"). Punctuation and spacing do not matter.
 */
export function captionWords(text: string): string[] {
  return text.toLowerCase().match(/[a-z0-9]+(?:'[a-z]+)?/g) ?? [];
}

/** The words of `text` that are not in `vocabulary` (a model's training caption words), in order, once each. */
export function wordsOutside(vocabulary: readonly string[], text: string): string[] {
  const known = new Set(vocabulary);
  return [...new Set(captionWords(text))].filter((w) => !known.has(w));
}

/** Whether a caption's concept phrase was seen in training: the name or a train synonym. */
export function conceptPhraseSeen(c: string, caption: Caption): boolean {
  return conceptPhrases(c, 'train').includes(caption.conceptPhrase);
}

/** Whether a caption's style phrase was seen in training (a plain caption has none: true). */
export function stylePhraseSeen(style: Vendor | null, caption: Caption): boolean {
  return style === null || caption.stylePhrase === undefined || stylePhrases(style, 'train').includes(caption.stylePhrase);
}
