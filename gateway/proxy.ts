/**
 * The proxy hot path on undici: a keep-alive Pool per upstream origin, bodies streamed both ways,
 * hop-by-hop headers dropped, `x-forwarded-*` added, the original Host kept (as Envoy does), and
 * the policy's timeout and retries. As Envoy, any method is retried, a body included: a body of
 * known length up to RETRY_BODY_LIMIT is read whole first and sent again on each try (Envoy keeps
 * one in its buffer up to the same 1 MiB and stops retrying past it); a larger or chunked one
 * streams through and is not retried (tried against Envoy in test/mesh-routing.test.ts).
 * Upstreams speak HTTP/1.1, or HTTP/2 when their policy says `upstreamProtocol: http2` (h2c, or
 * h2 by ALPN for https); gRPC needs HTTP/2 and its trailers are passed on either way.
 * undici was chosen over http-proxy by measurement, and its dispatch API over its stream and
 * request APIs: load-tests/README.md.
 */

import type { IncomingHttpHeaders, ServerResponse } from 'node:http';
import type { Readable } from 'node:stream';
import { type Dispatcher, Pool, util as undiciUtil } from 'undici';
import type { PolicyPlan, UpstreamProtocol } from '../src/compiler/plan.js';
import { TOKEN_HEADER } from '../src/tokens/intercept-token.js';
import type { ClientAddress } from './client-address.js';
import { type GatewayError, isConnectFailure, isReset, upstreamError } from './errors.js';
import type { TrafficRequest, TrafficResponse } from './traffic-server.js';

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

/** An undici Pool's options for an upstream: `http1` as given, or HTTP/2 (h2c for http:, ALPN h2 for https:). */
export function poolOptions(url: URL, protocol: UpstreamProtocol, http1: Pool.Options): Pool.Options {
  if (protocol === 'http1') return http1;
  // One HTTP/2 connection carries many streams (undici's default of 100 per connection).
  // h2c goes in `connect`: undici's Pool (7.30) does not hand its own useH2c to its connector.
  return {
    connections: 4,
    allowH2: true,
    pipelining: 100,
    ...(url.protocol === 'http:' ? { connect: { useH2c: true } } : {}),
  } as Pool.Options;
}

export class UpstreamPools {
  private readonly pools = new Map<string, Pool>();
  constructor(private readonly options: PoolOptions = {}) {}

