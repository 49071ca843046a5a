/** Which rule a request hits and where it goes, read from the RoutePlan (`switchyard explain`). */
import { indexPlan, limitAppliesTo, matchRoute, type RequestView } from './evaluate.js';
import type { RateLimitPlan, RoutePlan } from './plan.js';

export interface Explanation {
  host: string;
  policy?: string;
  route?: string;
  kind?: string;
  /** 1-based position of the route in the policy's ordered list. */
  position?: number;
  routes?: number;
  destinations: {
    upstream: string;
    weight: number;
    host: string;
    subset?: string;
    port: number;
    setCookie?: string;
  }[];
  mirror?: { upstream: string; percent: number };
  rateLimits: RateLimitPlan[];
}

export function explainRequest(plan: RoutePlan, req: RequestView): Explanation {
  const policy = indexPlan(plan).policyFor(req.authority);
  if (!policy) return { host: req.authority, destinations: [], rateLimits: [] };
  const route = matchRoute(policy, req);
  const base = {
    host: req.authority,
    policy: `${policy.namespace}/${policy.name}`,
    routes: policy.routes.length,
  };
  if (!route) return { ...base, destinations: [], rateLimits: [] };
  // A weighted route may go to either side: list every limit that can count the request.
  const roles = [...new Set(route.destinations.filter((d) => d.weight > 0).map((d) => d.role))];
  const applies = (rl: RateLimitPlan) => roles.some((role) => limitAppliesTo(rl, role));
  const out: Explanation = {
    ...base,
    route: route.name,
    kind: route.kind,
    position: policy.routes.indexOf(route) + 1,
    destinations: route.destinations.map((d) => ({
      upstream: d.upstream,
      weight: d.weight,
      host: d.host,
      ...(d.subset ? { subset: d.subset } : {}),
      port: d.port,
      ...(d.setCookie ? { setCookie: d.setCookie } : {}),
    })),
    rateLimits: policy.rateLimits.filter(applies),
  };
  if (route.mirror)
    out.mirror = { upstream: route.mirror.destination.upstream, percent: route.mirror.percent };
  return out;
}

/** A RequestView from plain values (the CLI's flags, the conformance table). */
export function requestFrom(input: {
  host: string;
  method?: string;
  headers?: Record<string, string>;
  claims?: Record<string, string>;
}): RequestView {
  const headers = new Map(Object.entries(input.headers ?? {}).map(([k, v]) => [k.toLowerCase(), v]));
  const claims = input.claims ?? {};
  return {
    authority: input.host,
    method: (input.method ?? 'GET').toUpperCase(),
    header: (name) => headers.get(name),
    claim: (name) => claims[name],
  };
}
