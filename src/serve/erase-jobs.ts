// Erase runs started from the page: each is `mce erase` in a child process (training blocks a CPU
// for minutes, and a crash there must not take the server down), its stderr progress kept line by
// line for Server-Sent Events. The run folder is claimed with a non-recursive mkdir before the
// child starts: mkdir is atomic, so of two requests (or two servers) naming the same run exactly
// one wins, and no two writers ever share a run folder.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, rmdirSync } from 'node:fs';
import { join } from 'node:path';
import { HttpError } from './http.js';

export interface EraseRequest {
  name: string;
  concept: string;
  iters: number;
  steps?: number;
  prompts?: number;
  noises?: number;
  eval?: number;
  /** false: skip the before/after grid (--no-grid), the slowest part after training on a short run. */
  grid?: boolean;
  model?: string;
}

export type JobStatus = 'running' | 'done' | 'failed';

export interface JobState {
  name: string;
  concept: string;
  status: JobStatus;
  code: number | null;
  lines: string[];
}

type Listener = (event: { kind: 'line'; line: string } | { kind: 'end'; status: JobStatus; code: number | null }) => void;

/** Lines kept per job: the progress bar prints one per iteration. */
const KEEP_LINES = 1000;

export class EraseJobs {
  private jobs = new Map<string, { state: JobState; child: ChildProcess | null; listeners: Set<Listener> }>();

  /**
   * `cli`: the command that runs mce (e.g. [node, bin/mce.js]); `runsDir`: where run folders go;
   * `maxRunning`: jobs at once (more is 429).
   */
  constructor(private readonly opts: { cli: string[]; runsDir: string; maxRunning: number }) {}

  running(): number {
    return [...this.jobs.values()].filter((j) => j.state.status === 'running').length;
  }

  start(req: EraseRequest): JobState {
    if (this.running() >= this.opts.maxRunning) throw new HttpError(429, `${this.running()} erase run(s) already running; wait for it to finish`);
    const out = join(this.opts.runsDir, req.name);
    mkdirSync(this.opts.runsDir, { recursive: true });
    try {
      mkdirSync(out); // the claim: fails if the folder exists, whoever made it
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'EEXIST') throw new HttpError(409, `run '${req.name}' already exists`);
      throw e;
    }
    const args = ['erase', '--concept', req.concept, '--out', out, '--iters', String(req.iters)];
    if (req.model) args.push('--model', req.model);
    if (req.steps !== undefined) args.push('--steps', String(req.steps));
    if (req.prompts !== undefined) args.push('--prompts', String(req.prompts));
    if (req.noises !== undefined) args.push('--noises', String(req.noises));
    if (req.eval !== undefined) args.push('--eval', String(req.eval));
    if (req.grid === false) args.push('--no-grid');
    const [cmd, ...pre] = this.opts.cli;
    const state: JobState = { name: req.name, concept: req.concept, status: 'running', code: null, lines: [] };
    const job = { state, child: null as ChildProcess | null, listeners: new Set<Listener>() };
    this.jobs.set(req.name, job);
    const child = spawn(cmd!, [...pre, ...args], { stdio: ['ignore', 'ignore', 'pipe'] });
    job.child = child;
    let partial = '';
    const emit = (line: string): void => {
      if (!line.trim()) return;
      state.lines.push(line);
      if (state.lines.length > KEEP_LINES) state.lines.splice(0, state.lines.length - KEEP_LINES);
      for (const l of job.listeners) l({ kind: 'line', line });
    };
    child.stderr!.setEncoding('utf8');
    child.stderr!.on('data', (s: string) => {
      // Progress bars redraw with \r; each redraw is a line for the page.
      const parts = (partial + s).split(/\r\n|\r|\n/);
      partial = parts.pop()!;
      parts.forEach(emit);
    });
    const finish = (code: number | null): void => {
      if (state.status !== 'running') return;
      emit(partial);
      state.code = code;
      state.status = code === 0 ? 'done' : 'failed';
      // A run that failed before writing anything (unknown concept) gives its name back; rmdir
      // refuses a folder with files in it, so a partial run stays for `mce erase` to resume.
      if (state.status === 'failed') {
        try {
          rmdirSync(out);
        } catch { /* not empty: keep it */ }
      }
      job.child = null;
      for (const l of job.listeners) l({ kind: 'end', status: state.status, code });
      job.listeners.clear();
    };
    child.on('error', (e) => {
      emit(`mce serve: cannot start the erase process: ${e.message}`);
      finish(null);
    });
    child.on('close', (code) => finish(code));
    return state;
  }

  get(name: string): JobState | undefined {
    return this.jobs.get(name)?.state;
  }

  list(): JobState[] {
    return [...this.jobs.values()].map((j) => ({ ...j.state, lines: j.state.lines.slice(-1) }));
  }

  /** Call `listener` for each new line and once at the end; returns the unsubscribe function. */
  subscribe(name: string, listener: Listener): () => void {
    const job = this.jobs.get(name);
    if (!job) throw new HttpError(404, `no erase job '${name}'`);
    job.listeners.add(listener);
    return () => job.listeners.delete(listener);
  }

  /** Stop every running child (server shutdown). */
  stopAll(): void {
    for (const j of this.jobs.values()) j.child?.kill('SIGTERM');
  }
}
