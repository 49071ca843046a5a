/**
 * Rate limits → EnvoyFilters with Envoy's local rate limit on the inbound side of the selected
 * pods. One EnvoyFilter per (appliesTo, enforce) group, because a workload selector and
 * `filter_enforced` are per filter. Differences from the gateway (docs/routing.md, "Rate limits"):
 * Envoy counts per pod in a token bucket refilled every window; the gateway counts across all
 * replicas in a fixed window in Redis. Per-value buckets (a header or client IP key) use Envoy's
 * dynamic descriptors (an entry with no value), which need Envoy ≥ 1.34 (Istio ≥ 1.26).
 */

import { type KubeObject, objectMeta } from '../compiler/objects.js';
import type { PolicyPlan, RateLimitPlan } from '../compiler/plan.js';
import { PREVIEW_ROLE_LABEL } from '../resources/labels.js';
import type { AppliesTo } from '../resources/schema.js';
import { NETWORKING_V1ALPHA3 } from './objects.js';

const LOCAL_RATELIMIT = 'envoy.filters.http.local_ratelimit';
const LOCAL_RATELIMIT_TYPE =
  'type.googleapis.com/envoy.extensions.filters.http.local_ratelimit.v3.LocalRateLimit';
const TYPED_STRUCT = 'type.googleapis.com/udpa.type.v1.TypedStruct';
/** Distinct header values / client IPs each Envoy keeps a bucket for (Envoy's default is 20). */
export const MAX_DYNAMIC_DESCRIPTORS = 10_000;

function percent(value: number) {
  return { default_value: { numerator: value, denominator: 'HUNDRED' } };
}

function bucket(limit: number, windowSeconds: number) {
  return { max_tokens: limit, tokens_per_fill: limit, fill_interval: `${windowSeconds}s` };
}

/**
 * Envoy refills a bucket gradually (one token every window/limit), so a refused client may retry
 * after that long; of several limits in one filter, the slowest to refill.
 */
function retryAfterSeconds(limits: readonly RateLimitPlan[]): number {
  return Math.max(...limits.map((rl) => Math.ceil(rl.windowSeconds / rl.limit)));
}

function action(rl: RateLimitPlan): Record<string, unknown> {
  switch (rl.key.type) {
    case 'header':
      return { request_headers: { header_name: rl.key.header, descriptor_key: rl.name } };
    case 'clientIp':
      return { remote_address: {} };
    case 'route':
      return { generic_key: { descriptor_key: rl.name, descriptor_value: rl.name } };
  }
}

function descriptor(rl: RateLimitPlan): Record<string, unknown> {
  const entry =
    rl.key.type === 'header'
      ? { key: rl.name }
      : rl.key.type === 'clientIp'
        ? { key: 'remote_address' }
        : { key: rl.name, value: rl.name };
  return { entries: [entry], token_bucket: bucket(rl.limit, rl.windowSeconds) };
}

function selector(policy: PolicyPlan, appliesTo: AppliesTo): Record<string, string> {
  const labels = { ...policy.workloadLabels };
  if (appliesTo === 'stable') labels[policy.versionLabel] = policy.stable;
  if (appliesTo === 'canary' && policy.canary) labels[policy.versionLabel] = policy.canary.version;
  if (appliesTo === 'previews') labels[PREVIEW_ROLE_LABEL] = 'preview';
  return labels;
}

export function envoyFilterName(policy: PolicyPlan, appliesTo: AppliesTo, enforce: boolean): string {
  return `${policy.name}-ratelimit-${appliesTo}${enforce ? '' : '-shadow'}`;
}

