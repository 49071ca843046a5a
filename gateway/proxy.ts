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
import type { PolicyPlan, UpstreamProtocol } from '../core/compiler/plan.js';
import { TOKEN_COOKIE, TOKEN_HEADER } from '../core/tokens/intercept-token.js';
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
export function isHopByHop(name: string): boolean {
  return HOP_BY_HOP.has(name);
}

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

/** Where requests for one upstream URL go: its pool, and the URL's path to put before theirs. */
export interface UpstreamTarget {
  pool: Pool;
  /** The URL's path without its trailing slash; empty for `/`. */
  prefix: string;
}

export class UpstreamPools {
  private readonly pools = new Map<string, Pool>();
  /**
   * Per upstream URL object (each snapshot builds its URLs once): its target, so a request reads
   * no `url.origin` or `url.pathname` (each a getter that builds a string) and hashes no string.
   */
  private targets = { http1: new WeakMap<URL, UpstreamTarget>(), http2: new WeakMap<URL, UpstreamTarget>() };
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

  target(url: URL, protocol: UpstreamProtocol = 'http1'): UpstreamTarget {
    const known = this.targets[protocol];
    let t = known.get(url);
    if (!t) {
      const path = url.pathname;
      t = { pool: this.get(url, protocol), prefix: path === '/' ? '' : path.replace(/\/$/, '') };
      known.set(url, t);
    }
    return t;
  }

  /** Lets requests in flight finish (undici's close, not destroy). */
  async close(): Promise<void> {
    await Promise.all(this.takeAll().map((p) => p.close()));
  }

  /** Ends every upstream request at once (a drain's deadline). */
  async destroy(): Promise<void> {
    await Promise.all(this.takeAll().map((p) => p.destroy()));
  }

  /** Every pool, taken out first, so a close() and a destroy() never end one pool twice. */
  private takeAll(): Pool[] {
    const pools = [...this.pools.values()];
    this.pools.clear();
    this.targets = { http1: new WeakMap(), http2: new WeakMap() };
    return pools;
  }
}

/** The header names a Connection header lists, lower case. */
export function connectionTokens(headers: IncomingHttpHeaders): Set<string> {
  const c = headers.connection;
  return new Set(typeof c === 'string' ? c.split(',').map((t) => t.trim().toLowerCase()) : []);
}

/**
 * Headers only the gateway may set (a client's own copy is dropped); the intercept token, which
 * is for the gateway alone (Envoy's jwt_authn drops it too); and `expect`, which the gateway has
 * answered itself (Node sends `100 Continue` as Envoy does by default, and undici refuses to send it).
 */
const GATEWAY_ONLY = new Set(['x-switchyard-shadow', TOKEN_HEADER, 'expect']);
/** Named in a Connection header, still not dropped: the pod must see the Host the client asked for. */
const NOT_NAMEABLE = 'host';
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
    if ((drop?.has(k) && k !== NOT_NAMEABLE) || (!client.viaTrustedProxy && FORWARDED.has(k))) continue;
    out[k] = v;
  }
  if (out.cookie !== undefined) withoutTokenCookie(out);
  const peer = req.socket.remoteAddress ?? client.ip;
  const xff = out['x-forwarded-for'];
  out['x-forwarded-for'] = xff ? `${Array.isArray(xff) ? xff.join(', ') : xff}, ${peer}` : peer;
  out['x-forwarded-proto'] ??= 'http';
  if (req.headers.host) out['x-forwarded-host'] ??= req.headers.host;
  return out;
}

/**
 * The `switchyard-token` cookie taken out of the Cookie header: the token is for the gateway, and
 * the pod behind a preview runs a pull request's code. Other cookies pass as they came.
 */