  get(url: URL, protocol: UpstreamProtocol = 'http1'): Pool {
    const key = protocol === 'http2' ? `h2 ${url.origin}` : url.origin;
    let pool = this.pools.get(key);
    if (!pool) {
      pool = new Pool(
        url.origin,
        poolOptions(url, protocol, {
          connections: this.options.connections ?? 128,
          keepAliveTimeout: this.options.keepAliveTimeoutMs ?? 30_000,
          pipelining: 1,
        }),
      );
      this.pools.set(key, pool);
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
  req: TrafficRequest,
  client: ClientAddress,
): Record<string, string | string[]> {
  const headers = req.headers;
  const drop = headers.connection === undefined ? undefined : connectionTokens(headers);
  const out: Record<string, string | string[]> = {};
  for (const k in headers) {
    const v = headers[k];
    // HTTP/2's pseudo-headers (:authority is already the Host) are not headers to pass on.
    if (v === undefined || k.charCodeAt(0) === 58 || HOP_BY_HOP.has(k) || GATEWAY_ONLY.has(k)) {
      // gRPC servers want to know the client takes trailers; "te: trailers" is the one TE HTTP/2 allows.
      if (k === 'te' && v === 'trailers') out.te = v;
      continue;
    }
    if (drop?.has(k) || (!client.viaTrustedProxy && FORWARDED.has(k))) continue;
    out[k] = v;
  }
  const peer = req.socket.remoteAddress ?? client.ip;
  const xff = out['x-forwarded-for'];
  out['x-forwarded-for'] = xff ? `${Array.isArray(xff) ? xff.join(', ') : xff}, ${peer}` : peer;
  out['x-forwarded-proto'] ??= 'http';
  if (req.headers.host) out['x-forwarded-host'] ??= req.headers.host;
  return out;
}

export function hasBody(req: TrafficRequest): boolean {
  const len = req.headers['content-length'];
  if (req.httpVersionMajor === 2)
    // An HTTP/2 request without a length has a body unless its HEADERS frame ended the stream.
    return len === undefined
      ? !(req as { stream?: { endAfterHeaders?: boolean } }).stream?.endAfterHeaders
      : len !== '0';
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
  req: TrafficRequest;
  /** Where the request body is read from (the request itself, or a tee when mirroring). */
  body?: Readable;
  res: TrafficResponse;
  protocol?: UpstreamProtocol;
  url: URL;
  upstream: string;
  policy: PolicyPlan;
  /** What the upstream gets (upstreamRequestHeaders), built once per request and shared with a mirror copy. */
  headers: Record<string, string | string[]>;
  /** Added to the response: x-switchyard-upstream, set-cookie, ratelimit-*. */
  responseHeaders: Record<string, string | string[]>;
}

/**
 * Proxies one request; resolves with the status sent, or a GatewayError when nothing was sent.
 * The common case (no retries) is one undici dispatch whose handler writes straight into the
 * response: no stream, promise or timer of its own per request (load-tests/README.md).
 */
export async function forward(pools: UpstreamPools, input: ForwardInput): Promise<number | GatewayError> {
  const { req, res, url, policy } = input;
  const body = hasBody(req);
  const retries = policy.retries;
  const attempts = 1 + (retries && (!body || replayable(req)) ? retries.attempts : 0);
  const { headers } = input;
  const path =
    url.pathname === '/' ? (req.url ?? '/') : `${url.pathname.replace(/\/$/, '')}${req.url ?? '/'}`;
  const pool = pools.get(url, input.protocol);
  const timeoutMs = routeTimeoutMs(policy);
  if (attempts === 1) {
    // undici's headers timeout is the route timeout (to the response headers, as Envoy's).
    const outcome = await dispatchOnce(pool, {
      method: req.method ?? 'GET',
      path,
      headers,
      body: body ? (input.body ?? req) : null,
      headersTimeout: timeoutMs,
      bodyTimeout: timeoutMs,
      res,
      extra: input.responseHeaders,
      retryOn: undefined,
      http2Client: req.httpVersionMajor === 2,
    });
    return settle(outcome, input, false, res);
  }

  // With retries, the route timeout spans every try and the backoff between them.
  let timedOut = false;
  let current: Attempt | undefined;
  const timer = setTimeout(() => {
    timedOut = true;
    current?.abort(new Error('route timeout'));
  }, timeoutMs);
  try {
    let payload: Readable | Buffer | null = body ? (input.body ?? req) : null;
    if (payload) {
      const whole = await readWhole(payload, res, (a) => {
        current = a;
      });
      if (whole === 'client-gone') return CLIENT_GONE;
      if (whole === 'timeout') return settleTimeout(input);
      if (whole instanceof Error) return upstreamError(whole, input.upstream, url, false);
      payload = whole;
    }
    const on = retries?.on ?? [];
    for (let attempt = 1; ; attempt++) {
      const last = attempt === attempts;
      const outcome = await dispatchOnce(
        pool,
        {
          method: req.method ?? 'GET',
          path,
          headers,
          body: payload,
          headersTimeout: retries?.perTryTimeoutMs ?? timeoutMs,
          bodyTimeout: timeoutMs,
          res,
          extra: input.responseHeaders,
          retryOn: last ? undefined : on,
          http2Client: req.httpVersionMajor === 2,
        },
        (a) => {
          current = a;
        },
      );
      if (timedOut && typeof outcome !== 'number') return settleTimeout(input);
      if (outcome === RETRY || (!last && outcome instanceof Error && retryableError(outcome, on))) {
        await sleep(25 * 2 ** (attempt - 1) * (0.5 + Math.random()));
        if (timedOut) return settleTimeout(input);
        continue;
      }
      return settle(outcome, input, timedOut, res);
    }
  } finally {
    clearTimeout(timer);
  }
}

function settle(
  outcome: number | Error | typeof RETRY | typeof GONE,
  input: ForwardInput,
  timedOut: boolean,
  res: TrafficResponse,
): number | GatewayError {
  if (typeof outcome === 'number') return outcome;
  if (outcome === GONE) return CLIENT_GONE;
  if (outcome === RETRY) return upstreamError(new Error('retry'), input.upstream, input.url, timedOut);
  if (res.headersSent) {
    // The upstream broke off mid-body: the status line is gone, so cut the response short.
    res.destroy();
    return res.statusCode;
  }
  return upstreamError(outcome, input.upstream, input.url, timedOut);
}

function settleTimeout(input: ForwardInput): GatewayError {
  return upstreamError(new Error('route timeout'), input.upstream, input.url, true);
}

/** A body that may be kept for a retry: a known length within RETRY_BODY_LIMIT. */
function replayable(req: TrafficRequest): boolean {
  const length = Number(req.headers['content-length']);
  return req.headers['transfer-encoding'] === undefined && length >= 0 && length <= RETRY_BODY_LIMIT;
}

/** Something in progress that the route timeout can stop. */
interface Attempt {
  abort(reason: Error): void;
}

/** The whole body (bounded by its content-length), or why it did not come. */
function readWhole(
  body: Readable,
  res: TrafficResponse,
  started: (a: Attempt) => void,
): Promise<Buffer | 'client-gone' | 'timeout' | Error> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    let done = false;
    const finish = (v: Buffer | 'client-gone' | 'timeout' | Error) => {
      if (done) return;
      done = true;
      res.off('close', gone);
      if (!(v instanceof Buffer)) body.destroy();
      resolve(v);
    };
    const gone = () => finish('client-gone');
    started({ abort: () => finish('timeout') });
    res.once('close', gone);
    body.on('data', (c: Buffer) => chunks.push(c));
    body.once('error', (e) => finish(e));
    body.once('end', () => finish(Buffer.concat(chunks)));
  });
}

