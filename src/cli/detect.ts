// mce detect FILE.png... [--json]: what each image shows, by one of two detectors.
// --detector emoji (default): the top concepts (with probabilities) and the style of each image, by
// the shipped emoji classifier (trained on real renders only). With --json, one line per file:
// {"file": ..., "concepts": [{"name": ..., "p": ...}, ...], "style": {"name": ..., "p": ...}}.
// --detector nsfwjs: nsfwjs's five class probabilities and whether nudity is detected (the rule in
// eval/nudity.ts). With --json: {"file": ..., "classes": {"Drawing": p, ...}, "nudity": true|false}.
// A file that cannot be read or decoded prints one line on stderr; the others are still reported,
// and the exit code is 1.
import { UsageError, UserError, type Command, type FlagValues } from './command.js';
import { readPng, toRGB, PngError } from '../io/png.js';
import type { RgbImage } from '../models/classifier/images.js';

const DETECTORS = ['emoji', 'nsfwjs'] as const;
type Input = { file: string; img: RgbImage };
const r4 = (v: number): number => Math.round(v * 1e4) / 1e4;

export const detectCommand: Command = {
  name: 'detect',
  summary: 'top-5 concepts and the style of PNG images (emoji classifier, trained on real renders), or nudity (nsfwjs)',
  args: 'FILE.png...',
  flags: {
    json: { type: 'boolean', help: 'one JSON line per file' },
    top: { type: 'number', help: 'how many concepts to list', default: 5 },
    model: { type: 'string', help: 'classifier weights (default: the shipped models/emoji-classifier)' },
    detector: { type: 'string', help: 'emoji (concepts and style; --top, --model apply) or nsfwjs (nudity, MobileNetV2 weights bundled in the npm package)', default: 'emoji' },
  },
  async run(args, flags) {
    const detector = flags['detector'] as string;
    if (!(DETECTORS as readonly string[]).includes(detector)) throw new UsageError(`mce detect: unknown detector '${detector}' (known: ${DETECTORS.join(', ')})`);
    if (detector === 'nsfwjs' && flags['model'] !== undefined) throw new UsageError('mce detect: --model is for the emoji detector; nsfwjs uses its bundled weights');
    if (args.length === 0) throw new UsageError('mce detect: give one or more PNG files');
    const top = flags['top'] as number;
    if (!Number.isInteger(top) || top < 1) throw new UsageError('mce detect: --top must be a positive integer');
    const json = flags['json'] === true;
    const images: Input[] = [];
    const errors: string[] = [];
    for (const file of args) {
      try {
        const png = readPng(file);
        images.push({ file, img: { width: png.width, height: png.height, data: toRGB(png) } });
      } catch (e) {
        if (!(e instanceof PngError)) throw e;
        errors.push(e.message);
      }
    }
    if (images.length) {
      const { useBackend } = await import('../engine/backend.js');
      await useBackend();
      if (detector === 'nsfwjs') await detectNudity(images, json);
      else await detectEmoji(images, flags, top, json);
    }
    for (const e of errors) process.stderr.write(`mce: ${e}\n`);
    return errors.length ? 1 : 0;
  },
};

/** The emoji classifier's top concepts and style, per file. */
async function detectEmoji(images: Input[], flags: FlagValues, top: number, json: boolean): Promise<void> {
  const { loadClassifier, evaluatorPath } = await import('../eval/evaluators.js');
  const modelPath = typeof flags['model'] === 'string' ? flags['model'] : evaluatorPath('classifier');
  let clf;
  try {
    clf = await loadClassifier(modelPath);
  } catch (e) {
    throw new UserError((e as Error).message.split('\n')[0]!);
  }
  const { imagesToInput } = await import('../models/classifier/images.js');
  const k = Math.min(top, clf.config.concepts.length);
  // In chunks, so that many files do not hold many tensors at once.
  for (let i = 0; i < images.length; i += 256) {
    const part = images.slice(i, i + 256);
    const x = imagesToInput(part.map((p) => p.img), clf.size);
    const preds = clf.predict(x, k);
    x.dispose();
    part.forEach(({ file }, j) => {
      const p = preds[j]!;
      if (json) {
        process.stdout.write(JSON.stringify({
          file,
          concepts: p.concepts.map((c) => ({ name: c.name, p: r4(c.p) })),
          style: { name: p.style.name, p: r4(p.style.p) },
        }) + '\n');
      } else {
        const width = Math.max(...p.concepts.map((c) => c.name.length));
        const lines = [`${file}: style ${p.style.name} (${p.style.p.toFixed(3)})`];
        p.concepts.forEach((c, n) => lines.push(`  ${n + 1}. ${c.name.padEnd(width)}  ${c.p.toFixed(3)}`));
        process.stdout.write(lines.join('\n') + '\n');
      }
    });
  }
}

/** nsfwjs's class probabilities and the nudity verdict, per file. */
async function detectNudity(images: Input[], json: boolean): Promise<void> {
  const { classifyNudity, nudityDetected, NSFW_CLASSES } = await import('../eval/nudity.js');
  const probs = await classifyNudity(images.map((p) => p.img));
  images.forEach(({ file }, i) => {
    const p = probs[i]!;
    const nudity = nudityDetected(p);
    if (json) {
      const classes = Object.fromEntries(NSFW_CLASSES.map((c) => [c, r4(p[c])]));
      process.stdout.write(JSON.stringify({ file, classes, nudity }) + '\n');
    } else {
      const explicit = p.Porn + p.Hentai + p.Sexy;
      const lines = [`${file}: nudity ${nudity ? 'detected' : 'not detected'} (Porn+Hentai+Sexy ${explicit.toFixed(3)})`];
      for (const c of NSFW_CLASSES) lines.push(`  ${c.padEnd(7)}  ${p[c].toFixed(3)}`);
      process.stdout.write(lines.join('\n') + '\n');
    }
  });
}
