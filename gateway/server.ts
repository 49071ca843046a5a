/**
 * The gateway: a fastify server for traffic and another for the admin API. The traffic handler
 * reads one snapshot, asks the router for a destination, counts rate limits, starts a mirror copy
 * and proxies. Clients, Redis, the clock and randomness are handed in.
 */
import { createServer, type IncomingMessage, METHODS, type ServerResponse } from 'node:http';
import { type Duplex, PassThrough, type Readable } from 'node:stream';
import Fastify, { type FastifyBaseLogger, type FastifyInstance } from 'fastify';
import type { Redis } from 'ioredis';
import type { Logger } from 'pino';
import { tokenAudience } from '../src/compiler/names.js';
import { type PolicyPlan, UPSTREAM_HEADER } from '../src/compiler/plan.js';
import { ERROR_CODES } from '../src/core/errors.js';
import { type ClientAddress, clientAddressRule, type TrustProxy } from './client-address.js';
import { GatewayError } from './errors.js';
import { type GatewayMetrics, gatewayMetrics } from './metrics.js';
import { Mirror } from './mirror.js';
import type { PlanHolder } from './plan-holder.js';
import { DEFAULT_TIMEOUT_MS, forward, hasBody, UpstreamPools, upstreamRequestHeaders } from './proxy.js';
import { type Clock, RateLimiter, rateLimitHeaders } from './rate-limit.js';
import { type Decision, decide, requestView } from './router.js';
import { pickUpstream, type Snapshot } from './snapshot.js';
import { claimHeaders, TOKEN_COOKIE, TOKEN_QUERY, type TokenKeys, tokenVerifier } from './tokens.js';
import { proxyUpgrade, refuseUpgrade } from './upgrade.js';

export interface GatewayOptions {
  holder: PlanHolder;
  /** HMAC keys for intercept tokens (`requireToken`); without one, token routes never match. */
  interceptTokenKeys?: TokenKeys;
  logger: Logger;
  redis?: Redis;
  clock?: Clock;
  random?: () => number;
  /** Whose x-forwarded-* are believed: true, a hop count, or addresses/CIDRs (gateway/client-address.ts). */
  trustProxy?: TrustProxy;
  /** Appended to the Host of mirrored copies (Istio < 1.28 appended "-shadow"); default none. */
  mirrorHostSuffix?: string;
  maxMirrorsInFlight?: number;
  /** Slowloris guard: the whole request head must arrive within this time. */
  headersTimeoutMs?: number;
  requestTimeoutMs?: number;
  maxHeaderSize?: number;
  keepAliveTimeoutMs?: number;
  /**
   * How long `close()` lets requests in flight and open WebSockets finish before closing them
   * (default 20 s: under Kubernetes' 30 s grace period, after the manifests' 5 s preStop delay).
   */
  drainTimeoutMs?: number;
  /** Distinct rate-limit key values counted apart per limit and window (gateway/rate-limit.ts). */
  rateLimitMaxKeysPerWindow?: number;
}

export interface Gateway {
  traffic: FastifyInstance;
  admin: FastifyInstance;
  metrics: GatewayMetrics;
  /** Stops accepting, lets requests in flight finish, then closes upstream pools. */
  close(): Promise<void>;
}

interface TokenExchange {
  location: string;
  cookie: string;
}