/** The answer of one try will be retried: its body is dropped. */
const RETRY = Symbol('retry');
/** The client went away before the answer. */
const GONE = Symbol('client gone');

interface Try {
  method: string;
  path: string;
  headers: Record<string, string | string[]>;
  body: Readable | Buffer | null;
  headersTimeout: number;
  bodyTimeout: number;
  res: TrafficResponse;
  /** Added to the response: x-switchyard-upstream, set-cookie, ratelimit-*. */
  extra: Record<string, string | string[]>;
  /** Statuses that make this try's answer a RETRY; none on the last try. */
  retryOn: readonly string[] | undefined;
  /** The client speaks HTTP/2 (a gRPC client, perhaps). */
  http2Client: boolean;
}

/**
 * One upstream try as an undici dispatch handler: the response head is written when it comes, the
 * body streamed with backpressure (the upstream is paused while the client's socket is full), the
 * trailers passed on (gRPC's status travels in them). Resolves with the status, RETRY, GONE or the error.
 */
function dispatchOnce(
  pool: Pool,
  t: Try,
  started?: (a: Attempt) => void,
): Promise<number | Error | typeof RETRY | typeof GONE> {
  return new Promise((resolve) => {
    const { res } = t;
    let abort: ((reason: Error) => void) | undefined;
    let settled = false;
    let status = 0;
    let discarding = false;
    let resume: (() => void) | undefined;
    /** A gRPC "trailers-only" answer's status, sent on as trailers. */
    let statusInTrailers: Record<string, string | string[]> | undefined;
    const settle = (v: number | Error | typeof RETRY | typeof GONE) => {
      if (settled) return;
      settled = true;
      resolve(v);
    };
    const onClose = () => {
      if (settled) return;
      settle(GONE); // first: the abort below reports an error of its own
      abort?.(new Error('the client closed the connection'));
    };
    res.once('close', onClose);
    started?.({ abort: (reason) => abort?.(reason) });
    const onDrain = () => resume?.();
    pool.dispatch(
      {
        path: t.path,
        method: t.method as Dispatcher.HttpMethod,
        headers: t.headers,
        body: t.body,
        headersTimeout: t.headersTimeout,
        bodyTimeout: t.bodyTimeout,
      },
      {
        onConnect(a: (reason?: Error) => void) {
          abort = a;
          if (settled) a(new Error('the client closed the connection'));
        },
        onHeaders(statusCode: number, raw: Buffer[] | string[], r: () => void): boolean {
          if (statusCode < 200) return true;
          if (t.retryOn && retryableStatus(statusCode, t.retryOn)) {
            discarding = true;
            return true;
          }
          status = statusCode;
          resume = r;
          const head = responseHeaders(raw, t.extra);
          if (t.http2Client && head['grpc-status'] !== undefined)
            statusInTrailers = takeTrailers(head, t.extra);
          (res as ServerResponse).writeHead(statusCode, head);
          return true;
        },
        onData(chunk: Buffer): boolean {
          if (discarding) return true;
          if ((res as ServerResponse).write(chunk)) return true;
          res.once('drain', onDrain);
          return false;
        },
        onComplete(trailers: Buffer[] | string[] | Record<string, string | string[]> | null) {
          if (discarding) return settle(RETRY);
          res.off('close', onClose);
          const passed = trailers ? trailerHeaders(trailers) : undefined;
          if (passed || statusInTrailers) res.addTrailers({ ...statusInTrailers, ...passed });
          res.end();
          settle(status);
        },
        onError(err: Error) {
          res.off('close', onClose);
          settle(err);
        },
      } as unknown as Dispatcher.DispatchHandler,
    );
  });
}

