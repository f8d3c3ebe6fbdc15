// A bounded load on a running lab server, from its own process (as a second client on loopback
// would): a shuffled mix of reads, comparisons, refused requests and several erase starts racing
// for the same new run name, CONCURRENCY at a time. Prints one JSON line: every reply's kind and
// status, and a hash of each comparison's images.
//   node --import tsx test/serve/load.ts BASE_URL RUN NEW_RUN
import { createHash } from 'node:crypto';
import { postJson, request, type Reply } from './client.js';

const [base, run, newRun] = process.argv.slice(2) as [string, string, string];
const CONCURRENCY = 8;

type Job = { kind: string; go: () => Promise<Reply> };
const jobs: Job[] = [];
const add = (n: number, kind: string, go: (i: number) => Promise<Reply>): void => {
  for (let i = 0; i < n; i++) jobs.push({ kind, go: () => go(i) });
};
add(16, 'list', () => request(base, '/api/runs'));
add(8, 'detail', () => request(base, `/api/runs/${run}`));
add(4, 'file', () => request(base, `/api/runs/${run}/files/val-00002.png`));
add(6, 'compare', (i) => postJson(base, '/api/compare', { run, prompt: 'a kitchen knife', seed: i % 2, steps: 2 }));
add(6, 'erase', () => postJson(base, '/api/erase', { name: newRun, concept: 'kitchen knife', iters: 1, steps: 2, prompts: 1, noises: 1, eval: 0, grid: false }));
add(6, 'traversal', (i) => request(base, [`/../../../etc/passwd`, `/%2e%2e/%2e%2e/etc/passwd`, `/api/runs/${run}/files/..%2f..%2f..%2fetc%2fpasswd.png`, `/api/runs/..%2f..%2fetc/files/x.png`, `/api/runs/${run}/files/%2e%2e%2fsummary.json`, `/assets/..%2f..%2f..%2fpackage.json`][i]!));
add(4, 'oversized', () => request(base, '/api/compare', { method: 'POST', body: 'x'.repeat(64 * 1024) }));
add(4, 'long-prompt', () => postJson(base, '/api/compare', { run, prompt: 'a'.repeat(5000), seed: 0 }));

// A fixed shuffle (LCG), so a failure replays in the same order.
let s = 12345;
for (let i = jobs.length - 1; i > 0; i--) {
  s = (Math.imul(s, 1103515245) + 12345) >>> 0;
  const j = s % (i + 1);
  [jobs[i], jobs[j]] = [jobs[j]!, jobs[i]!];
}

const results: { kind: string; status: number; body: string; images?: string }[] = [];
let next = 0;
async function worker(): Promise<void> {
  while (next < jobs.length) {
    const job = jobs[next++]!;
    const r = await job.go();
    const text = r.body.toString('utf8');
    let images: string | undefined;
    if (job.kind === 'compare' && r.status === 200) {
      const c = r.json<{ seed: number; original: { image: string }; erased: { image: string } }>();
      images = `${c.seed}:` + createHash('sha256').update(c.original.image).update(c.erased.image).digest('hex');
    }
    results.push({ kind: job.kind, status: r.status, body: r.headers['content-type']?.toString().startsWith('application/json') ? text.slice(0, 200) : `<${r.body.length} bytes>`, ...(images ? { images } : {}) });
  }
}
await Promise.all(Array.from({ length: CONCURRENCY }, worker));
process.stdout.write(JSON.stringify(results) + '\n');
