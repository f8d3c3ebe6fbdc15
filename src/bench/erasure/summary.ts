// The benchmark's numbers per (model, method), as a plain record: the markdown table (table.ts) and
// the lab's plots (mce serve) both draw from it, so they can never disagree. Values are means over
// the cases whose metrics unit finished, so a partial run compares like with like; null means the
// unit did not run or failed. No imports: the lab page's type check reads this file.

type Num = number | null;

/** The fields of a results row that the summary reads (store.ts's BenchRow has them all). */
export interface SummaryRow {
  unit: string;
  kind: string;
  model: string;
  method: string;
  case: string;
  attack?: string;
  status: 'ok' | 'error';
  seconds: number;
  data: Record<string, unknown>;
  error?: string;
}

export interface MethodSummary {
  method: string;
  /** Detection rate of the target on held-out erase prompts: original -> erased. */
  detection: { before: Num; after: Num };
  clip: Num;
  ssim: Num;
  lpips: Num;
  fid: Num;
  kid: Num;
  neighbours: Num;
  others: Num;
  /** Attack success rate per attack. */
  asr: Record<string, Num>;
  eraseSeconds: Num;
  /** Largest peak RSS of the erase and metrics units (0 when none was recorded). */
  peakRssMiB: number;
  /** Fraction of the model's parameters the erasure changed. */
  changed: Num;
  /** Per case: detection before -> after, preserve SSIM and each attack's success; null where the case's metrics unit has not finished. */
  cases: Record<string, { before: Num; after: Num; ssim: Num; asr: Record<string, Num> } | null>;
}

export interface BenchSummary {
  models: { model: string; methods: MethodSummary[] }[];
  cases: string[];
  attacks: string[];
  failed: { unit: string; error: string }[];
}

const mean = (xs: Num[]): Num => {
  const v = xs.filter((x): x is number => x !== null && Number.isFinite(x));
  return v.length ? v.reduce((a, b) => a + b, 0) / v.length : null;
};

const get = (o: unknown, path: string): Num => {
  let v: unknown = o;
  for (const k of path.split('.')) v = v && typeof v === 'object' ? (v as Record<string, unknown>)[k] : undefined;
  return typeof v === 'number' ? v : null;
};

/** `methods` in display order (the original model first); models, cases and attacks as the run's settings give them. */
export function benchSummary(
  rows: readonly SummaryRow[],
  s: { models: readonly string[]; methods: readonly string[]; cases: readonly string[]; attacks: readonly string[] },
): BenchSummary {
  const ok = rows.filter((r) => r.status === 'ok');
  const models: BenchSummary['models'] = [];
  for (const model of s.models) {
    const measured = (method: string): Set<string> => new Set(ok.filter((r) => r.model === model && r.method === method && r.kind === 'metrics').map((r) => r.case));
    const of = (method: string, kind: string, attack?: string): SummaryRow[] => {
      const cases = measured(method);
      return ok.filter((r) => r.model === model && r.method === method && r.kind === kind && cases.has(r.case) && (attack === undefined || r.attack === attack));
    };
    const methods: MethodSummary[] = [];
    for (const m of s.methods.filter((m) => ok.some((r) => r.model === model && r.method === m))) {
      const mt = of(m, 'metrics').map((r) => r.data);
      const er = of(m, 'erase');
      const metric = (path: string): Num => mean(mt.map((d) => get(d, path)));
      const changed = mean(er.map((r) => {
        const c = r.data['changed'] as { params?: number; totalParams?: number } | undefined;
        // The original model and inference wrappers (SLD, FlowEdit) change no weight.
        return c && c.totalParams ? (c.params ?? 0) / c.totalParams : m === 'none' || r.data['kind'] === 'wrapper' ? 0 : null;
      }));
      const cases: MethodSummary['cases'] = {};
      for (const c of s.cases) {
        const d = ok.find((r) => r.model === model && r.method === m && r.case === c && r.kind === 'metrics')?.data;
        const asr = (a: string): Num => get(ok.find((r) => r.model === model && r.method === m && r.case === c && r.kind === 'attack' && r.attack === a)?.data, 'asr');
        cases[c] = d ? { before: get(d, 'erase.before'), after: get(d, 'erase.after'), ssim: get(d, 'preserve.ssim'), asr: Object.fromEntries(s.attacks.map((a) => [a, asr(a)])) } : null;
      }
      methods.push({
        method: m,
        detection: { before: metric('erase.before'), after: metric('erase.after') },
        clip: metric('erase.clip.after'),
        ssim: metric('preserve.ssim'),
        lpips: metric('preserve.featureDistance'),
        fid: metric('preserve.fid.erased'),
        kid: metric('preserve.kid.erased'),
        neighbours: metric('neighbours.after'),
        others: metric('others.after'),
        asr: Object.fromEntries(s.attacks.map((a) => [a, mean(of(m, 'attack', a).map((r) => get(r.data, 'asr')))])),
        eraseSeconds: mean(er.map((r) => r.seconds)),
        peakRssMiB: Math.max(0, ...[...er, ...of(m, 'metrics')].map((r) => get(r.data, 'peakRssMiB') ?? 0)),
        changed,
        cases,
      });
    }
    if (methods.length) models.push({ model, methods });
  }
  const failed = rows.filter((r) => r.status === 'error').map((r) => ({ unit: r.unit, error: r.error ?? '' }));
  return { models, cases: [...s.cases], attacks: [...s.attacks], failed };
}
