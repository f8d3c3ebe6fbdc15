// A bare HTTP client for the lab tests: it sends the path exactly as given (fetch would normalise
// '/../' away before the server could refuse it) and can send bodies without a Content-Length.
import { request as httpRequest } from 'node:http';

export interface Reply {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: Buffer;
  json<T = Record<string, unknown>>(): T;
}

export interface RequestOptions {
  method?: string;
  body?: string | Buffer;
  /** Send the body chunked (no Content-Length). */
  chunked?: boolean;
  headers?: Record<string, string>;
}

export function request(base: string, path: string, opts: RequestOptions = {}): Promise<Reply> {
  const u = new URL(base);
  return new Promise((done, fail) => {
    const req = httpRequest({ host: u.hostname, port: u.port, path, method: opts.method ?? 'GET', headers: { ...opts.headers } }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        const body = Buffer.concat(chunks);
        done({ status: res.statusCode ?? 0, headers: res.headers, body, json: <T>() => JSON.parse(body.toString('utf8')) as T });
      });
      res.on('error', fail);
    });
    // A server that refuses a large body early may close before it is all sent: the reply still counts.
    req.on('error', fail);
    if (opts.body !== undefined) {
      if (!opts.chunked) req.setHeader('content-length', Buffer.byteLength(opts.body));
      req.end(opts.body);
    } else {
      req.end();
    }
  });
}

export const postJson = (base: string, path: string, body: unknown): Promise<Reply> =>
  request(base, path, { method: 'POST', body: JSON.stringify(body), headers: { 'content-type': 'application/json' } });
