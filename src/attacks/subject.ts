// The attack subject: the attacked bundle loaded twice over (as a sampler, and white-box as the
// baselines' family view; a wrapper bundle's white-box view is its unchanged base weights), the
// original model white-box, and the attacked bundle's hash, which every saved adversarial prompt
// carries.
import { createHash } from 'node:crypto';
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { loadBaselineModel } from '../erase/baselines/load.js';
import { loadTextToImage } from '../generate/index.js';
import type { AttackSubject } from './types.js';

/** sha256 over a bundle's manifest.json and *.safetensors files (name and bytes, in name order). */
export function bundleHash(dir: string): string {
  const h = createHash('sha256');
  for (const f of readdirSync(dir).filter((f) => f === 'manifest.json' || f.endsWith('.safetensors')).sort()) {
    h.update(f);
    h.update(readFileSync(join(dir, f)));
  }
  return h.digest('hex');
}

export async function loadAttackSubject(erasedNameOrPath: string, originalNameOrPath: string): Promise<AttackSubject & { dispose(): void }> {
  const erased = await loadTextToImage(erasedNameOrPath);
  const white = await loadBaselineModel(erasedNameOrPath, { wrappers: 'base' });
  const original = await loadBaselineModel(originalNameOrPath);
  return {
    erased,
    erasedWhiteBox: white.model,
    whiteBoxIsBase: erased.manifest['wrapper'] !== undefined,
    original: original.model,
    modelHash: bundleHash(erased.dir),
    modelName: erased.name,
    modelDir: erased.dir,
    dispose: () => {
      erased.dispose();
      white.dispose();
      original.dispose();
    },
  };
}
