// `mce train <kind> --config FILE`: reproduce a shipped model. One table of trainer kinds; each
// trainer reads its JSON config, resumes from its run folder's last checkpoint, shows progress
// (loss, ETA) and writes its weights and manifest where the config says.
import { useBackend } from '../engine/backend.js';
import { UsageError, UserError, type Command } from './command.js';

/** A trainer: runs the config at `path`. Add new kinds to TRAINERS. */
export interface Trainer {
  summary: string;
  run(configPath: string, flags: { maxSteps?: number }): Promise<void>;
}

export const TRAINERS: Record<string, Trainer> = {
  ae: {
    summary: 'the FLUX autoencoder of flux-emoji (configs/flux-emoji-ae.json)',
    run: async (path, f) => {
      const { trainAeFromFile } = await import('../train/ae.js');
      await trainAeFromFile(path, { maxSteps: f.maxSteps });
    },
  },
  flow: {
    summary: 'the flux-emoji flow model and its text encoder (configs/flux-emoji.json)',
    run: async (path, f) => {
      const { trainFlowFromFile } = await import('../train/flow.js');
      await trainFlowFromFile(path, { maxSteps: f.maxSteps });
    },
  },
  diffusion: {
    summary: 'the sd-emoji diffusion UNet and its text encoder (configs/sd-emoji.json)',
    run: async (path, f) => {
      const { trainDiffusionFromFile } = await import('../train/diffusion.js');
      await trainDiffusionFromFile(path, { maxSteps: f.maxSteps });
    },
  },
  classifier: {
    summary: 'the emoji concept + style classifier (configs/classifier.json; held-out vendor: configs/classifier-holdout-twemoji.json)',
    run: async (path, f) => {
      const { trainClassifierFromFile } = await import('../train/classifier.js');
      await trainClassifierFromFile(path, { maxSteps: f.maxSteps });
    },
  },
  clip: {
    summary: 'the emoji CLIP-style dual encoder (configs/clip.json)',
    run: async (path, f) => {
      const { trainClipFromFile } = await import('../train/clip.js');
      await trainClipFromFile(path, { maxSteps: f.maxSteps });
    },
  },
};

export const trainCommand: Command = {
  name: 'train',
  summary: `train a base model or evaluator from a config (kinds: ${Object.keys(TRAINERS).join(', ')}); resumes from its last checkpoint`,
  args: '<kind>',
  flags: {
    config: { type: 'string', help: 'the training config (JSON)' },
    'max-steps': { type: 'number', help: 'stop at step N (a later run resumes from there)' },
  },
  async run(args, flags) {
    const kind = args[0];
    if (!kind || args.length > 1) throw new UsageError(`mce train: give one kind (${Object.keys(TRAINERS).join(', ')})`);
    const trainer = TRAINERS[kind];
    if (!trainer) throw new UsageError(`mce train: unknown kind '${kind}' (known: ${Object.keys(TRAINERS).join(', ')})`);
    const config = flags['config'];
    if (typeof config !== 'string' || !config) throw new UsageError('mce train: --config FILE is required');
    const maxSteps = flags['max-steps'];
    if (maxSteps !== undefined && (typeof maxSteps !== 'number' || !Number.isInteger(maxSteps) || maxSteps < 1)) {
      throw new UsageError('mce train: --max-steps must be a positive integer');
    }
    await useBackend();
    try {
      await trainer.run(config, { maxSteps: maxSteps as number | undefined });
    } catch (e) {
      if (e instanceof UsageError) throw e;
      throw new UserError((e as Error).message);
    }
    return 0;
  },
};
