// `mce eval quality --record`: a quality report, summarised, into the evaluated model's own
// manifest.json, so that the manifest's quality numbers come from the command it names (and not
// from a hand copy). Held-out prompts go to quality.eval_quality (what the bars judge), train
// captions to quality.eval_quality_train_prompts; every other key of the manifest is kept.
import { existsSync, readFileSync } from 'node:fs';
import { isAbsolute, join, relative } from 'node:path';
import { writeFileAtomic } from '../io/atomic.js';
import { round } from '../train/evaluator-common.js';
import { sha256 } from '../world/util.js';
import { PROMPTS_DESCRIPTION, type QualityReport } from './quality.js';

/** Four decimals: the manifest is read by people, and 1e-4 is finer than any of these estimates. */
const r4 = (x: number | null): number | null => (x === null ? null : round(x, 4));

function round4<T extends object>(o: T): T {
  return Object.fromEntries(Object.entries(o).map(([k, v]) => [k, typeof v === 'number' ? r4(v) : v])) as T;
}

/** Which evaluator file judged: its path (relative to the working folder when inside it) and sha256. */
function evaluatorRecord(path: string | null): { path: string; sha256: string | null } | null {
  if (path === null) return null;
  const rel = relative(process.cwd(), path);
  return {
    path: rel && !rel.startsWith('..') && !isAbsolute(rel) ? rel : path,
    sha256: existsSync(path) ? sha256(readFileSync(path)) : null,
  };
}

/** The manifest key a report is recorded under. */
export function qualityKey(report: QualityReport): string {
  return report.prompts === PROMPTS_DESCRIPTION.train ? 'eval_quality_train_prompts' : 'eval_quality';
}

/** The manifest's summary of a report: the headline numbers, per-style and per-target rows, and the bars. */
export function qualitySummary(report: QualityReport, command: string): Record<string, unknown> {
  const m = report.metrics;
  return {
    command,
    prompts: report.prompts,
    concepts: report.concepts,
    seeds: report.seeds,
    images: report.images,
    sampling: { steps: report.model.steps, cfg: report.model.cfg, ...(report.model.cfgInterval ? { cfg_interval: report.model.cfgInterval } : {}) },
    classified_among: report.classifiedAmong.concepts,
    evaluators: { classifier: evaluatorRecord(report.evaluators.classifier), clip: evaluatorRecord(report.evaluators.clip) },
    concept_top1: { generated: r4(m.conceptTop1.generated), real: r4(m.conceptTop1.real) },
    concept_top5: { generated: r4(m.conceptTop5.generated), real: r4(m.conceptTop5.real) },
    style: { generated: r4(m.style.generated), real: r4(m.style.real) },
    by_concept_phrase: m.byConceptPhrase.map(round4),
    by_prompt_phrases: m.byPromptPhrases.map(round4),
    by_style: m.byStyle.map((s) => ({ style: s.style, generated: round4(s.generated), real: round4(s.real) })),
    clip_score: {
      generated: m.clipScore.generated === null ? null : round(m.clipScore.generated, 3),
      real: m.clipScore.real === null ? null : round(m.clipScore.real, 3),
    },
    fid_classifier_features: { value: round(m.fid.value, 2), note: m.fid.note },
    kid_classifier_features: { mean: r4(m.kid.mean), std: r4(m.kid.std) },
    target_detection: Object.fromEntries(
      report.targets.map((t) => [t.name, { images: t.images, detection: r4(t.detection), by_concept_phrase: t.byConceptPhrase.map(round4) }]),
    ),
    bars: report.bars.map((b) => ({ name: b.name, pass: b.pass, detail: b.detail })),
    seconds: report.seconds,
  };
}

/** Write the summary into `modelDir`/manifest.json under quality[qualityKey]; returns the key. */
export async function recordQuality(modelDir: string, report: QualityReport, command: string): Promise<string> {
  const path = join(modelDir, 'manifest.json');
  if (!existsSync(path)) throw new Error(`--record: ${path} not found (the model folder needs a manifest.json to record into)`);
  let manifest: Record<string, unknown>;
  try {
    manifest = JSON.parse(readFileSync(path, 'utf8')) as Record<string, unknown>;
  } catch (e) {
    throw new Error(`--record: ${path} is not valid JSON (${(e as Error).message})`);
  }
  const key = qualityKey(report);
  const quality = (manifest['quality'] ?? {}) as Record<string, unknown>;
  manifest['quality'] = { ...quality, [key]: qualitySummary(report, command) };
  await writeFileAtomic(path, JSON.stringify(manifest, null, 2) + '\n');
  return key;
}
