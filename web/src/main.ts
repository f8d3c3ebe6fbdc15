// The mce lab page: run browser, original vs erased comparison with a trajectory scrubber, the
// run's plots and tables, and an erase form whose progress streams in over Server-Sent Events.
import './style.css';
import { api, type BenchListing, type Comparison, type RunDetail, type RunListing } from './api.js';
import { showErasureBench } from './bench.js';
import { linePlot, sparsityPlot } from './plots.js';
import { fillTable, fixed, pct } from './tables.js';

const $ = <T extends HTMLElement = HTMLElement>(id: string): T => document.getElementById(id) as T;

let current: RunDetail | null = null;
let comparison: Comparison | null = null;

async function refreshRuns(select?: string): Promise<void> {
  const { runs, bench, erasure } = await api.runs();
  const list = $('runs');
  list.replaceChildren();
  if (runs.length === 0) list.appendChild(document.createElement('li')).textContent = 'no erase runs yet';
  for (const r of runs) {
    const li = list.appendChild(document.createElement('li'));
    const b = li.appendChild(document.createElement('button'));
    b.className = 'run';
    b.dataset['name'] = r.name;
    b.innerHTML = `<strong></strong><span></span>`;
    b.querySelector('strong')!.textContent = r.name;
    b.querySelector('span')!.textContent = runLine(r);
    b.addEventListener('click', () => void openRun(r.name));
  }
  showBench(bench);
  $('erasure-bench').hidden = erasure.length === 0;
  showErasureBench($('erasure-bench-folders'), erasure);
  const want = select ?? current?.name ?? runs[0]?.name;
  if (want && runs.some((r) => r.name === want)) await openRun(want);
}

function runLine(r: RunListing): string {
  const det = r.detection ? `, detection ${pct(r.detection.before)} -> ${pct(r.detection.after)}` : '';
  return `${r.concepts.join(', ')} on ${r.model}: ${r.iters ?? '?'} iters, ${pct(r.pruned) ?? '?'} pruned${det}`;
}

async function openRun(name: string): Promise<void> {
  const run = await api.run(name);
  current = run;
  comparison = null;
  for (const b of document.querySelectorAll<HTMLButtonElement>('button.run')) b.classList.toggle('active', b.dataset['name'] === name);
  $('empty').hidden = true;
  $('run').hidden = false;
  const s = run.summary;
  $('run-title').textContent = `${name}: erase ${(s.concepts ?? []).map((c) => c.name).join(', ')}`;
  const facts: [string, string | number | undefined | null][] = [
    ['model', `${s.model} (${s.family})`],
    ['iterations', s.settings?.iters],
    ['target / objective', `${s.settings?.target} / ${s.settings?.objective}`],
    ['beta', s.settings?.beta],
    ['sampler', `${s.settings?.sampler?.steps} steps, cfg ${s.settings?.sampler?.cfg}`],
    ['pruned', pct(s.sparsity?.total?.fraction)],
    ['time', s.seconds?.total !== undefined ? `${Math.round(s.seconds.total)} s` : null],
  ];
  $('run-facts').replaceChildren(...facts.map(([k, v]) => {
    const d = document.createElement('div');
    d.innerHTML = '<b></b> <span></span>';
    d.querySelector('b')!.textContent = k;
    d.querySelector('span')!.textContent = v === undefined || v === null ? '–' : String(v);
    return d;
  }));
  const prompt = $<HTMLInputElement>('prompt');
  prompt.value = s.prompts?.erase?.[0]?.prompt ?? (s.concepts?.[0]?.name ?? '');
  $<HTMLInputElement>('steps').placeholder = String(s.settings?.sampler?.steps ?? '');
  for (const id of ['original', 'erased']) $(id).querySelector('img')?.remove();
  $('trajectory').hidden = true;
  $('compare-status').textContent = '';
  showPlots(run);
  showTables(run);
  $('run-images').replaceChildren(...run.images.map((f) => {
    const fig = document.createElement('figure');
    const img = fig.appendChild(document.createElement('img'));
    img.src = api.fileUrl(name, f);
    img.alt = f;
    fig.appendChild(document.createElement('figcaption')).textContent = f;
    return fig;
  }));
}

function showPlots(run: RunDetail): void {
  sparsityPlot($('plot-sparsity'), run.layers);
  const div = run.summary.trajectoryDivergence ?? {};
  const n = Math.max(div.erase?.length ?? 0, div.preserve?.length ?? 0);
  linePlot($('plot-divergence'), 'state t (x_0 = noise .. x_N = image)', [...Array(n).keys()], [
    { label: 'erase prompts', y: div.erase ?? [] },
    { label: 'preserve prompts', y: div.preserve ?? [] },
  ]);
  const curve = run.summary.loss?.curve ?? [];
  linePlot($('plot-loss'), 'iteration', curve.map((c) => c[0]!), [
    { label: 'loss', y: curve.map((c) => c[1]!) },
    { label: 'erase', y: curve.map((c) => c[2]!) },
    { label: 'preserve', y: curve.map((c) => c[3]!) },
  ]);
}

