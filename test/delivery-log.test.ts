/** GitHub delivery ids taken once: in memory, and in a real Redis shared by two replicas. */
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { memoryDeliveryLog, redisDeliveryLog } from '../pr-bot/webhook-deliveries.js';
import { redisAvailable, startRedis, type TestRedis } from './support/redis.js';

describe('delivery log', () => {
  it('in memory: once within the TTL, again after it', async () => {
    let now = 0;
    const log = memoryDeliveryLog(() => now, 60);
    expect(await log.firstTime('a')).toBe(true);
    expect(await log.firstTime('a')).toBe(false);
    now = 61_000;
    expect(await log.firstTime('a')).toBe(true);
  });

  describe.skipIf(!redisAvailable() && !process.env.CI)('in Redis', () => {
    let server: TestRedis;
    const clients: Redis[] = [];
    beforeAll(async () => {
      server = await startRedis();
    });
    afterAll(async () => {
      for (const c of clients) c.disconnect();
      await server?.stop();
    });

    it('two replicas sharing Redis act on a delivery once between them, and it expires', async () => {
      const [a, b] = [new Redis(server.url), new Redis(server.url)];
      clients.push(a, b);
      const id = `test-${Date.now()}-${Math.random()}`;
      const results = await Promise.all([
        redisDeliveryLog(a, 1).firstTime(id),
        redisDeliveryLog(b, 1).firstTime(id),
      ]);
      expect(results.sort()).toEqual([false, true]);
      expect(await a.ttl(`switchyard:github-delivery:${id}`)).toBeGreaterThan(0);
      await new Promise((r) => setTimeout(r, 1100));
      expect(await redisDeliveryLog(b, 1).firstTime(id)).toBe(true);
    });
  });
});
