/**
 * Rate limits as the plan states them, counted in fixed windows aligned to the clock (as
 * envoyproxy/ratelimit: the key holds the window start). With Redis, every gateway replica shares
 * one count (rate-limiter-flexible's RateLimiterRedis over ioredis). Without Redis the count is per
 * process (the embedded default), in a plain map per limit and window: counted synchronously, with
 * no promise or timer per request (a fifth of the gateway's requests/s went to rate-limiter-flexible's
 * in-memory limiter; load-tests/README.md).
 *
 * Under `gateway --workers N` without Redis, the workers' counts are kept by the primary process
 * (rate-limiter-flexible's RateLimiterCluster over the cluster's IPC), so a limit stays exact
 * across workers; with Redis, Redis is the shared count and memory only the per-worker fallback.
 *
 * Redis that dies or stalls (a full disk, a SIGSTOP, a partition that drops packets) must neither
 * fail nor hold requests. Each command is bounded (ioredis `commandTimeout`, gateway/start.ts); a
 * failure or timeout opens a breaker for `storeRetryMs`, during which an in-memory limiter counts
 * and no request waits for Redis; then one request at a time probes Redis until it answers again.
 * So at most the requests in flight when Redis stalls wait, each for at most the command timeout.
 */
import { createHash } from 'node:crypto';
import type { Redis } from 'ioredis';
import {
  type RateLimiterAbstract,
  RateLimiterCluster,
  RateLimiterRedis,
  RateLimiterRes,
} from 'rate-limiter-flexible';
import { limitAppliesTo } from '../core/compiler/evaluate.js';
import type { DestinationRole, PolicyPlan, RateLimitPlan } from '../core/compiler/plan.js';
import { Breaker } from './breaker.js';

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
  /** Redis failed (`unavailable`) or did not answer in time (`timeout`); memory counted instead. */
  storeError(reason: 'timeout' | 'unavailable'): void;
  /** A request counted in memory because Redis is away. */
  fallback(): void;
}

export interface RateLimiterOptions {
  redis?: Redis;
  clock?: Clock;
  keyPrefix?: string;
  counters?: RateLimitCounters;
  /** How long Redis is left alone after a failure before one request tries it again (default 1 s). */
  storeRetryMs?: number;
  /** Monotonic milliseconds, for the breaker (the window clock may be a test's fixed one). */
  monotonicNow?: () => number;
  /**
   * Distinct key values one limit counts separately per window and gateway process (default
   * 10,000); values beyond share one count. Keys come from client headers and addresses: without a
   * bound, a client sending a new value per request grows memory and Redis without end.
   */
  maxKeysPerWindow?: number;
  /** A worker of `gateway --workers N`: without Redis, count in the primary (exact across workers). */
  clusterWorker?: boolean;
}

/** What one limit's key values are counted under: long ones hashed, new ones past the cap pooled. */
const OVERFLOW_KEY = '\u0000overflow';
const MAX_KEY_VALUE_LENGTH = 64;

const TIMEOUT_MESSAGE = /timed out/i;

/** What a limit's key reads of a request besides the client address: its headers (a RequestView). */
export interface RequestHeaders {
  header(name: string): string | undefined;
}

/** One limit's window: the count of each key value seen in it (the in-memory count, when memory counts). */
interface Window {
  windowStart: number;
  counts: Map<string, number>;
}

export class RateLimiter {
  /** Shared counts: Redis, or the cluster primary; absent when this process counts alone. */
  private readonly limiters = new Map<
    string,
    { store?: RateLimiterAbstract; cluster?: RateLimiterAbstract }
  >();
  private readonly clock: Clock;
  /** Closed: use Redis. Open: count in memory, and one request at a time probes Redis. */
  private readonly breaker: Breaker;
  /** Each limit's id (`namespace/policy/limit`), built once per limit of a plan, not per request. */
  private readonly limitIds = new WeakMap<RateLimitPlan, string>();
  /** Per limit: the window counted now. */
  private readonly windows = new Map<string, Window>();

