/** A small HTTP client for the tests (undici, which lets a test set the Host header). */
import { connect } from 'node:net';
import { Agent, request } from 'undici';

export const agent = new Agent({ connections: 64, keepAliveTimeout: 10_000 });

export interface Reply {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: string;
}

export async function send(
  base: string,
  opts: {
    host?: string;
    path?: string;
    method?: string;
    headers?: Record<string, string>;
    body?: string;
  } = {},
): Promise<Reply> {
  const headers: Record<string, string> = { ...(opts.headers ?? {}) };
  if (opts.host) headers.host = opts.host;
  const res = await request(`${base}${opts.path ?? '/'}`, {
    method: (opts.method ?? 'GET') as never,
    headers,
    body: opts.body ?? null,
    dispatcher: agent,
  });
  return { status: res.statusCode, headers: res.headers, body: await res.body.text() };
}

export function header(r: Reply, name: string): string | undefined {
  const v = r.headers[name];
  return Array.isArray(v) ? v.join(', ') : v;
}

/** Writes raw bytes to the server at `base` and returns all it sends back until it closes. */
export function rawExchange(base: string, bytes: string): Promise<string> {
  return new Promise((resolve) => {
    const socket = connect(Number(new URL(base).port), '127.0.0.1', () => socket.write(bytes));
    let data = '';
    socket.on('data', (d) => {
      data += d;
    });
    socket.on('close', () => resolve(data));
  });
}

/**
 * Waits until each proxy routes its request to an upstream whose key starts with `upstream` (its
 * `x-switchyard-upstream` answer header; '' for any): the proxy has its configuration. Fails after `ms`,
 * naming the host, the last answer and `log()`.
 */
export async function untilRouted(
  routes: {
    base: string;
    request: { host: string; method?: string; headers?: Record<string, string> };
    upstream: string;
  }[],
  log: () => string,
  ms = 30_000,
): Promise<void> {
  const until = Date.now() + ms;
  for (const { base, request: req, upstream } of routes)
    for (;;) {
      const r = await send(base, req).catch(() => undefined);
      const got = r && header(r, 'x-switchyard-upstream');
      if (got?.startsWith(upstream)) break;
      if (Date.now() > until)
        throw new Error(`${req.host} was never routed (last: ${r?.status} ${r?.body})\n${log()}`);
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
}
