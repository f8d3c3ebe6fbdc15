// The evaluator trainers on a tiny config (6 concepts at 16x16, a tiny network, a few steps):
// stop and resume, the manifest's fields, the held-out-vendor report, the CLIP trainer.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { useBackend } from '../../src/engine/backend.js';
import { trainClassifier, type ClassifierTrainConfig } from '../../src/train/classifier.js';
import { trainClip, heldOutCaption, worldPhrases, type ClipTrainConfig } from '../../src/train/clip.js';
import { Classifier } from '../../src/models/classifier/classifier.js';
import { EmojiClip } from '../../src/models/clip/clip.js';
import { captions } from '../../src/world/captions.js';
import { runCli } from '../cli/run.js';

const dir = mkdtempSync(join(tmpdir(), 'mce-evaltrain-'));
const cacheDir = join(dir, 'cache');
before(async () => { await useBackend(); });
after(() => rmSync(dir, { recursive: true, force: true }));

const CONCEPTS = ['kitchen knife', 'dagger', 'bomb', 'pill', 'syringe', 'cigarette'];
const backbone = { size: 16, widths: [8, 16], depths: [0, 1], groups: 4 };

function classifierConfig(over: Partial<ClassifierTrainConfig> = {}): ClassifierTrainConfig {
  return {
    kind: 'classifier',
    name: 'tiny-classifier',
    run: join(dir, 'run-clf'),
    out: join(dir, 'out-clf'),
    dataset: { size: 16, concepts: CONCEPTS },
    holdoutVendor: null,
    styleHoldout: { fraction: 0.34, seed: 1 },
    backbone,
    train: {
      steps: 4, batch: 6, lr: 0.003, warmup: 1, weightDecay: 0.01, labelSmoothing: 0.1, styleWeight: 0.5,
      featureDropout: 0.1, maxGradNorm: 2, seed: 1, checkpointEvery: 1, evalEvery: 2,
    },
    augment: {},
    finetune: {
      train: {
        steps: 2, batch: 6, lr: 0.001, warmup: 1, weightDecay: 0.01, labelSmoothing: 0.1, styleWeight: 0.1,
        featureDropout: 0.1, maxGradNorm: 2, seed: 3, checkpointEvery: 1, evalEvery: 1,
      },
      augment: { rotate: 5 },
    },
    style: {
      backbone: { size: 16, widths: [8, 8], depths: [0, 1], groups: 4 },
      train: { steps: 3, batch: 6, lr: 0.003, warmup: 1, weightDecay: 0.01, labelSmoothing: 0.05, maxGradNorm: 2, seed: 2, checkpointEvery: 1, evalEvery: 2 },
      augment: { saturation: 0.1 },
    },
    eval: { seed: 77, views: 1, batch: 32, quickImages: 6 },
    dtype: 'F16',
    ...over,
  };
}

const logs: string[] = [];
const log = (s: string): void => { logs.push(s); };

test('classifier trainer: stops at --max-steps, resumes, and writes weights with a complete manifest', async () => {
  const cfg = classifierConfig();
  const first = await trainClassifier(cfg, { maxSteps: 2, progress: false, log, cacheDir, configPath: 'tiny.json' });
  assert.deepEqual(first, { step: 2, total: 9, complete: false });
  assert.ok(readdirSync(cfg.run).some((f) => f.startsWith('ckpt-00000002')));
  assert.ok(!existsSync(join(cfg.out!, 'manifest.json')));
  // --max-steps counts every stage: 4 concept steps, 2 fine-tuning steps, then 1 of the 3 style steps.
  const second = await trainClassifier(cfg, { maxSteps: 7, progress: false, log, cacheDir, configPath: 'tiny.json' });
  assert.deepEqual(second, { step: 7, total: 9, complete: false });
  assert.ok(readdirSync(join(cfg.run, 'finetune')).some((f) => f.startsWith('ckpt-00000002')));
  assert.ok(readdirSync(join(cfg.run, 'style')).some((f) => f.startsWith('ckpt-00000001')));
  logs.length = 0;
  const m = await trainClassifier(cfg, { progress: true, log, cacheDir, configPath: 'tiny.json' }) as Record<string, any>;
  const weights = join(cfg.out!, 'model.safetensors');
  const manifest = JSON.parse(readFileSync(join(cfg.out!, 'manifest.json'), 'utf8'));
  assert.deepEqual(manifest, JSON.parse(JSON.stringify(m)));
  assert.equal(manifest.sha256, createHash('sha256').update(readFileSync(weights)).digest('hex'));
  assert.equal(manifest.command, 'mce train classifier --config tiny.json');
  assert.match(manifest.dataset.hash, /^[0-9a-f]{64}$/);
  assert.equal(manifest.dataset.records, 18);
  assert.equal(manifest.training.steps, 9);
  assert.deepEqual(Object.keys(manifest.training.stages), ['concept', 'finetune', 'style']);
  assert.equal(manifest.training.stages.style.steps, 3);
  assert.match(manifest.description, /separate small network/);
  assert.ok(manifest.training.cores >= 1 && typeof manifest.training.cpu === 'string');
  assert.ok(manifest.training.seconds >= 0);
  for (const k of ['realRenders', 'augmentedViews', 'styleOnHeldOutConcepts', 'erasureTargets']) assert.ok(k in manifest.quality, k);
  assert.equal(manifest.quality.realRenders.images, 18);
  assert.ok(manifest.quality.realRenders.top1 >= 0 && manifest.quality.realRenders.top5 <= 1);
  assert.equal(manifest.quality.styleOnHeldOutConcepts.concepts, 2);
  assert.ok('kitchen knife' in manifest.quality.erasureTargets);
  const clf = await Classifier.load(weights);
  assert.deepEqual([...clf.config.concepts].sort(), [...CONCEPTS].sort());
  assert.deepEqual(clf.config.styles, ['noto', 'fluent', 'twemoji']);
  assert.deepEqual(clf.config.styleBackbone, cfg.style!.backbone);
  clf.dispose();
});

