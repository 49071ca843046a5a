/**
 * The proxy hot path on undici: a keep-alive Pool per upstream origin, bodies streamed both ways,
 * hop-by-hop headers dropped, `x-forwarded-*` added, the original Host kept (as Envoy does), and
 * the policy's timeout and retries. As Envoy, any method is retried, a body included: a body of
 * known length up to RETRY_BODY_LIMIT is read whole first and sent again on each try (Envoy keeps
 * one in its buffer up to the same 1 MiB and stops retrying past it); a larger or chunked one
 * streams through and is not retried (tried against Envoy in test/mesh-routing.test.ts).
 * undici's stream API was chosen over http-proxy (and over undici's request API) by measurement:
 * load-tests/README.md.
 */

import { EventEmitter } from 'node:events';
import type { IncomingHttpHeaders, IncomingMessage, ServerResponse } from 'node:http';
import { type Readable, Writable } from 'node:stream';
import { Pool } from 'undici';
import type { PolicyPlan } from '../src/compiler/plan.js';
import { TOKEN_HEADER } from '../src/tokens/intercept-token.js';
import type { ClientAddress } from './client-address.js';
import { type GatewayError, isConnectFailure, isReset, upstreamError } from './errors.js';

const HOP_BY_HOP = new Set([
  'connection',
  'keep-alive',
  'proxy-authenticate',
  'proxy-authorization',
  'proxy-connection',
  'te',
  'trailer',
  'transfer-encoding',
  'upgrade',
]);
/** Envoy's default per-connection buffer limit, which bounds the body it keeps for a retry. */
export const RETRY_BODY_LIMIT = 1024 * 1024;
/** Envoy's default route timeout. */
export const DEFAULT_TIMEOUT_MS = 15_000;

/** How long a request of `policy` may take: its timeout, else Envoy's default. */
export function routeTimeoutMs(policy: Pick<PolicyPlan, 'timeoutMs'>): number {
  return policy.timeoutMs ?? DEFAULT_TIMEOUT_MS;
}

export interface PoolOptions {
  connections?: number;
  keepAliveTimeoutMs?: number;
}

export class UpstreamPools {
  private readonly pools = new Map<string, Pool>();
  constructor(private readonly options: PoolOptions = {}) {}

  get(url: URL): Pool {
    let pool = this.pools.get(url.origin);
    if (!pool) {
      pool = new Pool(url.origin, {
        connections: this.options.connections ?? 128,
        keepAliveTimeout: this.options.keepAliveTimeoutMs ?? 30_000,
        pipelining: 1,
      });
      this.pools.set(url.origin, pool);
    }
    return pool;
  }

  /** Lets requests in flight finish (undici's close, not destroy). */
  async close(): Promise<void> {
    const pools = [...this.pools.values()];
    this.pools.clear();
    await Promise.all(pools.map((p) => p.close()));
  }

  /** Ends every upstream request at once (a drain's deadline). */
  async destroy(): Promise<void> {
    // Taken out of the map first, so a close() that runs meanwhile does not close them twice.
    const pools = [...this.pools.values()];
    this.pools.clear();
    await Promise.all(pools.map((p) => p.destroy()));
  }
}

function connectionTokens(headers: IncomingHttpHeaders): Set<string> {
  const c = headers.connection;
  return new Set(typeof c === 'string' ? c.split(',').map((t) => t.trim().toLowerCase()) : []);
}

/**
 * Headers only the gateway may set (a client's own copy is dropped), and the intercept token, which
 * is for the gateway alone (Envoy's jwt_authn drops it too).
 */
const GATEWAY_ONLY = new Set(['x-switchyard-shadow', TOKEN_HEADER]);
const FORWARDED = new Set(['x-forwarded-for', 'x-forwarded-proto', 'x-forwarded-host']);

