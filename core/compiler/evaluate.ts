/**
 * Carrying out a RoutePlan for one request: which policy serves the host, which route matches
 * first, and which destination a weighted route picks. `switchyard explain` and the gateway both
 * use this, so there is one reading of the plan outside Envoy.
 */
import { fullMatcher } from '../common/regex.js';
import type {
  DestinationRole,
  PolicyPlan,
  RateLimitPlan,
  RequestMatch,
  Route,
  RoutePlan,
  StringMatch,
  WeightedDestination,
} from './plan.js';

export interface RequestView {
  /** The raw Host / :authority value, port included. */
  authority: string;
  method: string;
  /** A header's value by lowercase name; repeated headers joined as Envoy joins them. */
  header(name: string): string | undefined;
  /** Claims of a verified intercept token, when the request carried one. */
  claim?(name: string): string | undefined;
}

export function matchString(m: StringMatch, value: string | undefined): boolean {
  if (value === undefined) return false;
  if ('exact' in m) return value === m.exact;
  if ('prefix' in m) return value.startsWith(m.prefix);
  return fullMatcher(m.regex)(value);
}

export function matchRequest(m: RequestMatch, req: RequestView): boolean {
  if (m.authority && !matchString(m.authority, req.authority)) return false;
  if (m.method && !matchString(m.method, req.method)) return false;
  // for-in rather than Object.entries: this runs for every route of every request (no arrays made).
  const { headers, claims } = m;
  if (headers)
    for (const name in headers)
      if (!matchString(headers[name] as StringMatch, req.header(name))) return false;
  if (claims)
    for (const name in claims) if (!matchString(claims[name] as StringMatch, req.claim?.(name))) return false;
  return true;
}

/** What matching a policy's routes needs, worked out once per policy of a plan. */
interface RouteTable {
  previewHosts: ReadonlySet<string>;
  /** Every header and claim name any route reads. */
  headers: readonly string[];
  claims: readonly string[];
  /**
   * In order, the routes that can match a request carrying none of those headers and claims: those
   * with a match that reads none. (A missing header or claim never matches, so no other route can.)
   */
  withoutHeaders: readonly Route[];
}

const routeTables = new WeakMap<PolicyPlan, RouteTable>();
function routeTableOf(policy: PolicyPlan): RouteTable {
  let table = routeTables.get(policy);
  if (!table) {
    const headers = new Set<string>();
    const claims = new Set<string>();
    const readsNone = (m: RequestMatch) => {
      for (const h in m.headers) headers.add(h);
      for (const c in m.claims) claims.add(c);
      return Object.keys(m.headers ?? {}).length === 0 && Object.keys(m.claims ?? {}).length === 0;
    };
    const withoutHeaders = policy.routes.filter(
      // Every match is visited (no short cut), so every name read is collected.
      (r) => r.matches.length === 0 || r.matches.map(readsNone).includes(true),
    );
    table = {
      previewHosts: new Set(policy.previewHosts),
      headers: [...headers],
      claims: [...claims],
      withoutHeaders,
    };
    routeTables.set(policy, table);
  }
  return table;
}

/**
 * The first route that matches (first match wins), or undefined. A preview URL host is served by
 * its preview-host routes alone (in Istio they are a VirtualService of their own): a request there
 * that none of them admits (no token) gets no route, never the stable split. Most requests carry
 * none of the headers the intercepts and previews read: those are matched against the routes that
 * read none, so a policy's many preview routes cost them nothing.
 */
export function matchRoute(policy: PolicyPlan, req: RequestView): Route | undefined {
  const table = routeTableOf(policy);
  const onPreviewHost =
    policy.previewHosts.length > 0 && table.previewHosts.has(hostWithoutPort(req.authority));
  let routes = table.withoutHeaders;
  for (const h of table.headers)
    if (req.header(h) !== undefined) {
      routes = policy.routes;
      break;
    }
  if (routes !== policy.routes)
    for (const c of table.claims)
      if (req.claim?.(c) !== undefined) {
        routes = policy.routes;
        break;
      }
  // Loops rather than find/some with closures: this runs for every request.
  for (const r of routes) {
    if ((r.kind === 'preview-host') !== onPreviewHost) continue;
    if (r.matches.length === 0) return r;
    for (const m of r.matches) if (matchRequest(m, req)) return r;
  }
  return undefined;
}

/** Picks by weight; `roll` is uniform in [0, 100). Zero-weight destinations are never picked. */
export function pickDestination(route: Route, roll: number): WeightedDestination {
  let acc = 0;
  for (const d of route.destinations) {
    acc += d.weight;
    if (roll < acc) return d;
  }
  return route.destinations.findLast((d) => d.weight > 0) ?? (route.destinations[0] as WeightedDestination);
}

/** `Shop.Example.com:8443` → `shop.example.com`. */
export function hostWithoutPort(authority: string): string {
  const a = authority.toLowerCase();
  if (a.startsWith('[')) return a.slice(0, a.indexOf(']') + 1);
  const i = a.lastIndexOf(':');
  return i === -1 ? a : a.slice(0, i);
}

export interface PlanIndex {
  policyFor(authority: string): PolicyPlan | undefined;
}

/** Host → policy, built once per plan. Exact names win over `*.` wildcards; longer wildcards first. */
export function indexPlan(plan: RoutePlan): PlanIndex {
  const exact = new Map<string, PolicyPlan>();
  const wildcards: [string, PolicyPlan][] = [];
  for (const p of plan.policies) {
    for (const h of [...p.hostAliases, ...p.previewHosts]) {
      if (h.startsWith('*.')) wildcards.push([h.slice(1), p]);
      else if (!exact.has(h)) exact.set(h, p);
    }
  }
  wildcards.sort((a, b) => b[0].length - a[0].length);
  return {
    policyFor(authority) {
      const host = hostWithoutPort(authority);
      return (
        exact.get(host) ??
        wildcards.find(([suffix]) => host.endsWith(suffix) && host.length > suffix.length)?.[1]
      );
    },
  };
}

/** Whether a rate limit counts requests that go to a destination of this role (`appliesTo`). */
export function limitAppliesTo(limit: RateLimitPlan, role: DestinationRole): boolean {
  return (
    limit.appliesTo === 'all' ||
    (limit.appliesTo === 'stable' && role === 'stable') ||
    (limit.appliesTo === 'canary' && role === 'canary') ||
    (limit.appliesTo === 'previews' && role === 'preview')
  );
}
