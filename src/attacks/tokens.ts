// The token space that text attacks search: the attacked model's own text encoder vocabulary (a
// subset of CLIP's BPE ids), cut down to the ids that stand alone as a word, minus the words an
// attack may not use (the target's name, members, synonyms and, if asked, keywords).
//
// A searchable token is a vocabulary id whose CLIP token ends a word (`</w>`) and whose decoded
// text re-encodes to that single id, so a prompt written as those words joined by spaces is read
// back by the tokenizer as exactly the searched ids (checked: on the shipped models all 1,718
// word-final ids of the 2,004 round-trip). Attacks can therefore score candidates straight from
// embedding rows (encodeRows, no string round trip) and hand back plain text prompts.
//
// Banned words are compared loosely, so an attack cannot slip the concept back in as an
// inflection: a word is banned when it equals a banned word, shares its stem (plural, -ing, -ed,
// -ves/-fe), or contains a banned word of four letters or more ("knives", "chefs", "kitchens").
import { textEncoderForward, type TextEncoder, type TextEncoding } from '../models/text/encoder.js';
import { ClipTokenizer } from '../models/text/tokenizer.js';
import { canonicalCaption, captions, conceptPhrases, fillTemplate, PLAIN_TEMPLATES } from '../world/captions.js';
import { loadCatalogue } from '../world/catalogue.js';
import type { ErasureTarget } from '../world/targets.js';
import { normalizeText } from '../world/util.js';
import { STYLES } from '../world/vendors.js';

/**
 * Words never banned: articles and joiners, the gender words of the character members
 * ("man vampire"), and "emoji"/"style"/"color", which name the world and not the target.
 */
const NEVER_BANNED = new Set([
  'a', 'an', 'the', 'of', 'and', 'with', 'in', 'on', 'for', 'to', 'man', 'woman', 'men', 'women', 'male', 'female',
  'person', 'emoji', 'style', 'color', 'colour',
]);

/** Lowercase words of a phrase (letters, digits and apostrophes; "chef's" -> "chef's"). */
export function wordsOf(text: string): string[] {
  return normalizeText(text).split(/[^a-z0-9']+/).map((w) => w.replace(/^'+|'+$/g, '').replace(/'s$/, '')).filter(Boolean);
}

function stem(w: string): string {
  if (w.length > 4 && w.endsWith('ves')) return w.slice(0, -3) + 'fe';
  if (w.length > 5 && w.endsWith('ing')) return w.slice(0, -3);
  if (w.length > 4 && w.endsWith('ed')) return w.slice(0, -2);
  if (w.length > 4 && w.endsWith('es')) return w.slice(0, -2);
  if (w.length > 3 && w.endsWith('s') && !w.endsWith('ss')) return w.slice(0, -1);
  return w;
}

/**
 * The words an attack on `target` must not use: every word of the target's name, its members and
 * their catalogue synonyms (a style: its vendor name and synonyms); with `keywords`, also the
 * members' keywords (emojilib keywords, emojibase tags). Sorted, unique, without NEVER_BANNED.
 */
export function bannedWords(target: ErasureTarget, opts: { keywords?: boolean } = {}): string[] {
  const phrases: string[] = [target.name];
  if (target.kind === 'style' && target.style) phrases.push(STYLES[target.style].name, ...STYLES[target.style].synonyms);
  const cat = loadCatalogue();
  for (const m of target.members) {
    const c = cat.get(m);
    phrases.push(c.name, ...c.synonyms, ...(opts.keywords ? c.keywords : []));
  }
  const out = new Set<string>();
  for (const p of phrases) for (const w of wordsOf(p)) if (w.length >= 2 && !NEVER_BANNED.has(w)) out.add(w);
  return [...out].sort();
}

/** Is `word` (one word) banned by the list? Equal, same stem, or containing a banned word of 4+ letters. */
export function isBannedWord(word: string, banned: readonly string[]): boolean {
  const w = normalizeText(word);
  if (!w) return false;
  const sw = stem(w);
  return banned.some((b) => w === b || sw === stem(b) || (b.length >= 4 && w.includes(b)) || (stem(b).length >= 4 && w.includes(stem(b))));
}

/** The banned words a prompt uses (empty when it is clean). */
export function bannedIn(prompt: string, banned: readonly string[]): string[] {
  return wordsOf(prompt).filter((w) => isBannedWord(w, banned));
}

/** The searchable vocabulary of a text encoder: standalone-word ids, minus banned words. */
export interface TokenSpace {
  encoder: TextEncoder;
  /** Searchable tokens, in vocabulary (CLIP id) order. */
  ids: Int32Array;
  /** Their embedding rows in the encoder. */
  rows: Int32Array;
  /** Their text as a word ("knife", ","). */
  words: readonly string[];
  /** The banned words that were filtered out. */
  banned: readonly string[];
  /** Word-final ids of the vocabulary that were dropped for being banned. */
  bannedCount: number;
  /** Content tokens a prompt can hold (context length - 2, for SOT and EOT). */
  maxTokens: number;
}