function sendError(res: ServerResponse, e: GatewayError): number {
  if (res.headersSent) {
    res.destroy();
    return e.status;
  }
  res.writeHead(e.status, {
    'content-type': 'application/json',
    'x-switchyard-error': e.code,
    ...e.headers,
  });
  res.end(e.body());
  return e.status;
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
    onResult: (r) => metrics.mirror.inc({ result: r }),
  });
  const limiter = new RateLimiter({
    ...(options.redis ? { redis: options.redis } : {}),
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
  let closing = false;
  /** Upgraded connections: the HTTP server no longer tracks them, so a drain must close them. */
  const upgraded = new Set<Duplex>();
  const claimNames = new WeakMap<PolicyPlan, Set<string>>();
  const namesOf = (policy: PolicyPlan) => {
    let names = claimNames.get(policy);
    if (!names) {
      names = claimHeaders(policy);
      claimNames.set(policy, names);
    }
    return names;
  };
  // Whether any policy of a snapshot reads tokens: without one (the common case) a request pays no
  // second host lookup for them.
  const tokenSnapshots = new WeakMap<Snapshot, boolean>();
  const usesTokens = (snapshot: Snapshot) => {
    let uses = tokenSnapshots.get(snapshot);
    if (uses === undefined) {
      uses = snapshot.plan.policies.some((p) => namesOf(p).size > 0);
      tokenSnapshots.set(snapshot, uses);
    }
    return uses;
  };
  const tokenQuery = `${TOKEN_QUERY}=`;
  const tokens = tokenVerifier(options.interceptTokenKeys ?? {});
  /**
   * The request as the router sees it, with the claims of tokens minted for the policy that serves
   * the host, when that policy asks for any.
   */
  const viewOf = async (req: IncomingMessage, snapshot: Snapshot) => {
    const view = requestView(req.method ?? 'GET', req.headers);
    if (!usesTokens(snapshot)) return view;
    const policy = snapshot.index.policyFor(view.authority);
    if (!policy || namesOf(policy).size === 0) return view;
    const audience = tokenAudience(policy.namespace, policy.name);
    return requestView(view.method, req.headers, await tokens.claims(namesOf(policy), audience, view.header));
  };

  /**
   * `?switchyard-token=<token>` on a host whose policy asks for tokens: a browser's way in. A valid
   * token is answered with 303 to the same URL without it and a cookie for this host only; an
   * invalid one with 401. Undefined: not such a request.
   */
  const exchangeToken = async (req: IncomingMessage): Promise<TokenExchange | GatewayError | undefined> => {
    const snapshot = holder.current;
    if (!snapshot || !usesTokens(snapshot) || !req.url?.includes(tokenQuery)) return undefined;
    const policy = snapshot.index.policyFor(req.headers.host ?? '');
    if (!policy || namesOf(policy).size === 0) return undefined;
    const url = new URL(req.url, 'http://gateway');
    const token = url.searchParams.get(TOKEN_QUERY) ?? undefined;
    const payload = await tokens.verify(token, tokenAudience(policy.namespace, policy.name));
    if (!payload)
      return new GatewayError(
        'SY_GW_TOKEN_INVALID',
        `the ${TOKEN_QUERY} is not a valid intercept token for ${policy.namespace}/${policy.name} (forged, expired or minted for another policy): ask for a new one (switchyard token)`,
      );
    url.searchParams.delete(TOKEN_QUERY);
    const maxAge = Math.max(0, (payload.exp as number) - Math.floor(Date.now() / 1000));
    return {
      location: `${url.pathname}${url.search}`,
      cookie: `${TOKEN_COOKIE}=${token}; Path=/; Max-Age=${maxAge}; HttpOnly; Secure; SameSite=Lax`,
    };
  };

  const traffic = Fastify({
    // fastify logs each request at info: too much for a proxy, so its logger starts at warn.
    loggerInstance: logger.child({ server: 'traffic' }, { level: 'warn' }) as FastifyBaseLogger,
    return503OnClosing: true,
    forceCloseConnections: 'idle',
    serverFactory: (handler) =>
      createServer(
        {
          headersTimeout: options.headersTimeoutMs ?? 10_000,
          // Node checks those timeouts only this often (default 30 s), which would let slowloris linger.
          connectionsCheckingInterval: Math.min(1000, Math.ceil((options.headersTimeoutMs ?? 10_000) / 2)),
          requestTimeout: options.requestTimeoutMs ?? 300_000,
          maxHeaderSize: options.maxHeaderSize ?? 16_384,
          keepAliveTimeout: options.keepAliveTimeoutMs ?? 65_000,
        },
        handler,
      ),
  });
  // Bodies are streamed to the upstream untouched: no parser reads them.
  traffic.removeAllContentTypeParsers();
  traffic.addContentTypeParser('*', (_req, _payload, done) => done(null));

  // Every method Node parses is routed (by the split when nothing else matches), as Envoy does;
  // CONNECT is a tunnel, not a request to route.
  for (const method of METHODS)
    if (method !== 'CONNECT' && !traffic.supportedMethods.includes(method))
      traffic.addHttpMethod(method, { hasBody: true });
  traffic.route({
    method: traffic.supportedMethods.filter((m) => m !== 'CONNECT'),
    url: '*',
    handler: async (request, reply) => {
      reply.hijack();
      await handleTraffic(
        request.raw as unknown as IncomingMessage,
        reply.raw as unknown as ServerResponse,
        clientOf(request.raw as unknown as IncomingMessage),
      );
    },
  });

  interface Admitted {
    decision: Decision;
    /** x-switchyard-upstream, ratelimit-* and the sticky cookie, for the response. */
    responseHeaders: Record<string, string | string[]>;
  }

  /**
   * One snapshot → the route's destination → its rate limits: what every request and every
   * upgrade goes through. Returns the error to answer with when the request goes no further.
   */
  async function admit(req: IncomingMessage, client: ClientAddress): Promise<Admitted | GatewayError> {
    const snapshot = holder.current;
    if (!snapshot) return new GatewayError('SY_GW_NOT_READY', 'no configuration loaded yet');
    const view = await viewOf(req, snapshot);
    const decision = decide(snapshot, view, random);
    if (decision instanceof GatewayError) return decision;
    const { policy, destination } = decision;
    const verdicts = await limiter.check(policy, destination.role, {
      clientIp: client.ip,
      header: view.header,
    });
    const limitHeaders = rateLimitHeaders(verdicts);
    const responseHeaders: Record<string, string | string[]> = {
      [UPSTREAM_HEADER]: destination.upstream,
      ...limitHeaders,
    };
    const refused = verdicts.filter((v) => !v.allowed).map((v) => v.limit.name);
    if (refused.length > 0) {
      return new GatewayError(
        'SY_GW_RATE_LIMITED',
        `rate limit ${refused.join(', ')} of ${policy.namespace}/${policy.name} exceeded; retry in ${limitHeaders['retry-after']}s`,
        responseHeaders as Record<string, string>,
      );
    }
    if (destination.setCookie) responseHeaders['set-cookie'] = destination.setCookie;
    return { decision, responseHeaders };
  }

  async function handleTraffic(
    req: IncomingMessage,
    res: ServerResponse,
    client: ClientAddress,
  ): Promise<void> {
    const started = performance.now();
    const exchanged = await exchangeToken(req);
    if (exchanged) {
      let status = 303;
      if (exchanged instanceof GatewayError) status = sendError(res, exchanged);
      else res.writeHead(303, { location: exchanged.location, 'set-cookie': exchanged.cookie }).end();
      metrics.requests.inc({ policy: '', route: '', upstream: '', status });
      return;
    }
    const admitted = await admit(req, client);
    if (admitted instanceof GatewayError) {
      const status = sendError(res, admitted);
      metrics.requests.inc({
        policy: '',
        route: '',
        upstream: admitted.headers[UPSTREAM_HEADER] ?? '',
        status,
      });
      return;
    }
    const { policy, route, destination, url } = admitted.decision;
    const policyName = `${policy.namespace}/${policy.name}`;
    let body: Readable = req;
    if (route.mirror && random() * 100 < route.mirror.percent) {
      const snapshot = holder.current;
      const target = snapshot && pickUpstream(snapshot, policy.namespace, route.mirror.destination.upstream);
      if (target instanceof URL) body = startMirror(req, target, route.mirror.maxBodyBytes, client);
    }
    const outcome = await forward(pools, {
      req,
      body,
      res,
      url,
      upstream: destination.upstream,
      policy,
      client,
      responseHeaders: admitted.responseHeaders,
    });
    const status = outcome instanceof GatewayError ? sendError(res, outcome) : outcome;
    if (outcome instanceof GatewayError) {
      logger.warn(
        { code: outcome.code, upstream: destination.upstream, policy: policyName },
        outcome.message,
      );
    }
    metrics.requests.inc({ policy: policyName, route: route.name, upstream: destination.upstream, status });
    metrics.duration.observe({ policy: policyName }, (performance.now() - started) / 1000);
  }

  /**
   * Copies the request; a body is captured as it streams to the primary, up to the cap. Returns
   * the stream the primary must read its body from.
   */
  function startMirror(
    req: IncomingMessage,
    target: URL,
    maxBodyBytes: number,
    client: ClientAddress,
  ): Readable {
    const copy = {
      url: target,
      method: req.method ?? 'GET',
      path: req.url ?? '/',
      headers: upstreamRequestHeaders(req, client),
    };
    // A slot first: a body is buffered only for a copy that will be sent.
    const slot = mirror.reserve();
    if (!slot) return req;
    if (!hasBody(req)) {
      slot.send(copy);
      return req;
    }
    const chunks: Buffer[] = [];
    let size = 0;
    let tooBig = false;
    // The primary reads from `primary`; listening to 'data' on req alone would let chunks flow past it.
    const primary = new PassThrough();
    req.pipe(primary);
    req.on('data', (chunk: Buffer) => {
      if (tooBig) return;
      size += chunk.length;
      if (size > maxBodyBytes) {
        tooBig = true;
        chunks.length = 0;
      } else chunks.push(chunk);
    });
    req.once('end', () => {
      if (tooBig) {
        metrics.mirror.inc({ result: 'dropped' });
        slot.release();
      } else slot.send({ ...copy, body: Buffer.concat(chunks) });
    });
    // Aborted before its end: nothing to copy, the slot goes back (a no-op after 'end').
    req.once('close', () => slot.release());
    return primary;
  }

  traffic.server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => {
    void handleUpgrade(req, socket, head).catch((err) => {
      logger.error({ err }, 'unexpected error in an upgrade');
      socket.destroy();
    });
  });

  async function handleUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer): Promise<void> {
    socket.on('error', () => undefined);
    if (closing) {
      refuseUpgrade(socket, new GatewayError('SY_GW_NOT_READY', 'shutting down'));
      return;
    }
    const client = clientOf(req);
    const admitted = await admit(req, client);
    if (admitted instanceof GatewayError) {
      refuseUpgrade(socket, admitted);
      return;
    }
    const { policy, route, destination, url } = admitted.decision;
    upgraded.add(socket);
    socket.once('close', () => upgraded.delete(socket));
    const status = await proxyUpgrade(pools, {
      req,
      socket,
      head,
      url,
      upstream: destination.upstream,
      client,
      timeoutMs: policy.timeoutMs ?? DEFAULT_TIMEOUT_MS,
    });
    metrics.requests.inc({
      policy: `${policy.namespace}/${policy.name}`,
      route: route.name,
      upstream: destination.upstream,
      status,
    });
  }

  traffic.setErrorHandler((err, _request, reply) => {
    logger.error({ err }, 'unexpected error in the traffic handler');
    const e = new GatewayError('SY_INTERNAL', 'internal error in the gateway');
    if (!reply.sent)
      reply.code(500).header('x-switchyard-error', e.code).type('application/json').send(e.body());
  });

  const admin = Fastify({
    loggerInstance: logger.child({ server: 'admin' }, { level: 'warn' }) as FastifyBaseLogger,
  });
  admin.get('/healthz', async () => 'ok\n');
  admin.get('/readyz', async (_req, reply) => {
    if (closing) return reply.code(503).send('shutting down\n');
    if (!holder.current)
      return reply
        .code(503)
        .send(
          `no configuration loaded${holder.lastError ? `: ${holder.lastError.problems[0]?.message}` : ''}\n`,
        );
    return 'ok\n';
  });
  admin.get('/metrics', async (_req, reply) => {
    metrics.planGeneration.set(holder.current?.generation ?? 0);
    metrics.mirrorInFlight.set(mirror.pending);
    reply.type(metrics.registry.contentType);
    return metrics.registry.metrics();
  });
  admin.get('/plan', async () => ({
    generation: holder.current?.generation ?? null,
    loadedAt: holder.current?.loadedAt ?? null,
    source: holder.current?.source ?? null,
    plan: holder.current?.plan ?? null,
    lastError: holder.lastError
      ? {
          ...holder.lastError,
          problems: holder.lastError.problems.map((p) => ({ ...p, about: ERROR_CODES[p.code] })),
        }
      : null,
  }));

  return {
    traffic,
    admin,
    metrics,
    async close() {
      closing = true;
      // Keep-alive connections become idle as their last response ends; close them as they do,
      // or server.close() would wait for clients to hang up.
      const sweep = setInterval(() => traffic.server.closeIdleConnections(), 50);
      // At the deadline, whatever is still open (a hung request, a WebSocket) is closed.
      const deadline = setTimeout(() => {
        logger.warn(
          { requests: 'closed', websockets: upgraded.size },
          'drain deadline reached: closing the connections still open',
        );
        traffic.server.closeAllConnections();
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
