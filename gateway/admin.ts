/**
 * The admin API, on its own port (127.0.0.1 by default): health, readiness (a plan is loaded and
 * the gateway is not draining), Prometheus metrics and the plan in force with its last error.
 */
import Fastify, { type FastifyBaseLogger, type FastifyInstance } from 'fastify';
import type { Logger } from 'pino';
import { ERROR_CODES } from '../core/common/errors.js';
import type { GatewayMetrics } from './metrics.js';
import type { Mirror } from './mirror.js';
import type { PlanHolder } from './plan-holder.js';

export function adminServer(parts: {
  holder: PlanHolder;
  metrics: GatewayMetrics;
  mirror: Mirror;
  logger: Logger;
  isClosing: () => boolean;
}): FastifyInstance {
  const { holder, metrics, mirror } = parts;
  const admin = Fastify({
    loggerInstance: parts.logger.child({ server: 'admin' }, { level: 'warn' }) as FastifyBaseLogger,
  });
  admin.get('/healthz', async () => 'ok\n');
  admin.get('/readyz', async (_req, reply) => {
    if (parts.isClosing()) return reply.code(503).send('shutting down\n');
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
  return admin;
}