/** One EnvoyFilter: the local rate-limit filter inserted before the router, and its per-route config. */
function renderGroup(
  policy: PolicyPlan,
  appliesTo: AppliesTo,
  enforce: boolean,
  limits: RateLimitPlan[],
): KubeObject {
  const name = envoyFilterName(policy, appliesTo, enforce);
  const statPrefix = `switchyard_${policy.namespace}_${name}`.replace(/-/g, '_');
  const filterName = `${LOCAL_RATELIMIT}.${name}`;
  return {
    apiVersion: NETWORKING_V1ALPHA3,
    kind: 'EnvoyFilter',
    metadata: objectMeta(policy, name),
    spec: {
      workloadSelector: { labels: selector(policy, appliesTo) },
      configPatches: [
        {
          applyTo: 'HTTP_FILTER',
          match: {
            context: 'SIDECAR_INBOUND',
            listener: {
              filterChain: {
                filter: {
                  name: 'envoy.filters.network.http_connection_manager',
                  subFilter: { name: 'envoy.filters.http.router' },
                },
              },
            },
          },
          patch: {
            operation: 'INSERT_BEFORE',
            value: {
              name: filterName,
              typed_config: {
                '@type': TYPED_STRUCT,
                type_url: LOCAL_RATELIMIT_TYPE,
                value: { stat_prefix: statPrefix },
              },
            },
          },
        },
        {
          applyTo: 'HTTP_ROUTE',
          match: {
            context: 'SIDECAR_INBOUND',
            routeConfiguration: { vhost: { name: `inbound|http|${policy.port}`, route: { action: 'ANY' } } },
          },
          patch: {
            operation: 'MERGE',
            value: {
              typed_per_filter_config: {
                [filterName]: {
                  '@type': TYPED_STRUCT,
                  type_url: LOCAL_RATELIMIT_TYPE,
                  value: localRateLimitConfig(statPrefix, enforce, limits),
                },
              },
            },
          },
        },
      ],
    },
  };
}

/** The local rate limit's per-route config: a catch-all bucket, and one descriptor per limit. */
function localRateLimitConfig(statPrefix: string, enforce: boolean, limits: RateLimitPlan[]) {
  return {
    stat_prefix: statPrefix,
    // Requests that match no descriptor are not limited: the default bucket never runs dry.
    token_bucket: { max_tokens: 4294967295, tokens_per_fill: 4294967295, fill_interval: '1s' },
    filter_enabled: { runtime_key: `${statPrefix}_enabled`, ...percent(100) },
    // Both must be set, or Envoy limits nothing; enforce: false counts would-be 429s only.
    filter_enforced: { runtime_key: `${statPrefix}_enforced`, ...percent(enforce ? 100 : 0) },
    always_consume_default_token_bucket: false,
    max_dynamic_descriptors: MAX_DYNAMIC_DESCRIPTORS,
    // No x-ratelimit-* headers: Envoy would send the catch-all bucket's 4294967295 on requests no
    // limit matches, and a dry run's counts to clients it never refuses. A 429 says when to retry.
    ...(enforce
      ? {
          response_headers_to_add: [
            {
              append_action: 'OVERWRITE_IF_EXISTS_OR_ADD',
              header: { key: 'retry-after', value: String(retryAfterSeconds(limits)) },
            },
          ],
        }
      : {}),
    // The actions that make each request's descriptors live in the filter's own config (Envoy
    // ≥ 1.33): Envoy 1.40 warns that descriptors fed by the route's `rate_limits` will stop working,
    // and the route's list is shared by every filter patched into it.
    rate_limits: limits.map((rl) => ({ actions: [action(rl)] })),
    descriptors: limits.map(descriptor),
  };
}

const APPLIES_ORDER: AppliesTo[] = ['all', 'stable', 'canary', 'previews'];

export function renderEnvoyFilters(policy: PolicyPlan): KubeObject[] {
  const out: KubeObject[] = [];
  for (const appliesTo of APPLIES_ORDER) {
    for (const enforce of [true, false]) {
      const limits = policy.rateLimits.filter((rl) => rl.appliesTo === appliesTo && rl.enforce === enforce);
      if (limits.length > 0) out.push(renderGroup(policy, appliesTo, enforce, limits));
    }
  }
  return out;
}