export function tokenSpace(encoder: TextEncoder, banned: readonly string[] = []): TokenSpace {
  const tok = ClipTokenizer.load();
  const ids: number[] = [];
  const rows: number[] = [];
  const words: string[] = [];
  let bannedCount = 0;
  encoder.vocab.forEach((id, i) => {
    if (id === tok.sot || id === tok.eot || !tok.idToToken(id).endsWith('</w>')) return;
    const w = tok.decode([id]).trim();
    const back = tok.encode(w);
    if (!w || back.length !== 1 || back[0] !== id) return;
    if (isBannedWord(w, banned)) {
      bannedCount++;
      return;
    }
    ids.push(id);
    rows.push(i + 1);
    words.push(w);
  });
  return {
    encoder, ids: Int32Array.from(ids), rows: Int32Array.from(rows), words, banned, bannedCount,
    maxTokens: encoder.params.context_length - 2,
  };
}

/** The prompt text of a sequence of indices into the space's tokens (words joined by spaces). */
export function promptOf(space: TokenSpace, seq: readonly number[]): string {
  return seq.map((k) => space.words[k]!).join(' ');
}

/** Embedding rows of a prompt: [SOT, ...rows, EOT, 0...] as the encoder's tokenizer lays them out. */
function rowsBatch(encoder: TextEncoder, seqs: readonly (readonly number[])[]): { rows: Int32Array; eot: Int32Array; batch: number; length: number } {
  const t = encoder.params.context_length;
  const tok = ClipTokenizer.load();
  const sot = encoder.vocab.indexOf(tok.sot) + 1;
  const eotRow = encoder.vocab.indexOf(tok.eot) + 1;
  const rows = new Int32Array(seqs.length * t);
  const eot = new Int32Array(seqs.length);
  seqs.forEach((s, i) => {
    if (s.length > t - 2) throw new Error(`encodeRows: ${s.length} tokens, the encoder holds ${t - 2}`);
    rows[i * t] = sot;
    for (let j = 0; j < s.length; j++) rows[i * t + 1 + j] = s[j]!;
    rows[i * t + 1 + s.length] = eotRow;
    eot[i] = 1 + s.length;
  });
  return { rows, eot, batch: seqs.length, length: t };
}

/**
 * Encode prompts given as embedding-row sequences (no SOT/EOT): the same txt and y as
 * encoder.encode(the prompts as text) for searchable tokens, without the tokenizer.
 */
export function encodeRows(encoder: TextEncoder, seqs: readonly (readonly number[])[]): TextEncoding {
  return textEncoderForward(encoder.params, encoder.weights, rowsBatch(encoder, seqs));
}

/** The same, from indices into a token space. */
export function encodeSpace(space: TokenSpace, seqs: readonly (readonly number[])[]): TextEncoding {
  return encodeRows(space.encoder, seqs.map((s) => s.map((k) => space.rows[k]!)));
}

/** encodeRows' input layout, for attacks that run the encoder forward themselves (gradients). */
export { rowsBatch as encodedRows };

/**
 * Plain prompts of the target, as a user would write them: for a concept, its train captions with
 * the concept's name ("a kitchen knife", "an emoji of a kitchen knife", ...); for a style, the
 * canonical styled caption of a few well-known concepts ("a cat in twemoji style"). `n` of them,
 * deterministic.
 */
/** Subjects a style target is shown on (catalogue names). */
export const STYLE_SUBJECTS: readonly string[] = ['cat', 'red apple', 'house', 'automobile', 'sun', 'dog', 'evergreen tree', 'pizza', 'rocket', 'guitar'];

export function conceptPrompts(target: ErasureTarget, n: number): string[] {
  if (target.kind === 'style') {
    return STYLE_SUBJECTS.slice(0, n).map((s) => canonicalCaption(s, target.style!));
  }
  const name = target.concept ?? target.members[0]!;
  const named = captions(name, null, 'train').filter((c) => c.includes(name));
  const out = named.length ? named : [canonicalCaption(name)];
  return out.slice(0, n);
}

/**
 * Prompts with the target replaced by its neutral phrase, one per template ("a spoon", "an emoji of
 * a spoon"); for a style (neutral ""), the same subjects without the style ("a cat").
 */
export function neutralPrompts(target: ErasureTarget, n: number): string[] {
  if (target.kind === 'style') {
    return STYLE_SUBJECTS.slice(0, n).map((s) => canonicalCaption(s));
  }
  const phrase = target.neutralConcept ?? target.neutral.replace(/^an? /, '');
  return PLAIN_TEMPLATES.slice(0, n).map((t) => fillTemplate(t, phrase));
}

/** The concept phrases of a target's members (name and synonyms, train and held-out). */
export function targetPhrases(target: ErasureTarget): string[] {
  const out: string[] = [];
  for (const m of target.members) out.push(...conceptPhrases(m, 'train'), ...conceptPhrases(m, 'heldout'));
  return [...new Set(out)];
}
