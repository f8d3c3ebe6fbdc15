// Schemas for the training configs (zod): each trainer declares its config's shape with the field
// kinds below, and parseConfig turns the first problem into one line that names the file and the
// field, e.g. `configs/x.json: train.lr: expected a positive number`. Unknown fields are errors
// too, so a misspelt key ("weightdecay") does not silently fall back to nothing.
import { z } from 'zod';
import { DEFAULT_AUGMENT, type AugmentConfig } from './augment.js';
import { VENDORS } from '../world/vendors.js';

export { z };

/** A type error's message: `text`, or 'missing' when the field is absent. */
const err = (text: string) => ({ error: (iss: { input?: unknown }) => (iss.input === undefined ? 'missing' : text) });

/** A number > 0 (learning rates, image sizes). */
export const positive = (): z.ZodNumber => z.number(err('expected a positive number')).positive({ error: 'expected a positive number' });
/** A number >= 0 (weights of loss terms, warmups, probabilities' upper bounds). */
export const nonNegative = (): z.ZodNumber => z.number(err('expected a number >= 0')).min(0, { error: 'expected a number >= 0' });
/** An integer >= 0 (steps, seeds, intervals). */
export const count = (): z.ZodNumber => z.number(err('expected an integer >= 0')).int({ error: 'expected an integer >= 0' }).min(0, { error: 'expected an integer >= 0' });
/** An integer >= 1 (batch sizes, widths, layers). */
export const positiveInt = (): z.ZodNumber => z.number(err('expected an integer >= 1')).int({ error: 'expected an integer >= 1' }).min(1, { error: 'expected an integer >= 1' });
/** A number in [0, 1] (fractions, probabilities). */
export const fraction = (): z.ZodNumber => z.number(err('expected a number in [0, 1]')).min(0, { error: 'expected a number in [0, 1]' }).max(1, { error: 'expected a number in [0, 1]' });
/** A file or folder path. */
export const path = (): z.ZodString => z.string(err('expected a path (a string)')).min(1, { error: 'expected a path (a string)' });
/** A non-empty name. */
export const name = (): z.ZodString => z.string(err('expected a non-empty string')).min(1, { error: 'expected a non-empty string' });
/** The dtype trained weights are written in. */
export const floatDtype = () => z.enum(['F32', 'F16', 'BF16'], err('expected "F32", "F16" or "BF16"'));
/** An emoji vendor. */
export const vendor = () => z.enum(VENDORS, err(`expected one of ${VENDORS.map((v) => `"${v}"`).join(', ')}`));
/** The config's `kind`, which must match the trainer. */
export const kind = <K extends string>(k: K) => z.literal(k, err(`expected "${k}"`));

/** dataset.concepts: a count or a list of catalogue names (absent: the whole catalogue). */
export const conceptsField = () =>
  z.union([positiveInt(), z.array(name()).min(1, { error: 'expected at least one concept' })], err('expected a count or a list of concept names'));

/** Image augmentation: any subset of the known fields (augment.ts DEFAULT_AUGMENT), each a number or a [lo, hi] pair. */
export const augment = (): z.ZodType<Partial<AugmentConfig>> =>
  z.strictObject(
    Object.fromEntries(
      Object.entries(DEFAULT_AUGMENT).map(([k, v]) => [
        k,
        (Array.isArray(v) ? z.tuple([z.number(), z.number()], err('expected a [lo, hi] pair of numbers')) : z.number(err('expected a number'))).optional(),
      ]),
    ),
  ) as unknown as z.ZodType<Partial<AugmentConfig>>;

/** The classifier / CLIP image backbone (models/classifier/backbone.ts BackboneConfig). */
export const backbone = () =>
  z.strictObject({
    size: positiveInt(),
    widths: z.array(positiveInt()).min(1, { error: 'expected at least one stage' }),
    depths: z.array(count()).min(1, { error: 'expected at least one stage' }),
    groups: positiveInt(),
  });

/**
 * The `train` section's fields every trainer has (steps, batch, AdamW lr, warmup, weight decay,
 * seed); a trainer extends it with its own (`schedule({ klWeight: nonNegative() })`).
 */
export const schedule = <S extends z.ZodRawShape>(extra: S) =>
  z.strictObject({ steps: count(), batch: positiveInt(), lr: positive(), warmup: count(), weightDecay: nonNegative(), seed: count(), ...extra });

/** `path: message` of a zod issue, the path dotted (`train.lr`, `backbone.widths.1`). */
function describe(issue: z.core.$ZodIssue): string {
  const at = issue.path.map(String).join('.');
  if (issue.code === 'unrecognized_keys') {
    const keys = issue.keys.map((k) => `"${k}"`).join(', ');
    return `${at ? `${at}: ` : ''}unknown field${issue.keys.length > 1 ? 's' : ''} ${keys}`;
  }
  // zod's own type messages (sections, arrays): "Invalid input: expected object, received undefined".
  const msg = /received undefined$/.test(issue.message) ? 'missing' : issue.message.replace(/^Invalid input: /, '');
  return `${at || '(top level)'}: ${msg}`;
}

/**
 * Validate a parsed config against its schema; throws `where: field: problem` for the first problem
 * (and says how many more there are). With `kind`, a config whose "kind" differs fails first, in
 * one plain line. Returns the config unchanged (no defaults are filled in).
 */
export function parseConfig<T>(schema: z.ZodType<T>, raw: unknown, where: string, kind?: string): T {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) throw new Error(`${where}: expected a JSON object`);
  // A config for another trainer: say that, rather than list every field that differs.
  if (kind !== undefined && (raw as { kind?: unknown }).kind !== kind) throw new Error(`${where}: kind must be "${kind}"`);
  const r = schema.safeParse(raw);
  if (r.success) return raw as T;
  const issues = r.error.issues;
  const more = issues.length > 1 ? ` (and ${issues.length - 1} more problem${issues.length > 2 ? 's' : ''})` : '';
  throw new Error(`${where}: ${describe(issues[0]!)}${more}`);
}