  constructor(private readonly options: RateLimiterOptions = {}) {
    this.clock = options.clock ?? { now: () => Date.now() };
    this.breaker = new Breaker(options.storeRetryMs ?? 1000, options.monotonicNow);
  }

  private shared(limit: RateLimitPlan) {
    const id = `${limit.limit}/${limit.windowSeconds}`;
    let l = this.limiters.get(id);
    if (!l) {
      // The window start is part of every key, so each key lives one window (plus a margin).
      const opts = {
        points: limit.limit,
        duration: limit.windowSeconds + 1,
        keyPrefix: this.options.keyPrefix ?? 'switchyard:rl',
      };
      l = this.options.redis
        ? {
            store: new RateLimiterRedis({
              ...opts,
              storeClient: this.options.redis,
              rejectIfRedisNotReady: true,
            }),
          }
        : // Each cluster limiter needs its own prefix: the primary keeps one count per prefix.
          {
            cluster: new RateLimiterCluster({
              ...opts,
              keyPrefix: `${opts.keyPrefix}:${id}`,
              timeoutMs: 1000,
            }),
          };
      this.limiters.set(id, l);
    }
    return l;
  }

  /** Counts one request in this process: the points left, or -1 when over the limit. */
  private countLocally(limit: RateLimitPlan, window: Window, value: string): number {
    const n = (window.counts.get(value) ?? 0) + 1;
    window.counts.set(value, n);
    return n > limit.limit ? -1 : limit.limit - n;
  }

  /** Counts one request in Redis while it answers (else in memory) or in the cluster primary. */
  private async countShared(
    limit: RateLimitPlan,
    key: string,
    window: Window,
    value: string,
  ): Promise<number> {
    const { store, cluster } = this.shared(limit);
    const counter = store && this.breaker.tryNow() ? store : cluster;
    if (counter) {
      try {
        const res = await counter.consume(key, 1);
        if (store) this.breaker.succeeded();
        return res.remainingPoints;
      } catch (e) {
        if (e instanceof RateLimiterRes) {
          if (store) this.breaker.succeeded();
          return -1;
        }
        if (!store) throw e;
        this.breaker.failed();
        this.options.counters?.storeError(
          TIMEOUT_MESSAGE.test(String((e as Error)?.message)) ? 'timeout' : 'unavailable',
        );
      }
    }
    this.options.counters?.fallback();
    return this.countLocally(limit, window, value);
  }

  /**
   * The value as counted: at most 64 characters (a longer one is hashed), and one of at most
   * `maxKeysPerWindow` per limit and window (later new values share the overflow count).
   */
  private boundedValue(window: Window, value: string): string {
    const v =
      value.length > MAX_KEY_VALUE_LENGTH
        ? `sha256:${createHash('sha256').update(value).digest('hex').slice(0, 32)}`
        : value;
    if (window.counts.has(v)) return v;
    if (window.counts.size >= (this.options.maxKeysPerWindow ?? 10_000)) return OVERFLOW_KEY;
    window.counts.set(v, 0);
    return v;
  }

  private window(limitId: string, windowStart: number): Window {
    let w = this.windows.get(limitId);
    if (!w || w.windowStart !== windowStart) {
      w = { windowStart, counts: new Map() };
      this.windows.set(limitId, w);
    }
    return w;
  }

  /** The value a request is counted under, or undefined when it carries no such value (not limited). */
  private keyValue(limit: RateLimitPlan, clientIp: string, req: RequestHeaders): string | undefined {
    switch (limit.key.type) {
      case 'clientIp':
        return clientIp;
      case 'header':
        return req.header(limit.key.header);
      case 'route':
        // Every request to the limited destinations shares one count, as Envoy's per-pod bucket does.
        return '*';
    }
  }