/**
 * The headers an upstream gets. `x-forwarded-*` are kept (XFF appended to) only from a trusted
 * proxy; from anyone else they are replaced by what the gateway saw (gateway/client-address.ts).
 */
export function upstreamRequestHeaders(
  req: IncomingMessage,
  client: ClientAddress,
): Record<string, string | string[]> {
  const drop = connectionTokens(req.headers);
  const out: Record<string, string | string[]> = {};
  for (const [k, v] of Object.entries(req.headers)) {
    if (v === undefined || HOP_BY_HOP.has(k) || drop.has(k) || GATEWAY_ONLY.has(k)) continue;
    if (!client.viaTrustedProxy && FORWARDED.has(k)) continue;
    out[k] = v;
  }
  const peer = req.socket.remoteAddress ?? client.ip;
  const xff = out['x-forwarded-for'];
  out['x-forwarded-for'] = xff ? `${Array.isArray(xff) ? xff.join(', ') : xff}, ${peer}` : peer;
  out['x-forwarded-proto'] ??= 'http';
  if (req.headers.host) out['x-forwarded-host'] ??= req.headers.host;
  return out;
}

export function hasBody(req: IncomingMessage): boolean {
  const len = req.headers['content-length'];
  return req.headers['transfer-encoding'] !== undefined || (len !== undefined && len !== '0');
}

function retryableStatus(status: number, on: readonly string[]): boolean {
  return on.some(
    (c) =>
      c === String(status) ||
      (c === '5xx' && status >= 500) ||
      (c === 'gateway-error' && (status === 502 || status === 503 || status === 504)) ||
      (c === 'retriable-4xx' && status === 409),
  );
}

function retryableError(e: unknown, on: readonly string[]): boolean {
  // A per-try timeout always leaves room for the next try, as in Envoy.
  if ((e as { code?: string })?.code === 'UND_ERR_HEADERS_TIMEOUT') return true;
  if (isConnectFailure(e))
    return on.includes('connect-failure') || on.includes('5xx') || on.includes('gateway-error');
  if (isReset(e)) return on.includes('reset') || on.includes('5xx') || on.includes('refused-stream');
  return false;
}

/** The status nginx logs when the client closed the connection before the answer (never sent). */
export const CLIENT_GONE = 499;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export interface ForwardInput {
  req: IncomingMessage;
  /** Where the request body is read from (the request itself, or a tee when mirroring). */
  body?: Readable;
  res: ServerResponse;
  url: URL;
  upstream: string;
  policy: PolicyPlan;
  client: ClientAddress;
  /** Added to the response: x-switchyard-upstream, set-cookie, ratelimit-*. */
  responseHeaders: Record<string, string | string[]>;
}

