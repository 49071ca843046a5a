/**
 * The gateway, composed: the traffic server (traffic-server.ts) hands each request to
 * `handleTraffic`, whose steps are top-level functions below: `canonicalHead` (request-head.ts),
 * `answerExchange` (a token traded for a cookie, request-tokens.ts), `admitAndForward` (admission.ts:
 * snapshot → route → rate limits), `teeMirror` (mirror.ts) and `forwardAdmitted` (proxy.ts);
 * upgrades take the same admission (`handleUpgrade`); the admin API is admin.ts; `drain` closes.
 * Clients, Redis, the clock and randomness are handed in.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Duplex, Readable } from 'node:stream';
import type { FastifyInstance } from 'fastify';
import type { Redis } from 'ioredis';
import type { Logger } from 'pino';
import {
  type PolicyPlan,
  type Route,
  UPSTREAM_HEADER,
  type WeightedDestination,
} from '../core/compiler/plan.js';
import type { TokenJwks } from '../core/tokens/keys.js';
import { adminServer } from './admin.js';
import { type Admitted, admission } from './admission.js';
import { type ClientAddress, clientAddressRule, type TrustProxy } from './client-address.js';
import { GatewayError } from './errors.js';
import { type GatewayMetrics, gatewayMetrics } from './metrics.js';
import { Mirror } from './mirror.js';
import type { PlanHolder } from './plan-holder.js';
import {
  type ForwardInput,
  forward,
  routeTimeoutMs,
  UpstreamPools,
  upstreamRequestHeaders,
} from './proxy.js';
import { type Clock, RateLimiter } from './rate-limit.js';
import { canonicalHead } from './request-head.js';
import type { DestinationDurations, RouteRequests } from './request-metrics.js';
import { requestTokens } from './request-tokens.js';
import { pickUpstream } from './snapshot.js';
import {
  respondError,
  type ServerLimits,
  type TrafficRequest,
  type TrafficResponse,
  type TrafficServer,
  type TrafficTls,
  trafficServer,
} from './traffic-server.js';
import { allowedUpgrade, proxyUpgrade, refuseUpgrade, takesUpgradePath } from './upgrade.js';

export interface GatewayOptions extends ServerLimits {
  holder: PlanHolder;
  /** TLS on the traffic port (HTTP/2 and HTTP/1.1 by ALPN); without it, cleartext HTTP/1.1 and h2c. */
  tls?: TrafficTls;
  /** One of `gateway --workers N`: rate limits without Redis are counted in the primary. */
  clusterWorker?: boolean;
  /** Public keys of intercept tokens (`requireToken`); without them, token routes never match. */
  tokenJwks?: TokenJwks;
  logger: Logger;
  redis?: Redis;
  clock?: Clock;
  random?: () => number;
  /** Whose x-forwarded-* are believed: true, a hop count, or addresses/CIDRs (gateway/client-address.ts). */
  trustProxy?: TrustProxy;
  /** Appended to the Host of mirrored copies (Istio < 1.28 appended "-shadow"); default none. */
  mirrorHostSuffix?: string;
  maxMirrorsInFlight?: number;
  /**
   * How long `close()` lets requests in flight and open WebSockets finish before closing them
   * (default 20 s: under Kubernetes' 30 s grace period, after the manifests' 5 s preStop delay).
   */
  drainTimeoutMs?: number;
  /** Distinct rate-limit key values counted apart per limit and window (gateway/rate-limit.ts). */
  rateLimitMaxKeysPerWindow?: number;
}

export interface Gateway {
  traffic: TrafficServer;
  admin: FastifyInstance;
  metrics: GatewayMetrics;
  /** Stops accepting, lets requests in flight finish, then closes upstream pools. */
  close(): Promise<void>;
}

interface DestinationSeries {
  policyName: string;
  requests: RouteRequests;
  duration: DestinationDurations;
}

/** The parts every request goes through, made once per gateway (`requestPath`). */
interface RequestPath {
  holder: PlanHolder;
  logger: Logger;
  random: () => number;
  /** One rule for requests and upgrades: who the client is, and whose x-forwarded-* to believe. */
  clientOf: (req: IncomingMessage | TrafficRequest) => ClientAddress;
  metrics: GatewayMetrics;
  pools: UpstreamPools;
  mirror: Mirror;
  tokens: ReturnType<typeof requestTokens>;
  admit: ReturnType<typeof admission>;
  series: (policy: PolicyPlan, route: Route, destination: WeightedDestination) => DestinationSeries;
  /** Upgraded connections: the HTTP server no longer tracks them, so a drain must close them. */
  upgraded: Set<Duplex>;
  closing: boolean;
}

