// The `mce serve` web lab: a JSON API over the runs folder (list runs, one run's summary and
// images, erasure benchmark summaries and grids, original vs erased comparisons with trajectories, erase runs started from the page with
// their progress as Server-Sent Events) and the built page from web/dist. Listens on 127.0.0.1
// unless another host is asked for: the API starts processes and reads local files.
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { existsSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { EraseJobs } from './erase-jobs.js';
import { HttpError, readJsonBody, sendJson } from './http.js';
import { LIMITS, asObject, integer, optionalInteger, runName, text } from './limits.js';
import { erasureBenchDir, listRuns, readRun, runDir } from './runs.js';
import { Sampler } from './sampler.js';
import { readInside } from './static-files.js';

/** The built page (`npm run build:web`): web/dist beside src/ or dist/. */
export const WEB_DIST = fileURLToPath(new URL('../../web/dist', import.meta.url));
/** The mce CLI that erase jobs run: this package's bin. */
const MCE_BIN = fileURLToPath(new URL('../../bin/mce.js', import.meta.url));

export interface LabOptions {
  runsDir: string;
  host?: string;
  port?: number;
  /** Folder of the built page (default web/dist). */
  webDir?: string;
  /** Command that runs mce for erase jobs (default: this node on bin/mce.js). */
  cli?: string[];
  /** Erase runs at once (default LIMITS.eraseJobs). */
  maxEraseJobs?: number;
}

export interface Lab {
  server: Server;
  /** http://host:port/ once listening. */
  url: string;
  close(): Promise<void>;
}

function route(req: IncomingMessage): { method: string; parts: string[]; path: string } {
  // Not `new URL(req.url, base)`: it reads '//x/y' as host x.
  const path = (req.url ?? '/').split(/[?#]/)[0]!;
  return { method: req.method ?? 'GET', path, parts: path.split('/').filter(Boolean) };
}

export async function startLab(opts: LabOptions): Promise<Lab> {
  const runsDir = resolve(opts.runsDir);
  const webDir = opts.webDir ?? WEB_DIST;
  const sampler = new Sampler({ maxQueued: 8 });
  const jobs = new EraseJobs({ cli: opts.cli ?? [process.execPath, MCE_BIN], runsDir, maxRunning: opts.maxEraseJobs ?? LIMITS.eraseJobs });
  const streams = new Set<ServerResponse>();

  async function api(req: IncomingMessage, res: ServerResponse, method: string, parts: string[]): Promise<void> {
    const [, what, name, sub, file] = parts; // 'api', what, ...
    if (method === 'GET' && what === 'runs' && name === undefined) return sendJson(res, 200, listRuns(runsDir));
    if (method === 'GET' && what === 'runs' && name !== undefined && sub === undefined) {
      const r = readRun(runsDir, name);
      return sendJson(res, 200, { name: r.name, summary: r.summary, layers: r.layers, images: r.images });
    }
    if (method === 'GET' && what === 'runs' && name !== undefined && sub === 'files' && file !== undefined && parts.length === 5) {
      return sendPng(res, runDir(runsDir, name), file);
    }
    if (method === 'GET' && what === 'bench' && name !== undefined && sub === 'grids' && file !== undefined && parts.length === 5) {
      return sendPng(res, join(erasureBenchDir(runsDir, name), 'grids'), file);
    }
    if (method === 'POST' && what === 'compare') {
      const body = asObject(await readJsonBody(req, LIMITS.bodyBytes));
      const run = readRun(runsDir, runName(body['run']));
      const cmp = await sampler.compare({
        dir: run.dir,
        model: String(run.summary['model']),
        prompt: text(body, 'prompt', LIMITS.promptChars),
        seed: integer(body, 'seed', 0, 2 ** 32 - 1, 0),
        steps: optionalInteger(body, 'steps', 1, LIMITS.steps),
        trajectory: body['trajectory'] === true,
      });
      return sendJson(res, 200, cmp);
    }
    if (method === 'POST' && what === 'erase') {
      const body = asObject(await readJsonBody(req, LIMITS.bodyBytes));
      const job = jobs.start({
        name: runName(body['name']),
        concept: text(body, 'concept', LIMITS.promptChars),
        iters: integer(body, 'iters', 1, LIMITS.iters, 150),
        steps: optionalInteger(body, 'steps', 1, LIMITS.steps),
        prompts: optionalInteger(body, 'prompts', 1, 100),
        noises: optionalInteger(body, 'noises', 1, 8),
        eval: optionalInteger(body, 'eval', 0, 100),
        grid: body['grid'] !== false,
      });
      return sendJson(res, 202, { name: job.name, status: job.status, events: `/api/jobs/${job.name}/events` });
    }
    if (method === 'GET' && what === 'jobs' && name === undefined) return sendJson(res, 200, { jobs: jobs.list() });
    if (method === 'GET' && what === 'jobs' && name !== undefined && sub === undefined) {
      const j = jobs.get(name);
      if (!j) throw new HttpError(404, `no erase job '${name}'`);
      return sendJson(res, 200, j);
    }
    if (method === 'GET' && what === 'jobs' && name !== undefined && sub === 'events') return events(res, name);
    throw new HttpError(method === 'GET' || method === 'POST' ? 404 : 405, `no ${method} ${parts.join('/')}`);
  }

  /** Server-Sent Events: every line so far, then each new one, then `end` with the exit code. */
  function events(res: ServerResponse, name: string): void {
    const job = jobs.get(name);
    if (!job) throw new HttpError(404, `no erase job '${name}'`);
    res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-store', connection: 'keep-alive' });
    const send = (event: string, data: unknown): boolean => res.write(`event: ${event}\ndata: ${JSON.stringify(data)}\n\n`);
    for (const line of job.lines) send('line', line);
    if (job.status !== 'running') {
      send('end', { status: job.status, code: job.code });
      return void res.end();
    }
    streams.add(res);
    const off = jobs.subscribe(name, (e) => {
      if (e.kind === 'line') send('line', e.line);
      else {
        send('end', { status: e.status, code: e.code });
        res.end();
      }
    });
    res.on('close', () => {
      off();
      streams.delete(res);
    });
  }

  async function sendPng(res: ServerResponse, dir: string, file: string): Promise<void> {
    if (!file.toLowerCase().endsWith('.png')) throw new HttpError(404, 'only PNG files are served from a run');
    const { data, type } = await readInside(dir, file);
    res.writeHead(200, { 'content-type': type, 'content-length': data.length });
    res.end(data);
  }

  async function page(res: ServerResponse, path: string): Promise<void> {
    if (!existsSync(webDir)) throw new HttpError(503, `the page is not built (${webDir} is missing): run npm run build:web`);
    const { data, type } = await readInside(webDir, path === '/' ? '/index.html' : path);
    res.writeHead(200, { 'content-type': type, 'content-length': data.length });
    res.end(data);
  }

  const server = createServer((req, res) => {
    const { method, parts, path } = route(req);
    const work = parts[0] === 'api' ? api(req, res, method, parts) : method === 'GET' || method === 'HEAD' ? page(res, path) : Promise.reject(new HttpError(405, `${method} not allowed`));
    work.catch((e: unknown) => {
      const status = e instanceof HttpError ? e.status : 500;
      if (status === 500) process.stderr.write(`mce serve: ${method} ${path}: ${(e as Error).stack ?? String(e)}\n`);
      if (res.headersSent) return void res.destroy();
      // A 413 goes out while the body may still be coming: readJsonBody reads and drops the rest,
      // so the connection stays usable (closing it with unread data would reset it under the reply).
      sendJson(res, status, { error: (e as Error).message });
    });
  });
  server.requestTimeout = 60_000;
  server.headersTimeout = 10_000;

  const host = opts.host ?? '127.0.0.1';
  await new Promise<void>((done, fail) => {
    server.once('error', fail);
    server.listen(opts.port ?? 0, host, () => done());
  });
  const addr = server.address() as AddressInfo;
  const shown = addr.family === 'IPv6' ? `[${addr.address}]` : addr.address;
  return {
    server,
    url: `http://${shown}:${addr.port}/`,
    close: async () => {
      jobs.stopAll();
      for (const s of streams) s.end();
      const closed = new Promise<void>((done) => server.close(() => done()));
      server.closeAllConnections();
      await closed;
      await sampler.close();
    },
  };
}