function showTables(run: RunDetail): void {
  const ev = run.summary.evaluation ?? {};
  const groups = ['erase', 'neighbours', 'others'].filter((g) => typeof ev[g] === 'object' && ev[g] !== null);
  fillTable($('eval-table'), ['prompts', 'n', 'detection / accuracy before', 'after', 'SSIM vs original', 'CLIP score'], groups.map((g) => {
    const r = ev[g] as { prompts?: unknown[]; before?: number; after?: number; ssim?: number; clip?: number | null };
    return [g, r.prompts?.length, pct(r.before), pct(r.after), fixed(r.ssim), fixed(r.clip, 1)];
  }));
  $('eval-notes').textContent = groups.length ? [...Object.values(ev.metrics ?? {}), ...(ev.notes ?? [])].join(' · ') : 'this run has no held-out evaluation (erased with --eval 0)';
  fillTable($('acceptance-table'), ['bar', 'value', 'met'], (run.summary.acceptance ?? []).map((a) => [a.bar, fixed(a.value), a.met ? 'yes' : 'no']));
  fillTable($('sparsity-table'), ['layer / group', 'units', 'pruned', 'fraction'], [
    ...run.layers.map((l) => [l.name, l.units, l.pruned, pct(l.fraction)]),
    ...(run.summary.sparsity?.groups ?? []).map((g) => [`group ${(g as unknown as { group: string }).group}`, g.units, g.pruned, pct(g.fraction)]),
  ]);
}

function showBench(bench: BenchListing[]): void {
  $('bench').hidden = bench.length === 0;
  $('bench-tables').replaceChildren(...bench.map((b) => {
    const wrap = document.createElement('div');
    wrap.appendChild(document.createElement('h4')).textContent = b.file;
    const t = wrap.appendChild(document.createElement('table'));
    fillTable(t, ['workload', 'backend', 'ours ms', 'torch ms', 'ratio'], b.records.map((r) => [String(r['name']), String(r['backend'] ?? ''), fixed(r['ours_ms'], 1), fixed(r['torch_ms'], 1), fixed(r['ratio'], 2)]));
    return wrap;
  }));
}

function setImage(fig: HTMLElement, src: string, alt: string): void {
  let img = fig.querySelector('img');
  if (!img) img = fig.insertBefore(document.createElement('img'), fig.firstChild);
  img.src = src;
  img.alt = alt;
}

async function generate(ev: Event): Promise<void> {
  ev.preventDefault();
  if (!current) return;
  const status = $('compare-status');
  const button = $<HTMLButtonElement>('generate');
  const stepsText = $<HTMLInputElement>('steps').value;
  button.disabled = true;
  status.textContent = 'sampling both models…';
  const t0 = performance.now();
  try {
    comparison = await api.compare({
      run: current.name,
      prompt: $<HTMLInputElement>('prompt').value,
      seed: Number($<HTMLInputElement>('seed').value || 0),
      ...(stepsText ? { steps: Number(stepsText) } : {}),
      trajectory: true,
    });
    setImage($('original'), comparison.original.image, 'original');
    setImage($('erased'), comparison.erased.image, 'erased');
    const scrub = $<HTMLInputElement>('scrub');
    scrub.max = String(comparison.steps - 1);
    scrub.value = scrub.max;
    showStep();
    $('trajectory').hidden = false;
    const unread = comparison.unreadWords.map((w) => `"${w}"`).join(', ');
    const note = unread ? ` · ${unread}: in none of the model's training captions, so its text encoder has never read ${comparison.unreadWords.length === 1 ? 'it' : 'them'}` : '';
    status.textContent = `${comparison.steps} steps, seed ${comparison.seed}, ${((performance.now() - t0) / 1000).toFixed(1)} s${note}`;
  } catch (e) {
    status.textContent = `error: ${(e as Error).message}`;
  } finally {
    button.disabled = false;
  }
}

function showStep(): void {
  if (!comparison) return;
  const k = Number($<HTMLInputElement>('scrub').value);
  const a = comparison.original.trajectory?.[k];
  const b = comparison.erased.trajectory?.[k];
  if (a) $('traj-original').querySelector('img')!.src = a;
  if (b) $('traj-erased').querySelector('img')!.src = b;
  const t = comparison.timesteps;
  $('scrub-label').textContent = `${k + 1} / ${comparison.steps} (t ${fixed(t[k], 3)} -> ${fixed(t[k + 1], 3)})`;
}

async function startErase(ev: Event): Promise<void> {
  ev.preventDefault();
  const name = $<HTMLInputElement>('erase-name').value.trim();
  const steps = $<HTMLInputElement>('erase-steps').value;
  const status = $('erase-status');
  const log = $('erase-log');
  const bar = $<HTMLProgressElement>('erase-progress');
  log.textContent = '';
  try {
    const job = await api.startErase({
      name,
      concept: $<HTMLInputElement>('erase-concept').value.trim(),
      iters: Number($<HTMLInputElement>('erase-iters').value),
      ...(steps ? { steps: Number(steps) } : {}),
    });
    status.textContent = `${job.name}: running`;
    bar.hidden = false;
    bar.value = 0;
    const source = new EventSource(job.events);
    source.addEventListener('line', (e) => {
      const line = JSON.parse((e as MessageEvent<string>).data) as string;
      log.textContent += line + '\n';
      log.scrollTop = log.scrollHeight;
      // The trainer's progress bar: "mce 3/150 2% | ...".
      const m = /^mce (\d+)\/(\d+) /.exec(line);
      if (m) bar.value = Number(m[1]) / Number(m[2]);
    });
    source.addEventListener('end', (e) => {
      source.close();
      const end = JSON.parse((e as MessageEvent<string>).data) as { status: string; code: number | null };
      status.textContent = `${job.name}: ${end.status}${end.code ? ` (exit ${end.code})` : ''}`;
      if (end.status === 'done') {
        bar.value = 1;
        void refreshRuns(job.name);
      }
    });
  } catch (e) {
    status.textContent = `error: ${(e as Error).message}`;
  }
}

$('compare-form').addEventListener('submit', (e) => void generate(e));
$('scrub').addEventListener('input', showStep);
$('erase-form').addEventListener('submit', (e) => void startErase(e));
void refreshRuns().catch((e: unknown) => {
  $('empty').textContent = `cannot reach the lab server: ${(e as Error).message}`;
});