/**
 * The upstream's response headers without hop-by-hop ones, then the gateway's own (set-cookie
 * appended to the upstream's). Built in one pass with nothing deleted (a deleted key makes V8
 * turn the object into a slow dictionary), as one object so Node writes the head in one go.
 */
function responseHeaders(
  raw: Buffer[] | string[],
  extra: Record<string, string | string[]>,
): Record<string, string | string[]> {
  const out: Record<string, string | string[]> = {};
  let connection: string | undefined;
  for (let i = 0; i < raw.length; i += 2) {
    const name = undiciUtil.headerNameToString(raw[i] as Buffer | string);
    const value = (raw[i + 1] as Buffer | string).toString('latin1');
    if (HOP_BY_HOP.has(name)) {
      if (name === 'connection') connection = value;
      continue;
    }
    const prior = out[name];
    out[name] = prior === undefined ? value : Array.isArray(prior) ? [...prior, value] : [prior, value];
  }
  for (const k in extra) {
    const v = extra[k] as string | string[];
    const prior = k === 'set-cookie' ? out[k] : undefined;
    out[k] = prior === undefined ? v : ([] as string[]).concat(prior, v);
  }
  // Headers the upstream named in its Connection header are hop-by-hop too (rare: a copy then).
  if (
    connection === undefined ||
    connection.toLowerCase() === 'keep-alive' ||
    connection.toLowerCase() === 'close'
  )
    return out;
  const named = new Set(connection.split(',').map((t) => t.trim().toLowerCase()));
  const kept: Record<string, string | string[]> = {};
  for (const k in out) if (!named.has(k) || k in extra) kept[k] = out[k] as string | string[];
  return kept;
}

/**
 * gRPC's "trailers-only" answer (an error with no message) is one HEADERS frame that carries the
 * status and the trailing metadata. Node's HTTP/2 compatibility API always sends headers and
 * trailers apart, so all but the content type (and the gateway's own headers) move to the
 * trailers, where a gRPC client reads them: headers then trailers is a valid gRPC answer too.
 */
function takeTrailers(
  head: Record<string, string | string[]>,
  gateways: Record<string, string | string[]>,
): Record<string, string | string[]> {
  const moved: Record<string, string | string[]> = {};
  for (const k in head) {
    if (k === 'content-type' || k === 'content-length' || k in gateways) continue;
    moved[k] = head[k] as string | string[];
    delete head[k];
  }
  return moved;
}

/** Trailers to pass on (from HTTP/1.1 as a raw list, from HTTP/2 as an object), or undefined when there are none. */
function trailerHeaders(
  raw: Buffer[] | string[] | Record<string, string | string[]>,
): Record<string, string | string[]> | undefined {
  const all = Array.isArray(raw) ? (undiciUtil.parseHeaders(raw) as Record<string, string | string[]>) : raw;
  let out: Record<string, string | string[]> | undefined;
  for (const k in all) {
    const v = all[k];
    if (v === undefined || k.charCodeAt(0) === 58 || HOP_BY_HOP.has(k)) continue;
    out ??= {};
    out[k] = v;
  }
  return out;
}