export function createGateway(options: GatewayOptions): Gateway {
  const path = requestPath(options);
  const traffic = trafficServer(
    options,
    options.logger,
    (req, res) => handleTraffic(path, req, res),
    options.tls,
    takesUpgradePath,
  );
  traffic.server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => {
    void handleUpgrade(path, req, socket, head).catch((err) => {
      options.logger.error({ err }, 'unexpected error in an upgrade');
      socket.destroy();
    });
  });
  traffic.server.on('connect', refuseConnect);
  const admin = adminServer({
    holder: path.holder,
    metrics: path.metrics,
    mirror: path.mirror,
    logger: options.logger,
    isClosing: () => path.closing,
  });
  return {
    traffic,
    admin,
    metrics: path.metrics,
    close: () => drain(path, traffic, admin, options.drainTimeoutMs ?? 20_000),
  };
}

function requestPath(options: GatewayOptions): RequestPath {
  const { holder } = options;
  const random = options.random ?? Math.random;
  const metrics = gatewayMetrics();
  const mirror = new Mirror({
    maxInFlight: options.maxMirrorsInFlight ?? 100,
    ...(options.mirrorHostSuffix ? { hostSuffix: options.mirrorHostSuffix } : {}),
    onResult: (r) => metrics.mirror.inc(r),
  });
  const limiter = new RateLimiter({
    ...(options.redis ? { redis: options.redis } : {}),
    ...(options.clusterWorker ? { clusterWorker: true } : {}),
    ...(options.clock ? { clock: options.clock } : {}),
    ...(options.rateLimitMaxKeysPerWindow ? { maxKeysPerWindow: options.rateLimitMaxKeysPerWindow } : {}),
    counters: {
      limited: (p, l, enforced) =>
        metrics.rateLimited.inc({
          policy: `${p.namespace}/${p.name}`,
          limit: l.name,
          enforced: String(enforced),
        }),
      storeError: (reason) => metrics.rateLimitStoreErrors.inc({ reason }),
      fallback: () => metrics.rateLimitFallbacks.inc(),
    },
  });
  const tokens = requestTokens(holder, options.tokenJwks);
  return {
    holder,
    logger: options.logger,
    random,
    clientOf: clientAddressRule(options.trustProxy),
    metrics,
    pools: new UpstreamPools({ keepAliveTimeoutMs: 30_000 }),
    mirror,
    tokens,
    admit: admission({ holder, tokens, limiter, random }),
    series: destinationSeries(metrics),
    upgraded: new Set(),
    closing: false,
  };
}

/**
 * A route's destination's metric series and its policy's name, found once per route and
 * destination of a plan (by route first: routes of a policy share destination objects).
 */
function destinationSeries(metrics: GatewayMetrics): RequestPath['series'] {
  const seriesOf = new WeakMap<Route, Map<WeightedDestination, DestinationSeries>>();
  return (policy, route, destination) => {
    let byDestination = seriesOf.get(route);
    if (!byDestination) {
      byDestination = new Map();
      seriesOf.set(route, byDestination);
    }
    let s = byDestination.get(destination);
    if (!s) {
      const policyName = `${policy.namespace}/${policy.name}`;
      s = {
        policyName,
        requests: metrics.requests.of(policyName, route.name, destination.upstream),
        duration: metrics.duration.of(policyName, destination.upstream),
      };
      byDestination.set(destination, s);
    }
    return s;
  };
}

/**
 * One request: check its head, trade a token for a cookie, admit it (route, rate limits), tee a
 * mirror copy, forward it. Synchronous from its head to the upstream dispatch, and the dispatch's
 * handler finishes it: a promise only when a token is traded or verified, or a count is shared.
 */
function handleTraffic(path: RequestPath, req: TrafficRequest, res: TrafficResponse): void | Promise<void> {
  const started = performance.now();
  const refused = canonicalHead(req);
  if (refused) {
    path.metrics.requests.inc('', '', '', sendError(res, refused));
    return;
  }
  const client = path.clientOf(req);
  const exchanging = path.tokens.exchange(req);
  if (exchanging)
    return exchanging.then((exchanged) => answerExchange(path, req, res, client, started, exchanged));
  return admitAndForward(path, req, res, client, started);
}

/** A token traded for a cookie: 303 back to where the tester was going (or why not). */
function answerExchange(
  path: RequestPath,
  req: TrafficRequest,
  res: TrafficResponse,
  client: ClientAddress,
  started: number,
  exchanged: Awaited<NonNullable<ReturnType<RequestPath['tokens']['exchange']>>>,
): void | Promise<void> {
  if (!exchanged) return admitAndForward(path, req, res, client, started);
  let status = 303;
  if (exchanged instanceof GatewayError) status = sendError(res, exchanged);
  else
    (res as ServerResponse)
      .writeHead(303, { location: exchanged.location, 'set-cookie': exchanged.cookie })
      .end();
  path.metrics.requests.inc('', '', '', status);
}

function admitAndForward(
  path: RequestPath,
  req: TrafficRequest,
  res: TrafficResponse,
  client: ClientAddress,
  started: number,
): void | Promise<void> {
  const admitted = path.admit(req, client);
  if (admitted instanceof Promise)
    return admitted.then((a) => forwardAdmitted(path, req, res, client, started, a));
  forwardAdmitted(path, req, res, client, started, admitted);
}