/** Proxies one request; resolves with the status sent, or a GatewayError when nothing was sent. */
export async function forward(pools: UpstreamPools, input: ForwardInput): Promise<number | GatewayError> {
  const { req, res, url, policy } = input;
  const method = req.method ?? 'GET';
  const body = hasBody(req);
  const retries = policy.retries;
  const attempts = 1 + (retries && (!body || replayable(req)) ? retries.attempts : 0);
  const on = retries?.on ?? [];
  // undici takes an EventEmitter as its signal: far cheaper per request than an AbortController.
  const abort = new EventEmitter();
  let timedOut = false;
  let clientGone = false;
  const timer = setTimeout(() => {
    timedOut = true;
    abort.emit('abort');
  }, routeTimeoutMs(policy));
  const onClose = () => {
    if (!res.writableFinished) {
      clientGone = true;
      abort.emit('abort');
    }
  };
  res.once('close', onClose);
  const headers = upstreamRequestHeaders(req, input.client);
  const path =
    url.pathname === '/' ? (req.url ?? '/') : `${url.pathname.replace(/\/$/, '')}${req.url ?? '/'}`;
  try {
    let payload: Readable | Buffer | null = body ? (input.body ?? req) : null;
    if (payload && attempts > 1) {
      try {
        payload = await readWhole(payload, abort);
      } catch (e) {
        if (clientGone) return CLIENT_GONE;
        return upstreamError(e, input.upstream, url, timedOut);
      }
    }
    for (let attempt = 1; ; attempt++) {
      let status = 0;
      let retry = false;
      try {
        // pool.stream writes the upstream body straight into the response (no Readable in
        // between): 1.8x the requests/s of pool.request in load-tests (see README there).
        await pools.get(url).stream(
          {
            path,
            method: method as never,
            headers,
            body: payload,
            signal: abort,
            headersTimeout: retries?.perTryTimeoutMs ?? routeTimeoutMs(policy),
            bodyTimeout: routeTimeoutMs(policy),
          },
          ({ statusCode, headers: upstreamHeaders }) => {
            if (attempt < attempts && retryableStatus(statusCode, on)) {
              retry = true;
              return discard();
            }
            status = statusCode;
            writeHead(res, statusCode, upstreamHeaders, input.responseHeaders);
            // The route timeout bounds the time to the response headers (as Envoy's); a long body may stream on.
            clearTimeout(timer);
            return res;
          },
        );
      } catch (e) {
        if (clientGone) return CLIENT_GONE;
        if (status !== 0) {
          // The upstream broke off mid-body: the status line is gone, so cut the response short.
          res.destroy();
          return status;
        }
        if (attempt < attempts && !timedOut && retryableError(e, on)) {
          await sleep(25 * 2 ** (attempt - 1) * (0.5 + Math.random()));
          continue;
        }
        return upstreamError(e, input.upstream, url, timedOut);
      }
      if (!retry) return status;
      await sleep(25 * 2 ** (attempt - 1) * (0.5 + Math.random()));
    }
  } finally {
    clearTimeout(timer);
    res.off('close', onClose);
  }
}

/** A body that may be kept for a retry: a known length within RETRY_BODY_LIMIT. */
function replayable(req: IncomingMessage): boolean {
  const length = Number(req.headers['content-length']);
  return req.headers['transfer-encoding'] === undefined && length >= 0 && length <= RETRY_BODY_LIMIT;
}

/** The whole body (bounded by its content-length), or a rejection when the request is aborted. */
function readWhole(body: Readable, abort: EventEmitter): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    const stop = () => {
      const e = new Error('the request body did not arrive before the route timeout');
      (e as { code?: string }).code = 'UND_ERR_BODY_TIMEOUT';
      body.destroy();
      reject(e);
    };
    abort.once('abort', stop);
    body.on('data', (c: Buffer) => chunks.push(c));
    body.once('error', (e) => {
      abort.off('abort', stop);
      reject(e);
    });
    body.once('end', () => {
      abort.off('abort', stop);
      resolve(Buffer.concat(chunks));
    });
  });
}

/** Where the body of an answer that will be retried goes. */
function discard(): Writable {
  return new Writable({
    write(_chunk, _encoding, done) {
      done();
    },
  });
}

function writeHead(
  res: ServerResponse,
  status: number,
  upstreamHeaders: IncomingHttpHeaders | Record<string, string | string[] | undefined>,
  extra: Record<string, string | string[]>,
): void {
  const drop = connectionTokens(upstreamHeaders as IncomingHttpHeaders);
  for (const [k, v] of Object.entries(upstreamHeaders)) {
    if (v === undefined || HOP_BY_HOP.has(k) || drop.has(k)) continue;
    res.setHeader(k, v);
  }
  for (const [k, v] of Object.entries(extra)) {
    if (k === 'set-cookie') {
      const prior = res.getHeader('set-cookie');
      const list = prior === undefined ? [] : Array.isArray(prior) ? prior : [String(prior)];
      res.setHeader('set-cookie', [...list, ...(Array.isArray(v) ? v : [v])]);
    } else {
      res.setHeader(k, v);
    }
  }
  res.writeHead(status);
}
