/**
 * An independent reading of rendered HTTPRoutes and GRPCRoutes, written from the Gateway API
 * specification (HTTPRouteRule and GRPCRouteRule docs, v1.6) and not from Switchyard's plan or
 * renderer: take the routes of the parent whose hostnames cover the request's host (an exact
 * hostname before a wildcard, no hostnames for any host), order every match of them by
 * precedence — exact path, longest prefix path, method, most headers, most query parameters, then
 * the oldest route, then namespace/name, then rule and match order as written — and take the first
 * whose conditions all hold (a missing header never matches; regexes are RE2 over the whole
 * value). Report its weighted backends by the x-switchyard-upstream header they set.
 */
import { RE2JS } from 're2js';

interface HeaderMatch {
  name: string;
  type?: 'Exact' | 'RegularExpression';
  value: string;
}

interface RouteMatch {
  path?: { type?: string; value?: string };
  method?: string;
  headers?: HeaderMatch[];
  queryParams?: unknown[];
}

interface BackendRef {
  name: string;
  weight?: number;
  filters?: {
    type: string;
    responseHeaderModifier?: { set?: HeaderMatch[]; add?: HeaderMatch[] };
  }[];
}

export interface RouteObject {
  kind: string;
  metadata: { name: string; namespace: string; creationTimestamp?: string };
  spec: {
    parentRefs: { kind?: string; name: string; namespace?: string }[];
    hostnames?: string[];
    rules: {
      name?: string;
      matches?: RouteMatch[];
      backendRefs?: BackendRef[];
      filters?: { type: string }[];
    }[];
  };
}

export interface RouteRequest {
  host: string;
  method: string;
  path?: string;
  headers: Record<string, string>;
}

export interface RouteDecision {
  route?: string;
  rule?: string;
  destinations: { upstream: string; weight: number; setCookie?: string }[];
  mirrored: boolean;
}

const compiled = new Map<string, RE2JS>();
function fullMatch(pattern: string, value: string): boolean {
  let re = compiled.get(pattern);
  if (!re) {
    re = RE2JS.compile(pattern);
    compiled.set(pattern, re);
  }
  return re.matches(value);
}

/** 2: exact hostname, 1: wildcard, 0: no hostnames (any host), -1: not this host. */
function hostnameFit(route: RouteObject, host: string): number {
  const names = route.spec.hostnames ?? [];
  if (names.length === 0) return 0;
  if (names.includes(host)) return 2;
  return names.some((n) => n.startsWith('*.') && host.endsWith(n.slice(1))) ? 1 : -1;
}

function pathOf(m: RouteMatch): { type: string; value: string } {
  return { type: m.path?.type ?? 'PathPrefix', value: m.path?.value ?? '/' };
}

function holds(m: RouteMatch, req: RouteRequest): boolean {
  const path = pathOf(m);
  const reqPath = req.path ?? '/';
  if (path.type === 'Exact' && reqPath !== path.value) return false;
  if (
    path.type === 'PathPrefix' &&
    !(path.value === '/' || reqPath === path.value || reqPath.startsWith(`${path.value.replace(/\/$/, '')}/`))
  )
    return false;
  if (m.method && m.method !== req.method) return false;
  const seen = new Set<string>();
  for (const h of m.headers ?? []) {
    const name = h.name.toLowerCase();
    // Only the first of equivalent names counts.
    if (seen.has(name)) continue;
    seen.add(name);
    const value = req.headers[name];
    if (value === undefined) return false;
    if ((h.type ?? 'Exact') === 'Exact' ? value !== h.value : !fullMatch(h.value, value)) return false;
  }
  return true;
}

/** Sort key of a match (larger first): exact path, prefix length, method, headers, query params. */
function precedence(m: RouteMatch, grpc: boolean): number[] {
  if (grpc) return [m.headers?.length ?? 0];
  const path = pathOf(m);
  return [
    path.type === 'Exact' ? 1 : 0,
    path.type === 'PathPrefix' ? path.value.length : 0,
    m.method ? 1 : 0,
    m.headers?.length ?? 0,
    m.queryParams?.length ?? 0,
  ];
}

/**
 * The decision for `req` among the routes attached to `parent` (a Gateway's or a Service's name):
 * the routes of the best-fitting hostname only, then the first match by precedence.
 */
export function evaluateRoutes(objects: RouteObject[], parent: string, req: RouteRequest): RouteDecision {
  const host = req.host.replace(/:[0-9]+$/, '').toLowerCase();
  const attached = objects.filter(
    (o) =>
      (o.kind === 'HTTPRoute' || o.kind === 'GRPCRoute') && o.spec.parentRefs.some((p) => p.name === parent),
  );
  const best = Math.max(-1, ...attached.map((r) => hostnameFit(r, host)));
  if (best < 0) return { destinations: [], mirrored: false };
  const routes = attached
    .filter((r) => hostnameFit(r, host) === best)
    .sort(
      (a, b) =>
        (a.metadata.creationTimestamp ?? '').localeCompare(b.metadata.creationTimestamp ?? '') ||
        `${a.metadata.namespace}/${a.metadata.name}`.localeCompare(
          `${b.metadata.namespace}/${b.metadata.name}`,
        ),
    );
  const candidates = routes.flatMap((route, routeIndex) =>
    route.spec.rules.flatMap((rule, ruleIndex) =>
      (rule.matches && rule.matches.length > 0 ? rule.matches : [{}]).map((match, matchIndex) => ({
        route,
        rule,
        match,
        key: [...precedence(match, route.kind === 'GRPCRoute'), -routeIndex, -ruleIndex, -matchIndex],
      })),
    ),
  );
  candidates.sort((a, b) => {
    for (let i = 0; i < a.key.length; i++)
      if (a.key[i] !== b.key[i]) return (b.key[i] as number) - (a.key[i] as number);
    return 0;
  });
  const hit = candidates.find((c) => holds(c.match, req));
  if (!hit) return { destinations: [], mirrored: false };
  return {
    route: `${hit.route.metadata.namespace}/${hit.route.metadata.name}`,
    ...(hit.rule.name ? { rule: hit.rule.name } : {}),
    destinations: (hit.rule.backendRefs ?? []).map((b) => {
      const modifier = b.filters?.find((f) => f.type === 'ResponseHeaderModifier')?.responseHeaderModifier;
      const cookie = modifier?.add?.find((h) => h.name.toLowerCase() === 'set-cookie')?.value;
      return {
        upstream: modifier?.set?.find((h) => h.name === 'x-switchyard-upstream')?.value ?? '?',
        weight: b.weight ?? 1,
        ...(cookie ? { setCookie: cookie } : {}),
      };
    }),
    mirrored: (hit.rule.filters ?? []).some((f) => f.type === 'RequestMirror'),
  };
}