  /**
   * Counts the request against every limit that applies to its destination. Synchronous when this
   * process counts alone; a promise when Redis or the cluster primary keeps the count.
   */
  check(
    policy: PolicyPlan,
    role: DestinationRole,
    clientIp: string,
    req: RequestHeaders,
  ): LimitVerdict[] | Promise<LimitVerdict[]> {
    if (policy.rateLimits.length === 0) return [];
    const now = this.clock.now();
    const local = !this.options.redis && !this.options.clusterWorker;
    const verdicts: (LimitVerdict | Promise<LimitVerdict>)[] = [];
    let waits = false;
    for (const limit of policy.rateLimits) {
      if (!limitAppliesTo(limit, role)) continue;
      const value = this.keyValue(limit, clientIp, req);
      const windowMs = limit.windowSeconds * 1000;
      const windowStart = Math.floor(now / windowMs) * windowMs;
      const resetSeconds = Math.max(1, Math.ceil((windowStart + windowMs - now) / 1000));
      if (value === undefined) {
        verdicts.push({ limit, allowed: true, remaining: limit.limit, resetSeconds });
        continue;
      }
      let limitId = this.limitIds.get(limit);
      if (limitId === undefined) {
        limitId = `${policy.namespace}/${policy.name}/${limit.name}`;
        this.limitIds.set(limit, limitId);
      }
      const window = this.window(limitId, windowStart);
      const counted = this.boundedValue(window, value);
      if (local) {
        verdicts.push(this.verdict(policy, limit, this.countLocally(limit, window, counted), resetSeconds));
        continue;
      }
      waits = true;
      verdicts.push(
        this.countShared(limit, `${limitId}/${windowStart}/${counted}`, window, counted).then(
          (remaining) => this.verdict(policy, limit, remaining, resetSeconds),
          () => {
            // Not even the cluster primary answered: let the request through rather than fail it.
            this.options.counters?.storeError('unavailable');
            return { limit, allowed: true, remaining: limit.limit, resetSeconds };
          },
        ),
      );
    }
    return waits ? Promise.all(verdicts) : (verdicts as LimitVerdict[]);
  }

  /** A count's verdict: `remaining` is -1 when over the limit (counted, and refused if enforced). */
  private verdict(
    policy: PolicyPlan,
    limit: RateLimitPlan,
    remaining: number,
    resetSeconds: number,
  ): LimitVerdict {
    if (remaining >= 0) return { limit, allowed: true, remaining, resetSeconds };
    this.options.counters?.limited(policy, limit, limit.enforce);
    return { limit, allowed: !limit.enforce, remaining: 0, resetSeconds };
  }
}
/**
 * The IETF draft `ratelimit-*` headers for the most restrictive enforced verdict, and `retry-after`
 * when refused, written into `headers`. Returns whether a limit refused the request.
 */
export function addRateLimitHeaders(
  all: readonly LimitVerdict[],
  headers: Record<string, string | string[]>,
): boolean {
  // A dry run (enforce: false) only counts: it tells the client nothing. Refused verdicts come
  // before allowed ones; among either, the fewest remaining. Loops, not filter/reduce: every
  // counted request comes here.
  let pick: LimitVerdict | undefined;
  let retryAfter = 0;
  for (const v of all) {
    if (!v.limit.enforce) continue;
    if (!v.allowed) retryAfter = Math.max(retryAfter, v.resetSeconds);
    if (!pick || (!v.allowed && pick.allowed) || (v.allowed === pick.allowed && v.remaining < pick.remaining))
      pick = v;
  }
  if (!pick) return false;
  headers['ratelimit-limit'] = String(pick.limit.limit);
  headers['ratelimit-remaining'] = String(pick.remaining);
  headers['ratelimit-reset'] = String(pick.resetSeconds);
  if (retryAfter === 0) return false;
  headers['retry-after'] = String(retryAfter);
  return true;
}
