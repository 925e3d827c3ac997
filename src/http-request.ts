// A minimal fetch over node:http/https for the few registry calls the action makes. Node's global fetch loads
// undici on first use (~40 ms on this path); these calls need none of it.
import http from 'node:http';
import https from 'node:https';

export interface HttpResponse {
  readonly status: number;
  readonly ok: boolean;
  readonly headers: { get(name: string): string | null };
  json(): Promise<unknown>;
}

export type HttpFetch = (
  url: string | URL,
  init?: { method?: string; headers?: Record<string, string> },
) => Promise<HttpResponse>;

export const httpFetch: HttpFetch = (url, init = {}) =>
  new Promise((resolve, reject) => {
    const target = new URL(url);
    const lib = target.protocol === 'https:' ? https : http;
    const req = lib.request(target, { method: init.method ?? 'GET', headers: init.headers, timeout: 30_000 }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('error', reject);
      res.on('end', () => {
        const status = res.statusCode ?? 0;
        resolve({
          status,
          ok: status >= 200 && status < 300,
          headers: {
            get: (name) => {
              const v = res.headers[name.toLowerCase()];
              return v === undefined ? null : Array.isArray(v) ? v.join(', ') : v;
            },
          },
          json: async () => JSON.parse(Buffer.concat(chunks).toString('utf8')),
        });
      });
    });
    req.on('timeout', () =>
      req.destroy(new Error(`timed out: ${init.method ?? 'GET'} ${target.origin}${target.pathname}`)),
    );
    req.on('error', reject);
    req.end();
  });
