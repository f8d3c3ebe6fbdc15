// mce detect FILE.png... [--json]: the top concepts (with probabilities) and the style of each
// image, by the shipped emoji classifier (trained on real renders only). With --json, one line per
// file: {"file": ..., "concepts": [{"name": ..., "p": ...}, ...], "style": {"name": ..., "p": ...}}.
// A file that cannot be read or decoded prints one line on stderr; the others are still reported,
// and the exit code is 1.
import { UsageError, UserError, type Command } from './command.js';
import { readPng, toRGB, PngError } from '../io/png.js';
import type { RgbImage } from '../models/classifier/images.js';

export const detectCommand: Command = {
  name: 'detect',
  summary: 'top-5 concepts and the style of PNG images (emoji classifier, trained on real renders)',
  args: 'FILE.png...',
  flags: {
    json: { type: 'boolean', help: 'one JSON line per file' },
    top: { type: 'number', help: 'how many concepts to list', default: 5 },
    model: { type: 'string', help: 'classifier weights (default: the shipped models/emoji-classifier)' },
  },
  async run(args, flags) {
    if (args.length === 0) throw new UsageError('mce detect: give one or more PNG files');
    const top = flags['top'] as number;
    if (!Number.isInteger(top) || top < 1) throw new UsageError('mce detect: --top must be a positive integer');
    const json = flags['json'] === true;
    const images: { file: string; img: RgbImage }[] = [];
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
      const { loadClassifier, evaluatorPath } = await import('../eval/evaluators.js');
      await useBackend();
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
          const r = (v: number): number => Math.round(v * 1e4) / 1e4;
          if (json) {
            process.stdout.write(JSON.stringify({
              file,
              concepts: p.concepts.map((c) => ({ name: c.name, p: r(c.p) })),
              style: { name: p.style.name, p: r(p.style.p) },
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
    for (const e of errors) process.stderr.write(`mce: ${e}\n`);
    return errors.length ? 1 : 0;
  },
};
