// The small HTTP vocabulary the lab server speaks: an error that carries its status code, JSON
// replies, and a JSON body reader that refuses oversized requests before buffering them.
import type { IncomingMessage, ServerResponse } from 'node:http';

/** A request the server refuses: `status` goes on the wire, `message` in the JSON body. */
export class HttpError extends Error {
  constructor(readonly status: number, message: string) {
    super(message);
  }
}

export function sendJson(res: ServerResponse, status: number, body: unknown): void {
  const data = Buffer.from(JSON.stringify(body));
  res.writeHead(status, { 'content-type': 'application/json; charset=utf-8', 'content-length': data.length, 'cache-control': 'no-store' });
  res.end(data);
}

/** Bytes of an oversized body the server still reads (and drops) so the client can read the 413. */
const DRAIN_BYTES = 8 * 1024 * 1024;

/**
 * The request body parsed as JSON, at most `maxBytes` long. A declared Content-Length over the
 * limit is refused before any byte is kept; a body that grows past it (chunked) is refused as
 * soon as it does. Either way the rest is read and dropped, up to DRAIN_BYTES, then the
 * connection is cut: closing a socket with unread data resets it, and the client would see a
 * reset instead of the 413.
 */
export function readJsonBody(req: IncomingMessage, maxBytes: number): Promise<unknown> {
  return new Promise((done, fail) => {
    const chunks: Buffer[] = [];
    let size = 0;
    let refused = false;
    const refuse = (): void => {
      refused = true;
      chunks.length = 0;
      fail(new HttpError(413, `request body over ${maxBytes} bytes`));
    };
    if (Number(req.headers['content-length'] ?? NaN) > maxBytes) refuse();
    req.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (refused) {
        if (size > DRAIN_BYTES) req.destroy();
        return;
      }
      if (size > maxBytes) return refuse();
      chunks.push(chunk);
    });
    req.on('error', (e) => fail(e));
    req.on('end', () => {
      if (refused) return;
      try {
        done(JSON.parse(Buffer.concat(chunks).toString('utf8')) as unknown);
      } catch {
        fail(new HttpError(400, 'request body is not JSON'));
      }
    });
  });
}
