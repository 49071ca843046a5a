/** The gateway's Prometheus metrics, on a registry of its own (no global default registry). */
import { Counter, Gauge, Registry } from 'prom-client';
import { CountsByLabel, DurationHistogram, RequestCounter } from './request-metrics.js';

export function gatewayMetrics() {
  const registry = new Registry();
  const m = {
    registry,
    // Updated by every request (and copy): counted without prom-client's per-call label work (request-metrics.ts).
    requests: new RequestCounter(registry),
    duration: new DurationHistogram(
      registry,
      [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
    ),
    mirror: new CountsByLabel(
      registry,
      'switchyard_gateway_mirror_total',
      'Mirrored copies: sent, dropped (concurrency cap or body too large) or failed',
      'result',
    ),
    mirrorInFlight: new Gauge({
      name: 'switchyard_gateway_mirror_in_flight',
      help: 'Mirrored copies sent and not yet answered',
      registers: [registry],
    }),
    rateLimited: new Counter({
      name: 'switchyard_gateway_rate_limited_total',
      help: 'Requests over a rate limit; enforced="false" counts would-be 429s',
      labelNames: ['policy', 'limit', 'enforced'] as const,
      registers: [registry],
    }),
    rateLimitStoreErrors: new Counter({
      name: 'switchyard_gateway_rate_limit_store_errors_total',
      help: 'Redis commands of the rate limiter that failed (reason="unavailable") or did not answer within the command timeout (reason="timeout"); each opens the breaker',
      labelNames: ['reason'] as const,
      registers: [registry],
    }),
    rateLimitFallbacks: new Counter({
      name: 'switchyard_gateway_rate_limit_fallback_total',
      help: 'Rate-limit checks counted in memory because Redis was away (the breaker was open)',
      registers: [registry],
    }),
    reloads: new Counter({
      name: 'switchyard_gateway_config_reloads_total',
      help: 'Configuration loads by result (success, error)',
      labelNames: ['result'] as const,
      registers: [registry],
    }),
    leftOut: new Gauge({
      name: 'switchyard_gateway_resources_left_out',
      help: 'Problems that left a policy or preview out of the plan in force (--kube: one tenant mistake, the rest served); the log names each',
      registers: [registry],
    }),
    planGeneration: new Gauge({
      name: 'switchyard_gateway_plan_generation',
      help: 'Generation of the RoutePlan in force',
      registers: [registry],
    }),
  };
  return m;
}

export type GatewayMetrics = ReturnType<typeof gatewayMetrics>;
