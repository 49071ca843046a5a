/**
 * The gateway, composed: the traffic server (traffic-server.ts) hands each request to
 * `handleTraffic`, which trades a token for a cookie (request-tokens.ts), admits it (admission.ts:
 * snapshot → route → rate limits), tees a mirror copy (mirror.ts) and proxies (proxy.ts);
 * upgrades take the same admission; the admin API is admin.ts; `close` drains. Clients, Redis,
 * the clock and randomness are handed in.
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
} from '../src/compiler/plan.js';
import type { TokenJwks } from '../src/tokens/keys.js';
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

function sendError(res: TrafficResponse, e: GatewayError): number {
  return respondError(res, e, false);
}

export function createGateway(options: GatewayOptions): Gateway {
  const { holder, logger } = options;
  const random = options.random ?? Math.random;
  // One rule for requests and upgrades: who the client is, and whose x-forwarded-* to believe.
  const clientOf = clientAddressRule(options.trustProxy);
  const metrics = gatewayMetrics();
  const pools = new UpstreamPools({ keepAliveTimeoutMs: 30_000 });
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
  const admit = admission({ holder, tokens, limiter, random });
  let closing = false;
  /** Upgraded connections: the HTTP server no longer tracks them, so a drain must close them. */
  const upgraded = new Set<Duplex>();

  /**
   * A route's destination's metric series and its policy's name, found once per route and
   * destination of a plan (by route first: routes of a policy share destination objects).
   */
  const seriesOf = new WeakMap<Route, Map<WeightedDestination, DestinationSeries>>();
  const series = (policy: PolicyPlan, route: Route, destination: WeightedDestination) => {
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

  /**
   * One request. Synchronous from its head to the upstream dispatch, and the dispatch's handler
   * finishes it: a promise only when a token is traded or verified, or a count is shared.
   */
  function handleTraffic(req: TrafficRequest, res: TrafficResponse): void | Promise<void> {
    const started = performance.now();
    const refused = canonicalHead(req);
    if (refused) {
      metrics.requests.inc('', '', '', sendError(res, refused));
      return;
    }
    const client = clientOf(req);
    const exchanging = tokens.exchange(req);
    if (exchanging)
      return exchanging.then((exchanged) => {
        if (!exchanged) return admitAndForward(req, res, client, started);
        let status = 303;
        if (exchanged instanceof GatewayError) status = sendError(res, exchanged);
        else
          (res as ServerResponse)
            .writeHead(303, { location: exchanged.location, 'set-cookie': exchanged.cookie })
            .end();
        metrics.requests.inc('', '', '', status);
      });
    return admitAndForward(req, res, client, started);
  }

  function admitAndForward(
    req: TrafficRequest,
    res: TrafficResponse,
    client: ClientAddress,
    started: number,
  ): void | Promise<void> {
    const admitted = admit(req, client);
    if (admitted instanceof Promise) return admitted.then((a) => proxyAdmitted(req, res, client, started, a));
    proxyAdmitted(req, res, client, started, admitted);
  }

  function proxyAdmitted(
    req: TrafficRequest,
    res: TrafficResponse,
    client: ClientAddress,
    started: number,
    admitted: Admitted | GatewayError,
  ): void {
    if (admitted instanceof GatewayError) {
      const status = sendError(res, admitted);
      metrics.requests.inc('', '', admitted.headers[UPSTREAM_HEADER] ?? '', status);
      return;
    }
    const { policy, route, destination, url } = admitted.decision;
    // Built once: the primary and a mirror copy send the same headers (neither changes them).
    const headers = upstreamRequestHeaders(req, client);
    let body: Readable = req;
    if (route.mirror && random() * 100 < route.mirror.percent) {
      const snapshot = holder.current;
      const target = snapshot && pickUpstream(snapshot, policy.namespace, route.mirror.destination.upstream);
      if (target instanceof URL)
        body = mirror.tee(
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
    const input: ForwardInput = {
      req,
      body,
      res,
      url,
      upstream: destination.upstream,
      protocol: policy.upstreamProtocol,
      policy,
      headers,
      responseHeaders: admitted.responseHeaders,
    };
    forward(pools, input, (outcome) => {
      const s = series(policy, route, destination);
      if (outcome instanceof GatewayError) {
        s.requests.inc(sendError(res, outcome));
        logger.warn(
          { code: outcome.code, upstream: destination.upstream, policy: s.policyName },
          outcome.message,
        );
      } else s.requests.inc(outcome);
      s.duration.observe((performance.now() - started) / 1000);
    });
  }

  async function handleUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer): Promise<void> {
    socket.on('error', () => undefined);
    if (closing) {
      refuseUpgrade(socket, new GatewayError('SY_GW_NOT_READY', 'shutting down'));
      return;
    }
    const client = clientOf(req);
    const admitted = canonicalHead(req) ?? (await admit(req, client));
    if (admitted instanceof GatewayError) {
      refuseUpgrade(socket, admitted);
      return;
    }
    const { policy, route, destination, url } = admitted.decision;
    const protocol = allowedUpgrade(req, policy.upgrades);
    if (protocol instanceof GatewayError) {
      refuseUpgrade(socket, protocol);
      metrics.requests.inc(`${policy.namespace}/${policy.name}`, route.name, '', protocol.status);
      return;
    }
    upgraded.add(socket);
    socket.once('close', () => upgraded.delete(socket));
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
    metrics.requests.inc(`${policy.namespace}/${policy.name}`, route.name, destination.upstream, status);
  }

  const traffic = trafficServer(options, logger, handleTraffic, options.tls, takesUpgradePath);
  traffic.server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => {
    void handleUpgrade(req, socket, head).catch((err) => {
      logger.error({ err }, 'unexpected error in an upgrade');
      socket.destroy();
    });
  });
  // A proxy tunnel is not something the gateway offers (Envoy: 404, no route takes CONNECT).
  traffic.server.on('connect', (_req: IncomingMessage, socket: Duplex) => {
    socket.on('error', () => undefined);
    refuseUpgrade(socket, new GatewayError('SY_GW_NO_ROUTE', 'CONNECT is not routed by the gateway'));
  });
  const admin = adminServer({ holder, metrics, mirror, logger, isClosing: () => closing });

  return {
    traffic,
    admin,
    metrics,
    async close() {
      closing = true;
      // Keep-alive connections become idle as their last response ends; close them as they do,
      // or server.close() would wait for clients to hang up.
      const sweep = setInterval(() => traffic.closeIdleConnections(), 50);
      // At the deadline, whatever is still open (a hung request, a WebSocket) is closed.
      const deadline = setTimeout(() => {
        logger.warn(
          { requests: 'closed', websockets: upgraded.size },
          'drain deadline reached: closing the connections still open',
        );
        traffic.closeAllConnections();
        for (const s of upgraded) s.destroy();
        void pools.destroy();
      }, options.drainTimeoutMs ?? 20_000);
      await traffic.close().finally(() => {
        clearInterval(sweep);
        clearTimeout(deadline);
      });
      await Promise.all([pools.close(), mirror.close()]);
      await admin.close();
    },
  };
}
