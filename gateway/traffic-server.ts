/**
 * The traffic port's HTTP server: Node's, with slowloris guards, every method Node parses routed to
 * one handler (as Envoy routes any method), bodies left unread for the proxy to stream, and an
 * unexpected error answered 500 with a code rather than a crash.
 */
import { createServer, type IncomingMessage, METHODS, type ServerResponse } from 'node:http';
import Fastify, { type FastifyBaseLogger, type FastifyInstance } from 'fastify';
import type { Logger } from 'pino';
import { GatewayError } from './errors.js';

export interface ServerLimits {
  /** Slowloris guard: the whole request head must arrive within this time. */
  headersTimeoutMs?: number;
  requestTimeoutMs?: number;
  maxHeaderSize?: number;
  keepAliveTimeoutMs?: number;
}

export function trafficServer(
  limits: ServerLimits,
  logger: Logger,
  handle: (req: IncomingMessage, res: ServerResponse) => Promise<void>,
): FastifyInstance {
  const traffic = Fastify({
    // fastify logs each request at info: too much for a proxy, so its logger starts at warn.
    loggerInstance: logger.child({ server: 'traffic' }, { level: 'warn' }) as FastifyBaseLogger,
    return503OnClosing: true,
    forceCloseConnections: 'idle',
    serverFactory: (handler) =>
      createServer(
        {
          headersTimeout: limits.headersTimeoutMs ?? 10_000,
          // Node checks those timeouts only this often (default 30 s), which would let slowloris linger.
          connectionsCheckingInterval: Math.min(1000, Math.ceil((limits.headersTimeoutMs ?? 10_000) / 2)),
          requestTimeout: limits.requestTimeoutMs ?? 300_000,
          maxHeaderSize: limits.maxHeaderSize ?? 16_384,
          keepAliveTimeout: limits.keepAliveTimeoutMs ?? 65_000,
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
      await handle(request.raw as unknown as IncomingMessage, reply.raw as unknown as ServerResponse);
    },
  });
  traffic.setErrorHandler((err, _request, reply) => {
    logger.error({ err }, 'unexpected error in the traffic handler');
    const e = new GatewayError('SY_INTERNAL', 'internal error in the gateway');
    if (!reply.sent)
      reply.code(500).header('x-switchyard-error', e.code).type('application/json').send(e.body());
  });
  return traffic;
}
