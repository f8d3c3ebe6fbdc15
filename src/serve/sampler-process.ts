// The sampler process's entry: comparisons (comparisons.ts) in a child process of the server, so
// sampling, which holds a CPU for seconds at a time, never blocks the server's event loop (pages,
// refusals and erase progress streams keep flowing, and no request waits unparsed long enough to
// hit the server's header timeout). A process rather than a worker thread: the tensor engine's
// wasm backend stalled when run inside a worker thread beside the server.
import { Comparisons, type CompareRequest } from './comparisons.js';
import { HttpError } from './http.js';

export interface SamplerCall { id: number; req: CompareRequest }
export type SamplerReply = { id: number; ok: true; result: unknown } | { id: number; ok: false; status: number; message: string };

const comparisons = new Comparisons({ maxErased: 3, maxQueued: Number.MAX_SAFE_INTEGER });
process.on('message', (call: SamplerCall) => {
  comparisons.compare(call.req).then(
    (result) => process.send!({ id: call.id, ok: true, result } satisfies SamplerReply),
    (e: unknown) => process.send!({
      id: call.id, ok: false, status: e instanceof HttpError ? e.status : 500, message: (e as Error).message.split('\n')[0]!,
    } satisfies SamplerReply),
  );
});
// The server went away: nothing left to sample for.
process.on('disconnect', () => process.exit(0));