function withoutTokenCookie(out: Record<string, string | string[]>): void {
  const cookie = out.cookie as string | string[];
  const joined = Array.isArray(cookie) ? cookie.join('; ') : cookie;
  if (!joined.includes(TOKEN_COOKIE)) return;
  const kept = joined.split(';').filter((part) => {
    const eq = part.indexOf('=');
    return (eq < 0 ? part : part.slice(0, eq)).trim() !== TOKEN_COOKIE;
  });
  if (kept.length === 0) delete out.cookie;
  else out.cookie = kept.map((p) => p.trim()).join('; ');
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

/** What became of a forwarded request: the status sent, or a GatewayError when nothing was sent. */
export type Forwarded = (outcome: number | GatewayError) => void;

/**
 * Proxies one request and calls `done` with the status sent, or a GatewayError when nothing was
 * sent. The common case (no retries) is one undici dispatch whose handler writes straight into the
 * response and calls `done` itself: no stream, promise or timer of its own per request
 * (load-tests/README.md).
 */
export function forward(pools: UpstreamPools, input: ForwardInput, done: Forwarded): void {
  const { req, policy } = input;
  const body = hasBody(req);
  const retries = policy.retries;
  const attempts = 1 + (retries && (!body || replayable(req)) ? retries.attempts : 0);
  const target = pools.target(input.url, input.protocol);
  const timeoutMs = routeTimeoutMs(policy);
  if (attempts === 1) {
    // undici's headers timeout is the route timeout (to the response headers, as Envoy's).
    new UpstreamTry(input, target, body ? (input.body ?? req) : null, timeoutMs, timeoutMs, undefined, (o) =>
      done(settle(o, input, false)),
    );
    return;
  }
  forwardWithRetries(input, target, body, attempts, timeoutMs).then(done, (err: unknown) =>
    done(upstreamError(err, input.upstream, input.url, false)),
  );
}

/** With retries, the route timeout spans every try and the backoff between them. */
async function forwardWithRetries(
  input: ForwardInput,
  target: UpstreamTarget,
  body: boolean,
  attempts: number,
  timeoutMs: number,
): Promise<number | GatewayError> {
  const { req, res, policy } = input;
  const retries = policy.retries;
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
      if (whole instanceof Error) return upstreamError(whole, input.upstream, input.url, false);
      payload = whole;
    }
    const on = retries?.on ?? [];
    for (let attempt = 1; ; attempt++) {
      const last = attempt === attempts;
      const outcome = await new Promise<TryOutcome>((resolve) => {
        current = new UpstreamTry(
          input,
          target,
          payload,
          retries?.perTryTimeoutMs ?? timeoutMs,
          timeoutMs,
          last ? undefined : on,
          resolve,
        );
      });
      if (timedOut && typeof outcome !== 'number') return settleTimeout(input);
      if (outcome === RETRY || (!last && outcome instanceof Error && retryableError(outcome, on))) {
        await sleep(25 * 2 ** (attempt - 1) * (0.5 + Math.random()));
        if (timedOut) return settleTimeout(input);
        continue;
      }
      return settle(outcome, input, timedOut);
    }
  } finally {
    clearTimeout(timer);
  }
}

