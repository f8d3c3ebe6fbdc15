// The server's side of the sampler process (sampler-process.ts): queues comparisons to it, at most
// `maxQueued` at once (more is 503, so a burst of requests cannot pile up minutes of work), and
// starts a fresh process if one dies, failing only the requests it held.
import { fork, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import type { CompareRequest, Comparison } from './comparisons.js';
import { HttpError } from './http.js';
import type { SamplerCall, SamplerReply } from './sampler-process.js';

// The entry beside this file: .js in dist/, the .ts source under tsx (tests), which the child
// loads through the --import hook it inherits in execArgv.
const ENTRY = fileURLToPath(new URL(import.meta.url.endsWith('.ts') ? './sampler-process.ts' : './sampler-process.js', import.meta.url));

export class Sampler {
  private child: ChildProcess | null = null;
  private pending = new Map<number, { done: (c: Comparison) => void; fail: (e: Error) => void }>();
  private nextId = 0;

  constructor(private readonly opts: { maxQueued: number }) {}

  private start(): ChildProcess {
    const c = fork(ENTRY, [], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
    c.on('message', (r: SamplerReply) => {
      const p = this.pending.get(r.id);
      if (!p) return;
      this.pending.delete(r.id);
      if (r.ok) p.done(r.result as Comparison);
      else p.fail(new HttpError(r.status, r.message));
    });
    const lost = (why: string): void => {
      if (this.child !== c) return;
      this.child = null;
      for (const p of this.pending.values()) p.fail(new HttpError(500, `the sampler stopped (${why})`));
      this.pending.clear();
    };
    c.on('error', (e) => lost(e.message));
    c.on('exit', (code, signal) => lost(signal ?? `exit ${code}`));
    return c;
  }

  compare(req: CompareRequest): Promise<Comparison> {
    if (this.pending.size >= this.opts.maxQueued) return Promise.reject(new HttpError(503, `busy: ${this.pending.size} comparisons queued, try again`));
    this.child ??= this.start();
    const id = this.nextId++;
    return new Promise((done, fail) => {
      this.pending.set(id, { done, fail });
      this.child!.send({ id, req } satisfies SamplerCall);
    });
  }

  close(): Promise<void> {
    const c = this.child;
    this.child = null;
    for (const p of this.pending.values()) p.fail(new HttpError(503, 'the server is stopping'));
    this.pending.clear();
    if (!c || c.exitCode !== null) return Promise.resolve();
    return new Promise((done) => {
      c.once('exit', () => done());
      c.kill('SIGTERM');
    });
  }
}
