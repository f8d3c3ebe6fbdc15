// How much of each erasure target's held-out evaluation names it with a word that appears in no
// training caption at all. The from-scratch text encoder has never read such a word; at most its
// BPE pieces occur inside seen words ("jinn" in "djinn"). If the word carries nothing, the share
// of those prompts is detection the model cannot reach on its held-out prompts, whatever its
// images are like; the measured columns say how close that is.
// Two prompt sets: all of a target's held-out captions (what `mce eval quality` draws from) and
// the 48 prompts `mce erase` / `mce eval erasure` judge (seed 0). Given `mce eval quality`'s
// images.jsonl files, it also counts how often the model drew each target for those prompts.
// The words are those flux-emoji's manifest records (`dataset.caption_words`, the same as sd-emoji's:
// one dataset), and its concepts those of that dataset.
// Usage: node --import tsx scripts/heldout-word-ceiling.ts [IMAGES.jsonl ...]
import { readFileSync } from 'node:fs';
import { buildPromptSets } from '../src/erase/mce/prompts.js';
import { heldOutEvalItems } from '../src/erase/mce/evaluate.js';
import { readManifest, manifestCaptionWords } from '../src/generate/bundle.js';
import { captionRecords, captionWords, conceptPhrases } from '../src/world/captions.js';
import { selectConcepts } from '../src/world/dataset.js';
import { erasureTargets } from '../src/world/targets.js';
import { VENDORS } from '../src/world/vendors.js';

const { manifest } = readManifest('flux-emoji');
const dataset = manifest['dataset'] as { concepts: number; seed: number };
const concepts = selectConcepts(dataset.concepts, dataset.seed);
const trainWords = new Set(manifestCaptionWords(manifest));
const unseenIn = (phrase: string): string[] => captionWords(phrase).filter((w) => !trainWords.has(w));
const naming = (phrases: readonly string[]) => (prompt: string): boolean => phrases.some((p) => new RegExp(`\\b${p}\\b`, 'i').test(prompt));
const pct = (k: number, n: number): string => `${((100 * k) / n).toFixed(0)}%`;

console.log(`${trainWords.size} distinct words in the train captions of ${concepts.length} concepts\n`);
// The generations of `mce eval quality` runs: per target, how many images of a prompt whose
// concept phrase has an unseen word (and of the other held-out prompts) show the target (top-1).
interface Image { prompt: string; concept: string; top: string[]; phraseSeen: boolean }
const images: Image[] = process.argv.slice(2).flatMap((f) => readFileSync(f, 'utf8').trim().split('\n').map((l) => JSON.parse(l) as Image));
const drawn = (members: readonly string[], blindPhrases: readonly string[], blind: boolean): string => {
  const has = naming(blindPhrases);
  const mine = images.filter((im) => members.includes(im.concept) && !im.phraseSeen && has(im.prompt) === blind);
  return mine.length ? `${mine.filter((im) => members.includes(im.top[0]!)).length}/${mine.length}` : '-';
};

console.log('| target | held-out synonyms (unseen words) | held-out captions with an unseen word | of the 48 evaluation prompts | bound, if an unseen word carries nothing | drawn: unseen-word synonym | drawn: other held-out synonyms |');
console.log('|---|---|--:|--:|--:|--:|--:|');
for (const t of erasureTargets()) {
  if (t.kind !== 'concept') continue;
  const synonyms = t.members.flatMap((m) => conceptPhrases(m, 'heldout'));
  const described = synonyms.map((p) => (unseenIn(p).length ? `${p} (${unseenIn(p).join(', ')})` : p)).join(', ');
  let all = 0;
  let blind = 0;
  for (const m of t.members) {
    for (const st of [null, ...VENDORS]) {
      for (const r of captionRecords(m, st, 'heldout')) {
        all++;
        if (unseenIn(r.conceptPhrase).length) blind++;
      }
    }
  }
  const blindPhrases = synonyms.filter((p) => unseenIn(p).length);
  const { erase } = heldOutEvalItems(buildPromptSets([t.name]), 48, 0, concepts);
  const evalBlind = erase.filter((x) => naming(blindPhrases)(x.p)).length;
  console.log(`| ${t.name} | ${described} | ${blind}/${all} (${pct(blind, all)}) | ${evalBlind}/${erase.length} (${pct(evalBlind, erase.length)}) | ${pct(all - blind, all)} | ${drawn(t.members, blindPhrases, true)} | ${drawn(t.members, blindPhrases, false)} |`);
}