function forwardAdmitted(
  path: RequestPath,
  req: TrafficRequest,
  res: TrafficResponse,
  client: ClientAddress,
  started: number,
  admitted: Admitted | GatewayError,
): void {
  if (admitted instanceof GatewayError) {
    const status = sendError(res, admitted);
    path.metrics.requests.inc('', '', admitted.headers[UPSTREAM_HEADER] ?? '', status);
    return;
  }
  const { policy, route, destination, url } = admitted.decision;
  // Built once: the primary and a mirror copy send the same headers (neither changes them).
  const headers = upstreamRequestHeaders(req, client);
  const input: ForwardInput = {
    req,
    body: teeMirror(path, req, policy, route, headers),
    res,
    url,
    upstream: destination.upstream,
    protocol: policy.upstreamProtocol,
    policy,
    headers,
    responseHeaders: admitted.responseHeaders,
  };
  forward(path.pools, input, (outcome) => {
    const s = path.series(policy, route, destination);
    if (outcome instanceof GatewayError) {
      s.requests.inc(sendError(res, outcome));
      path.logger.warn(
        { code: outcome.code, upstream: destination.upstream, policy: s.policyName },
        outcome.message,
      );
    } else s.requests.inc(outcome);
    s.duration.observe((performance.now() - started) / 1000);
  });
}

/** The body to forward: the request itself, or, for the route's mirrored share, a tee of it. */
function teeMirror(
  path: RequestPath,
  req: TrafficRequest,
  policy: PolicyPlan,
  route: Route,
  headers: ForwardInput['headers'],
): Readable {
  if (!route.mirror || path.random() * 100 >= route.mirror.percent) return req;
  const snapshot = path.holder.current;
  const target = snapshot && pickUpstream(snapshot, policy.namespace, route.mirror.destination.upstream);
  if (!(target instanceof URL)) return req;
  return path.mirror.tee(
    req,
    {
      url: target,
      method: req.method ?? 'GET',
      path: req.url ?? '/',
      headers,
      protocol: policy.upstreamProtocol,
    },
    route.mirror.maxBodyBytes,
  );
}

/** An HTTP/1.1 Upgrade: the same head check and admission, then only a protocol the policy allows. */
async function handleUpgrade(
  path: RequestPath,
  req: IncomingMessage,
  socket: Duplex,
  head: Buffer,
): Promise<void> {
  socket.on('error', () => undefined);
  if (path.closing) {
    refuseUpgrade(socket, new GatewayError('SY_GW_NOT_READY', 'shutting down'));
    return;
  }
  const client = path.clientOf(req);
  const admitted = canonicalHead(req) ?? (await path.admit(req, client));
  if (admitted instanceof GatewayError) {
    refuseUpgrade(socket, admitted);
    return;
  }
  const { policy, route, destination, url } = admitted.decision;
  const protocol = allowedUpgrade(req, policy.upgrades);
  if (protocol instanceof GatewayError) {
    refuseUpgrade(socket, protocol);
    path.metrics.requests.inc(`${policy.namespace}/${policy.name}`, route.name, '', protocol.status);
    return;
  }
  path.upgraded.add(socket);
  socket.once('close', () => path.upgraded.delete(socket));
  const status = await proxyUpgrade({
    req,
    socket,
    head,
    url,
    upstream: destination.upstream,
    client,
    protocol,
    timeoutMs: routeTimeoutMs(policy),
  });
  path.metrics.requests.inc(`${policy.namespace}/${policy.name}`, route.name, destination.upstream, status);
}

/** A proxy tunnel is not something the gateway offers (Envoy: 404, no route takes CONNECT). */
function refuseConnect(_req: IncomingMessage, socket: Duplex): void {
  socket.on('error', () => undefined);
  refuseUpgrade(socket, new GatewayError('SY_GW_NO_ROUTE', 'CONNECT is not routed by the gateway'));
}

/** Stops accepting, lets requests in flight finish until the deadline, then closes the pools. */
async function drain(path: RequestPath, traffic: TrafficServer, admin: FastifyInstance, timeoutMs: number) {
  path.closing = true;
  // Keep-alive connections become idle as their last response ends; close them as they do, or
  // server.close() would wait for clients to hang up.
  const sweep = setInterval(() => traffic.closeIdleConnections(), 50);
  // At the deadline, whatever is still open (a hung request, a WebSocket) is closed.
  const deadline = setTimeout(() => {
    path.logger.warn(
      { requests: 'closed', websockets: path.upgraded.size },
      'drain deadline reached: closing the connections still open',
    );
    traffic.closeAllConnections();
    for (const s of path.upgraded) s.destroy();
    void path.pools.destroy();
  }, timeoutMs);
  await traffic.close().finally(() => {
    clearInterval(sweep);
    clearTimeout(deadline);
  });
  await Promise.all([path.pools.close(), path.mirror.close()]);
  await admin.close();
}

function sendError(res: TrafficResponse, e: GatewayError): number {
  return respondError(res, e, false);
}
