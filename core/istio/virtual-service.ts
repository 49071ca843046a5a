/**
 * RoutePlan routes → Istio HTTPRoutes. One VirtualService serves the policy's hosts; when preview
 * URLs exist a second one serves exactly those hosts on the preview Gateway, so every host still
 * has exactly one VirtualService and neither set of hosts is exposed on the other's gateways.
 */

import { toProtoDuration } from '../common/duration.js';
import { cutName, tokenAudience } from '../compiler/names.js';
import { type KubeObject, objectMeta } from '../compiler/objects.js';
import type {
  Destination,
  PolicyPlan,
  RequestMatch,
  Route,
  StringMatch,
  WeightedDestination,
} from '../compiler/plan.js';
import { TOKEN_ISSUER } from '../tokens/intercept-token.js';
import { NETWORKING_V1, UPSTREAM_HEADER } from './objects.js';

function msToDuration(ms: number): string {
  return toProtoDuration(`${ms}ms`);
}

function stringMatch(m: StringMatch): Record<string, string> {
  return { ...m };
}

/** Claims are read from a token verified at the gateway (core/istio/request-authentication.ts). */
const CLAIM = (name: string) => `@request.auth.claims.${name}`;

function renderMatch(m: RequestMatch, audience: string): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  if (m.authority) out.authority = stringMatch(m.authority);
  if (m.method) out.method = stringMatch(m.method);
  const headers: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(m.headers ?? {})) headers[k] = stringMatch(v);
  if (m.claims) {
    // The token must be Switchyard's and minted for this policy: the gateway's Envoy verifies
    // every policy's tokens (and any other issuer's) with one filter.
    headers[CLAIM('iss')] = { exact: TOKEN_ISSUER };
    headers[CLAIM('aud')] = { exact: audience };
    for (const [k, v] of Object.entries(m.claims)) headers[CLAIM(k)] = stringMatch(v);
  }
  if (Object.keys(headers).length > 0) out.headers = headers;
  return out;
}

/**
 * Per-policy memo: a policy with a sticky canary has many routes that send to the same few
 * destinations, so their rendered parts are built once and shared (frozen, so sharing is safe).
 * This halves the time and memory of rendering 1,000 policies.
 */
class Parts {
  private readonly destinations = new Map<string, Readonly<Record<string, unknown>>>();
  private readonly weighted = new Map<string, Readonly<Record<string, unknown>>>();
  private readonly lists = new WeakMap<readonly WeightedDestination[], readonly unknown[]>();
  readonly timeout: string | undefined;
  readonly retries: Readonly<Record<string, unknown>> | undefined;
  readonly audience: string;

  constructor(policy: PolicyPlan) {
    this.audience = tokenAudience(policy.namespace, policy.name);
    this.timeout = policy.timeoutMs === undefined ? undefined : msToDuration(policy.timeoutMs);
    if (policy.retries) {
      const retries: Record<string, unknown> = { attempts: policy.retries.attempts };
      if (policy.retries.perTryTimeoutMs !== undefined)
        retries.perTryTimeout = msToDuration(policy.retries.perTryTimeoutMs);
      if (policy.retries.on.length > 0) retries.retryOn = policy.retries.on.join(',');
      this.retries = Object.freeze(retries);
    }
  }

  destination(d: Destination): Readonly<Record<string, unknown>> {
    const key = `${d.host}|${d.subset ?? ''}|${d.port}`;
    let out = this.destinations.get(key);
    if (!out) {
      out = deepFreeze({ host: d.host, ...(d.subset ? { subset: d.subset } : {}), port: { number: d.port } });
      this.destinations.set(key, out);
    }
    return out;
  }

  routeDestinations(list: readonly WeightedDestination[]): readonly unknown[] {
    let out = this.lists.get(list);
    if (!out) {
      out = Object.freeze(list.map((d) => this.routeDestination(d)));
      this.lists.set(list, out);
    }
    return out;
  }

  private routeDestination(d: WeightedDestination): Readonly<Record<string, unknown>> {
    const key = `${d.upstream}|${d.weight}|${d.setCookie ?? ''}|${d.host}|${d.subset ?? ''}`;
    let out = this.weighted.get(key);
    if (!out) {
      const response: Record<string, unknown> = { set: { [UPSTREAM_HEADER]: d.upstream } };
      if (d.setCookie) response.add = { 'set-cookie': d.setCookie };
      out = deepFreeze({ destination: this.destination(d), weight: d.weight, headers: { response } });
      this.weighted.set(key, out);
    }
    return out;
  }
}

function deepFreeze<T extends object>(o: T): Readonly<T> {
  for (const v of Object.values(o))
    if (typeof v === 'object' && v !== null && !Object.isFrozen(v)) deepFreeze(v);
  return Object.freeze(o);
}

function renderRoute(parts: Parts, r: Route): Record<string, unknown> {
  const out: Record<string, unknown> = { name: r.name };
  if (r.matches.length > 0) out.match = r.matches.map((m) => renderMatch(m, parts.audience));
  out.route = parts.routeDestinations(r.destinations);
  if (r.mirror) {
    out.mirror = parts.destination(r.mirror.destination);
    out.mirrorPercentage = { value: r.mirror.percent };
  }
  if (parts.timeout !== undefined) out.timeout = parts.timeout;
  if (parts.retries) out.retries = parts.retries;
  return out;
}

export function previewVirtualServiceName(policy: PolicyPlan): string {
  return cutName(`${policy.name}-previews`);
}

export function renderVirtualServices(policy: PolicyPlan): KubeObject[] {
  const parts = new Parts(policy);
  const main: Record<string, unknown> = { hosts: [...policy.hosts] };
  if (policy.gateways.length > 0) main.gateways = [...policy.gateways];
  main.http = policy.routes.filter((r) => r.kind !== 'preview-host').map((r) => renderRoute(parts, r));
  const out: KubeObject[] = [
    {
      apiVersion: NETWORKING_V1,
      kind: 'VirtualService',
      metadata: objectMeta(policy, policy.name),
      spec: main,
    },
  ];
  if (policy.previewHosts.length > 0 && policy.previewGateway) {
    out.push({
      apiVersion: NETWORKING_V1,
      kind: 'VirtualService',
      metadata: objectMeta(policy, previewVirtualServiceName(policy)),
      spec: {
        hosts: [...policy.previewHosts],
        gateways: [policy.previewGateway],
        http: policy.routes.filter((r) => r.kind === 'preview-host').map((r) => renderRoute(parts, r)),
      },
    });
  }
  return out;
}
