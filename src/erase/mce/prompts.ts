// Prompt sets for MCE from emoji-world (mce-method.md §4):
//   erase     captions of the target's members, from the world's TRAIN templates and synonyms,
//             plain and in every style (a style target: captions of other concepts in that style);
//   neutral   the same caption with the concept phrase replaced by the target's neutral phrase
//             (catalogue default, overridable); for a style, the concept's plain caption;
//   preserve  captions of other concepts: the target's near neighbours are always in, then a
//             seeded sample of the rest of the model's concepts (never a member of any target).
// Several targets can be erased in one run: their erase prompts are interleaved, and no
// target's member appears among the preserve prompts.
import { Rng, mixSeed } from '../../engine/rng.js';
import { canonicalCaption, captionRecords, fillTemplate, PLAIN_TEMPLATES } from '../../world/captions.js';
import { selectConcepts } from '../../world/dataset.js';
import { erasureTarget, type ErasureTarget } from '../../world/targets.js';
import { VENDORS, type Vendor } from '../../world/vendors.js';

export interface ErasePair {
  /** The target this prompt erases. */
  target: string;
  prompt: string;
  /** The same prompt with the concept replaced by the neutral phrase. */
  neutral: string;
  /** The prompt without the concept (the "background" text of the pair filter). */
  background?: string;
}

export interface PromptSets {
  targets: ErasureTarget[];
  erase: ErasePair[];
  preserve: string[];
  /**
   * Every near neighbour of the targets (the first of them have prompts in `preserve`, as many as
   * fit). The evaluation's "other concepts" exclude all of them, as the benchmark's do.
   */
  neighbours: string[];
}

export interface PromptOptions {
  /** Erase prompts per target (default 16). */
  erasePerTarget?: number;
  /** Preserve prompts in all (default 16); neighbours come first. */
  preserve?: number;
  /** Override of the neutral phrase ("a spoon" / "spoon"); applies to every target. */
  neutral?: string;
  /** Seed of the sampling of prompts (default 0). */
  seed?: number;
  /** Concepts the model knows (default: the flux-emoji training set, selectConcepts(320, 0)). */
  modelConcepts?: readonly string[];
}

function shuffle<T>(xs: T[], rng: Rng): T[] {
  for (let i = xs.length - 1; i > 0; i--) {
    const j = rng.int(i + 1);
    [xs[i], xs[j]] = [xs[j]!, xs[i]!];
  }
  return xs;
}

/** "a spoon" / "an apple" / "the X" -> the bare phrase (the templates add the article). */
export function barePhrase(p: string): string {
  return p.trim().replace(/^(?:a|an|the)\s+/i, '');
}

/** The text without a phrase (and its article): "an emoji of a chef's knife in noto style" -> "an emoji of in noto style". */
export function withoutPhrase(text: string, phrase: string): string {
  const re = new RegExp(`\\b(?:an?\\s+)?${phrase.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}`, 'i');
  return text.replace(re, '').replace(/\s+/g, ' ').replace(/^[\s,:]+|[\s,:]+$/g, '').trim();
}

/** Erase/neutral pairs of one target (train split only), all of them, in a deterministic order. */
export function erasePairs(t: ErasureTarget, neutralOverride?: string, modelConcepts: readonly string[] = selectConcepts(320, 0)): ErasePair[] {
  const out: ErasePair[] = [];
  if (t.kind === 'concept') {
    const neutral = neutralOverride !== undefined ? barePhrase(neutralOverride) : t.neutralConcept ?? barePhrase(t.neutral);
    for (const m of t.members) {
      for (const style of [null, ...VENDORS] as (Vendor | null)[]) {
        for (const r of captionRecords(m, style, 'train')) {
          out.push({
            target: t.name, prompt: r.text, neutral: fillTemplate(r.template, neutral, r.stylePhrase),
            background: withoutPhrase(r.text, r.conceptPhrase),
          });
        }
      }
    }
  } else {
    // A style: captions of the model's concepts in that style; neutral = the plain caption (or the override).
    const style = t.style!;
    for (const c of modelConcepts) {
      const recs = captionRecords(c, style, 'train');
      for (const r of recs.slice(0, 3)) {
        const neutral = neutralOverride !== undefined && neutralOverride.trim() !== ''
          ? fillTemplate(PLAIN_TEMPLATES[0]!, `${r.conceptPhrase} ${barePhrase(neutralOverride)}`)
          : fillTemplate(PLAIN_TEMPLATES[0]!, r.conceptPhrase);
        out.push({ target: t.name, prompt: r.text, neutral, background: neutral });
      }
    }
  }
  return out;
}

