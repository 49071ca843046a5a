/**
 * The Redis both the gateway (shared rate limits) and the controller (webhook deliveries seen, across
 * replicas) may use: connected by the CLI, which composes the parts, and handed to them.
 */
import { Redis } from 'ioredis';
import type { Logger } from '../core/common/logger.js';

/** The longest a request waits for Redis: a stalled Redis then opens the limiter's breaker. */
export const DEFAULT_REDIS_COMMAND_TIMEOUT_MS = 100;

export function connectRedis(
  url: string,
  logger: Logger,
  commandTimeoutMs = DEFAULT_REDIS_COMMAND_TIMEOUT_MS,
  /** What a person is told Redis being away means for them. */
  whileAway = 'rate limits count in memory until it is back',
): Redis {
  const redis = new Redis(url, {
    // Fail fast while Redis is away or stalled, so the in-memory limiter answers instead.
    enableOfflineQueue: false,
    maxRetriesPerRequest: 0,
    commandTimeout: commandTimeoutMs,
    connectTimeout: 1000,
    retryStrategy: (times) => Math.min(times * 200, 2000),
  });
  redis.on('error', (err) => logger.warn({ err: err.message }, `redis unavailable; ${whileAway}`));
  return redis;
}
