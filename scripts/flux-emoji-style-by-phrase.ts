// Style accuracy of a model's held-out generations, split by the style phrase in each prompt
// ("microsoft", "twemoji", ...): does style fail on words the text encoder never saw, or everywhere?
// The same plan, noises and classifier as `mce eval quality --concepts N` (default 40), so the
// images are that command's.
// Usage: node --import tsx scripts/flux-emoji-style-by-phrase.ts [MODEL] [CONCEPTS]
import { useBackend } from '../src/engine/backend.js';
import { loadClassifier } from '../src/eval/evaluators.js';
import { qualitySetup, scoreItems } from '../src/eval/quality.js';
import { loadTextToImage } from '../src/generate/index.js';
import { seededCaption, stylePhrases } from '../src/world/captions.js';

await useBackend();
const model = await loadTextToImage(process.argv[2] ?? 'flux-emoji');
const setup = qualitySetup(model, { concepts: Number(process.argv[3] ?? 40) });
// The classifier's own style order (what scores.style indexes).
const styleNames = (await loadClassifier(setup.classifier)).config.styles;
const tally = new Map<string, { right: number; images: number }>();
await scoreItems(model, setup, (s) => {
  const phrase = seededCaption(s.item.concept, s.item.style, setup.prompts, setup.seed).stylePhrase!;
  const heldOut = stylePhrases(s.item.style, 'heldout').includes(phrase);
  const key = `${s.item.style}: "${phrase}"${heldOut ? ' (held-out)' : ''}`;
  const t = tally.get(key) ?? { right: 0, images: 0 };
  for (const predicted of s.scores.style) {
    t.images++;
    if (styleNames[predicted] === s.item.style) t.right++;
  }
  tally.set(key, t);
});
console.log('style phrase in the prompt'.padEnd(40), 'style right / images');
for (const [key, t] of [...tally].sort(([a], [b]) => a.localeCompare(b))) {
  console.log(key.padEnd(40), `${t.right}/${t.images}`.padStart(7), `${((100 * t.right) / t.images).toFixed(1)}%`.padStart(7));
}