/** The prompt sets for one or more targets (names as `erasureTarget` accepts; unknown names throw with suggestions). */
export function buildPromptSets(names: readonly string[], opts: PromptOptions = {}): PromptSets {
  if (names.length === 0) throw new Error('prompt sets: no concept to erase');
  const seed = opts.seed ?? 0;
  const nErase = opts.erasePerTarget ?? 16;
  const nPreserve = opts.preserve ?? 16;
  const targets = names.map((n) => erasureTarget(n));
  const uniq = [...new Map(targets.map((t) => [t.name, t])).values()];
  const model = opts.modelConcepts ?? selectConcepts(320, 0);
  const rng = new Rng(mixSeed(seed, 0x70726f6d));

  // Erase prompts: a seeded sample per target, interleaved across targets.
  const per = uniq.map((t) => shuffle(erasePairs(t, opts.neutral, model), rng).slice(0, nErase));
  const erase: ErasePair[] = [];
  for (let i = 0; i < nErase; i++) for (const list of per) if (list[i]) erase.push(list[i]!);

  // Preserve prompts: neighbours first (all of them, round-robin over targets), then other concepts.
  const excluded = new Set<string>();
  for (const t of uniq) {
    for (const m of t.members) excluded.add(m);
    if (t.neutralConcept) excluded.add(t.neutralConcept);
  }
  const styleTargets = uniq.filter((t) => t.kind === 'style').map((t) => t.style!);
  const neighbours: string[] = [];
  for (const t of uniq) if (t.kind === 'concept') for (const n of t.neighbours) if (!excluded.has(n) && !neighbours.includes(n)) neighbours.push(n);
  const others = shuffle(model.filter((c) => !excluded.has(c) && !neighbours.includes(c)), rng);
  const allowedStyles = VENDORS.filter((v) => !styleTargets.includes(v));
  const caption = (c: string, i: number): string => {
    // Alternate plain and styled (never in an erased style) captions of the train split.
    const style = i % 2 === 1 && allowedStyles.length ? allowedStyles[(i >> 1) % allowedStyles.length]! : null;
    const recs = captionRecords(c, style, 'train');
    return recs.length ? recs[rng.int(recs.length)]!.text : canonicalCaption(c, style);
  };
  const preserve: string[] = [];
  const concepts = [...neighbours, ...others];
  for (let i = 0; preserve.length < nPreserve && i < concepts.length; i++) preserve.push(caption(concepts[i]!, i));
  return { targets: uniq, erase, preserve, neighbours };
}

/**
 * The reference's prompt-pair filter (mce-method.md §4.3): given a background-consistency score per
 * erase pair (|cos(img_concept, bg) - cos(img_neutral, bg)|; low = the pair differs only in the
 * concept), keep the pairs at or below the `quantile` of the scores. Returns the kept indices.
 */
export function filterPairs(scores: readonly number[], quantile: number): number[] {
  if (!(quantile > 0 && quantile <= 1)) throw new Error(`pair filter: quantile must be in (0, 1], got ${quantile}`);
  const sorted = [...scores].sort((a, b) => a - b);
  const th = sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(quantile * sorted.length) - 1))]!;
  return scores.flatMap((s, i) => (s <= th ? [i] : []));
}