test('classifier trainer: a held-out-vendor run trains without that vendor and writes a report', async () => {
  const report = join(dir, 'holdout.json');
  const cfg = classifierConfig({ name: 'tiny-holdout', run: join(dir, 'run-hold'), out: null, report, holdoutVendor: 'twemoji' });
  cfg.train.steps = 2;
  await trainClassifier(cfg, { progress: false, log, cacheDir, configPath: 'tiny-holdout.json' });
  const r = JSON.parse(readFileSync(report, 'utf8'));
  assert.equal(r.kind, 'classifier-evaluation');
  assert.equal(r.quality.heldOutVendor.vendor, 'twemoji');
  assert.deepEqual(r.quality.heldOutVendor.trainedOn, ['noto', 'fluent']);
  assert.equal(r.quality.heldOutVendor.clean.images, 6);
  assert.equal(r.quality.realRenders.images, 12);
  assert.deepEqual(Object.keys(r.training.stages), ['concept', 'finetune'], 'no style stage in a held-out-vendor run');
  // A shipped model's manifest embeds the held-out-vendor reports it names.
  const cfg2 = classifierConfig({ heldOutVendorReports: [report] });
  const m = await trainClassifier(cfg2, { progress: false, log, cacheDir, configPath: 'tiny.json' }) as Record<string, any>;
  assert.equal(m['quality'].heldOutVendorRuns[0].vendor, 'twemoji');
});

test('clip trainer: train captions only, zero-shot on held-out captions, manifest', async () => {
  // Held-out captions are never train captions.
  const held = heldOutCaption('kitchen knife', 'twemoji', 5);
  assert.ok(!captions('kitchen knife', 'twemoji', 'train').includes(held));
  assert.ok(captions('kitchen knife', 'twemoji', 'heldout').includes(held));
  assert.ok(worldPhrases().includes('kitchen knife'));
  const cfg: ClipTrainConfig = {
    kind: 'clip',
    name: 'tiny-clip',
    run: join(dir, 'run-clip'),
    out: join(dir, 'out-clip'),
    dataset: { size: 16, concepts: CONCEPTS },
    image: backbone,
    text: { context: 16, width: 16, layers: 1, heads: 2, mlpRatio: 2 },
    embedDim: 8,
    train: { steps: 3, batch: 4, lr: 0.002, warmup: 1, weightDecay: 0.1, maxGradNorm: 1, styledFraction: 0.5, seed: 2, checkpointEvery: 1, evalEvery: 0 },
    augment: {},
    eval: { seed: 5, batch: 32 },
    dtype: 'F16',
  };
  const m = await trainClip(cfg, { progress: false, log, cacheDir, configPath: 'tiny-clip.json' }) as Record<string, any>;
  const q = m['quality'];
  assert.equal(q.zeroShotHeldOutCaptions.clean.images, 18);
  assert.equal(q.zeroShotHeldOutCaptions.classes, 6);
  assert.ok(q.zeroShotStyle.accuracy >= 0 && q.zeroShotStyle.accuracy <= 1);
  assert.ok(q.clipScore.matching >= 0 && q.clipScore.matching <= 100);
  assert.equal(m['command'], 'mce train clip --config tiny-clip.json');
  const clip = await EmojiClip.load(join(cfg.out, 'model.safetensors'));
  assert.equal(clip.config.vocab.length, m['vocabulary']);
  clip.dispose();
});

test('mce train classifier: a missing or bad config is one line, exit 1', async () => {
  const bad = join(dir, 'bad.json');
  writeFileSync(bad, JSON.stringify({ kind: 'clip' }));
  const [missing, wrong, unknownKind] = await Promise.all([
    runCli(['train', 'classifier', '--config', join(dir, 'nope.json')]),
    runCli(['train', 'classifier', '--config', bad]),
    runCli(['train', 'nosuchkind', '--config', bad]),
  ]);
  assert.equal(missing.code, 1);
  assert.match(missing.err, /^mce: cannot read config .*nope\.json: no such file/);
  assert.equal(wrong.code, 1);
  assert.match(wrong.err, /kind must be "classifier"/);
  assert.equal(unknownKind.code, 2);
  for (const r of [missing, wrong, unknownKind]) assert.equal(r.err.trim().split('\n').length, 1, r.err);
});