function settle(outcome: TryOutcome, input: ForwardInput, timedOut: boolean): number | GatewayError {
  if (typeof outcome === 'number') return outcome;
  if (outcome === GONE) return CLIENT_GONE;
  if (outcome === RETRY) return upstreamError(new Error('retry'), input.upstream, input.url, timedOut);
  const { res } = input;
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
type TryOutcome = number | Error | typeof RETRY | typeof GONE;

/**
 * One upstream try as an undici dispatch handler (a class: one object per request, its methods
 * shared, rather than a handler of closures): the response head is written when it comes, the
 * body streamed with backpressure (the upstream is paused while the client's socket is full), the
 * trailers passed on (gRPC's status travels in them). `done` gets the status, RETRY, GONE or the
 * error, once.
 */
class UpstreamTry implements Attempt {
  private abortUpstream: ((reason: Error) => void) | undefined;
  private settled = false;
  private status = 0;
  /** This answer is dropped: its status asks for a retry. */
  private discarding = false;
  private resumeUpstream: (() => void) | undefined;
  /** A gRPC "trailers-only" answer's status, sent on as trailers. */
  private statusInTrailers: Record<string, string | string[]> | undefined;
  private readonly res: ServerResponse;
  private readonly onClose = () => {
    if (this.settled) return;
    this.settle(GONE); // first: the abort below reports an error of its own
    this.abortUpstream?.(new Error('the client closed the connection'));
  };
  /** Made when the client's socket first fills (most responses never do). */
  private onDrain: (() => void) | undefined;

  constructor(
    private readonly input: ForwardInput,
    target: UpstreamTarget,
    body: Readable | Buffer | null,
    headersTimeout: number,
    bodyTimeout: number,
    /** Statuses that make this try's answer a RETRY; none on the last try. */
    private readonly retryOn: readonly string[] | undefined,
    private readonly done: (outcome: TryOutcome) => void,
  ) {
    const { req } = input;
    this.res = input.res as ServerResponse;
    // `on`, not `once` (no wrapper per request): onClose ignores a second call, and it is taken off at the end.
    this.res.on('close', this.onClose);
    const path = req.url ?? '/';
    target.pool.dispatch(
      {
        path: target.prefix ? target.prefix + path : path,
        method: (req.method ?? 'GET') as Dispatcher.HttpMethod,
        headers: input.headers,
        body,
        headersTimeout,
        bodyTimeout,
      },
      this as unknown as Dispatcher.DispatchHandler,
    );
  }

  abort(reason: Error): void {
    this.abortUpstream?.(reason);
  }

  private settle(outcome: TryOutcome): void {
    if (this.settled) return;
    this.settled = true;
    this.done(outcome);
  }

  onConnect(abort: (reason?: Error) => void): void {
    this.abortUpstream = abort;
    if (this.settled) abort(new Error('the client closed the connection'));
  }

  onHeaders(statusCode: number, raw: Buffer[] | string[], resume: () => void): boolean {
    if (statusCode < 200) return true;
    if (this.retryOn && retryableStatus(statusCode, this.retryOn)) {
      this.discarding = true;
      return true;
    }
    this.status = statusCode;
    this.resumeUpstream = resume;
    const extra = this.input.responseHeaders;
    const list = responseHeaderList(raw, extra);
    if (this.input.req.httpVersionMajor !== 2) {
      this.res.writeHead(statusCode, list);
      return true;
    }
    const head = headersObject(list);
    if (head['grpc-status'] !== undefined) this.statusInTrailers = takeTrailers(head, extra);
    this.res.writeHead(statusCode, head);
    return true;
  }

  onData(chunk: Buffer): boolean {
    if (this.discarding) return true;
    if (this.res.write(chunk)) return true;
    this.onDrain ??= () => this.resumeUpstream?.();
    this.res.once('drain', this.onDrain);
    return false;
  }

  onComplete(trailers: Buffer[] | string[] | Record<string, string | string[]> | null): void {
    const { res } = this;
    res.off('close', this.onClose);
    if (this.discarding) {
      this.settle(RETRY);
      return;
    }
    const passed = trailers ? trailerHeaders(trailers) : undefined;
    if (passed || this.statusInTrailers) res.addTrailers({ ...this.statusInTrailers, ...passed });
    res.end();
    this.settle(this.status);
  }

  onError(err: Error): void {
    this.res.off('close', this.onClose);
    this.settle(err);
  }
}

/**
 * The upstream's response headers without hop-by-hop ones, then the gateway's own, which replace
 * the upstream's (set-cookie is added to), as the flat `[name, value, …]` list Node's HTTP/1.1
 * response writes as it is: no object built and walked again (load-tests/README.md), and a
 * header the upstream repeated stays repeated.
 */
function responseHeaderList(raw: Buffer[] | string[], extra: Record<string, string | string[]>): string[] {
  const out: string[] = [];
  let connection: string | undefined;
  for (let i = 0; i < raw.length; i += 2) {
    const name = undiciUtil.headerNameToString(raw[i] as Buffer | string);
    if (HOP_BY_HOP.has(name)) {
      if (name === 'connection') connection = (raw[i + 1] as Buffer | string).toString('latin1');
      continue;
    }
    if (extra[name] !== undefined && name !== 'set-cookie') continue;
    out.push(name, (raw[i + 1] as Buffer | string).toString('latin1'));
  }
  for (const k in extra) {
    const v = extra[k] as string | string[];
    if (typeof v === 'string') out.push(k, v);
    else for (const one of v) out.push(k, one);
  }
  if (connection === undefined || !namesHeaders(connection)) return out;
  // Headers the upstream named in its Connection header are hop-by-hop too (rare: a copy then).
  const named = new Set(connection.split(',').map((t) => t.trim().toLowerCase()));
  const kept: string[] = [];
  for (let i = 0; i < out.length; i += 2) {
    const k = out[i] as string;
    if (!named.has(k) || extra[k] !== undefined) kept.push(k, out[i + 1] as string);
  }
  return kept;
}

/** The list as an HTTP/2 headers object: a repeated name's values in an array. */
function headersObject(list: readonly string[]): Record<string, string | string[]> {
  const out: Record<string, string | string[]> = {};
  for (let i = 0; i < list.length; i += 2) {
    const k = list[i] as string;
    const v = list[i + 1] as string;
    const prior = out[k];
    out[k] = prior === undefined ? v : Array.isArray(prior) ? [...prior, v] : [prior, v];
  }
  return out;
}

/** Whether a Connection header names headers, beyond keep-alive or close. */
function namesHeaders(connection: string): boolean {
  const c = connection.toLowerCase();
  return c !== 'keep-alive' && c !== 'close';
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
