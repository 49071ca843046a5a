/**
 * Rate limits as the plan states them, counted in fixed windows aligned to the clock (as
 * envoyproxy/ratelimit: the key holds the window start). With Redis, every gateway replica shares
 * one count (rate-limiter-flexible's RateLimiterRedis over ioredis); an in-memory insurance limiter
 * takes over while Redis is unreachable, so Redis going away neither blocks nor fails a request.
 * Without Redis the count is per process (the embedded default).
 */
import type { Redis } from 'ioredis';
import {
  type RateLimiterAbstract,
  RateLimiterMemory,
  RateLimiterRedis,
  RateLimiterRes,
} from 'rate-limiter-flexible';
import { limitAppliesTo } from '../src/compiler/evaluate.js';
import type { DestinationRole, PolicyPlan, RateLimitPlan } from '../src/compiler/plan.js';

export interface Clock {
  now(): number;
}

export interface LimitVerdict {
  limit: RateLimitPlan;
  allowed: boolean;
  remaining: number;
  /** Seconds until the window resets. */
  resetSeconds: number;
}

export interface RateLimitCounters {
  limited(policy: PolicyPlan, limit: RateLimitPlan, enforced: boolean): void;
  storeError(): void;
}

export interface RateLimiterOptions {
  redis?: Redis;
  clock?: Clock;
  keyPrefix?: string;
  counters?: RateLimitCounters;
}

export interface RequestKeys {
  clientIp: string;
  header(name: string): string | undefined;
}

export class RateLimiter {
  private readonly limiters = new Map<string, RateLimiterAbstract>();
  private readonly clock: Clock;

  constructor(private readonly options: RateLimiterOptions = {}) {
    this.clock = options.clock ?? { now: () => Date.now() };
  }

  private limiter(limit: RateLimitPlan): RateLimiterAbstract {
    const id = `${limit.limit}/${limit.windowSeconds}`;
    let l = this.limiters.get(id);
    if (!l) {
      // The window start is part of every key, so each key lives one window (plus a margin).
      const opts = {
        points: limit.limit,
        duration: limit.windowSeconds + 1,
        keyPrefix: this.options.keyPrefix ?? 'switchyard:rl',
      };
      if (this.options.redis) {
        l = new RateLimiterRedis({
          ...opts,
          storeClient: this.options.redis,
          rejectIfRedisNotReady: true,
          insuranceLimiter: new RateLimiterMemory(opts),
        });
      } else {
        l = new RateLimiterMemory(opts);
      }
      this.limiters.set(id, l);
    }
    return l;
  }

  /** The value a request is counted under, or undefined when it carries no such value (not limited). */
  private keyValue(limit: RateLimitPlan, req: RequestKeys): string | undefined {
    switch (limit.key.type) {
      case 'clientIp':
        return req.clientIp;
      case 'header':
        return req.header(limit.key.header);
      case 'route':
        // Every request to the limited destinations shares one count, as Envoy's per-pod bucket does.
        return '*';
    }
  }

  /** Counts the request against every limit that applies to its destination. */
  async check(policy: PolicyPlan, role: DestinationRole, req: RequestKeys): Promise<LimitVerdict[]> {
    const limits = policy.rateLimits.filter((l) => limitAppliesTo(l, role));
    if (limits.length === 0) return [];
    const now = this.clock.now();
    return Promise.all(
      limits.map(async (limit) => {
        const value = this.keyValue(limit, req);
        const windowMs = limit.windowSeconds * 1000;
        const windowStart = Math.floor(now / windowMs) * windowMs;
        const resetSeconds = Math.max(1, Math.ceil((windowStart + windowMs - now) / 1000));
        if (value === undefined) return { limit, allowed: true, remaining: limit.limit, resetSeconds };
        const key = `${policy.namespace}/${policy.name}/${limit.name}/${windowStart}/${value}`;
        try {
          const res = await this.limiter(limit).consume(key, 1);
          return { limit, allowed: true, remaining: res.remainingPoints, resetSeconds };
        } catch (e) {
          if (e instanceof RateLimiterRes) {
            this.options.counters?.limited(policy, limit, limit.enforce);
            return { limit, allowed: !limit.enforce, remaining: 0, resetSeconds };
          }
          // Neither Redis nor the insurance limiter answered: count it, let the request through.
          this.options.counters?.storeError();
          return { limit, allowed: true, remaining: limit.limit, resetSeconds };
        }
      }),
    );
  }
}

/** The IETF draft `ratelimit-*` headers for the most restrictive verdict, and `retry-after` when refused. */
export function rateLimitHeaders(verdicts: readonly LimitVerdict[]): Record<string, string> {
  if (verdicts.length === 0) return {};
  const refused = verdicts.filter((v) => !v.allowed);
  const pick = (refused.length > 0 ? refused : verdicts).reduce((a, b) =>
    b.remaining < a.remaining ? b : a,
  );
  const headers: Record<string, string> = {
    'ratelimit-limit': String(pick.limit.limit),
    'ratelimit-remaining': String(pick.remaining),
    'ratelimit-reset': String(pick.resetSeconds),
  };
  if (refused.length > 0) headers['retry-after'] = String(Math.max(...refused.map((v) => v.resetSeconds)));
  return headers;
}
