/**
 * Which GitHub deliveries were already taken (`x-github-delivery`), so a redelivery does nothing
 * twice: Redis `SET NX` with a TTL when Redis is configured (shared by every replica), memory
 * otherwise.
 */
import type { Redis } from 'ioredis';

export interface DeliveryLog {
  /** True the first time `id` is seen within the TTL. */
  firstTime(id: string): Promise<boolean>;
  /** Forgets `id`: its handling failed, so a redelivery must be acted on. */
  forget(id: string): Promise<void>;
}

const TTL_S = 24 * 3600;

export function memoryDeliveryLog(now: () => number = Date.now, ttlS = TTL_S): DeliveryLog {
  const seen = new Map<string, number>();
  return {
    async firstTime(id) {
      const t = now();
      for (const [k, until] of seen) if (until < t) seen.delete(k);
      if (seen.has(id)) return false;
      seen.set(id, t + ttlS * 1000);
      return true;
    },
    async forget(id) {
      seen.delete(id);
    },
  };
}

export function redisDeliveryLog(redis: Redis, ttlS = TTL_S): DeliveryLog {
  return {
    async firstTime(id) {
      return (await redis.set(`switchyard:github-delivery:${id}`, '1', 'EX', ttlS, 'NX')) === 'OK';
    },
    async forget(id) {
      await redis.del(`switchyard:github-delivery:${id}`);
    },
  };
}
