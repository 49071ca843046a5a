/**
 * A policy's routes → Gateway API routes: an HTTPRoute (a GRPCRoute for `upstreamProtocol:
 * http2`) per set of parents, with the plan's routes as rules in the plan's order (order.ts keeps
 * it under the API's precedence), and one HTTPRoute per preview URL on the preview Gateway (the
 * API matches hosts by `hostnames`, not by a header). Backends are the per-version Services
 * (`<service>--<version>`) and the preview Services.
 */
import { toGatewayApiDuration } from '../common/duration.js';
import { type Problem, problem } from '../common/errors.js';
import { tokenAudience, versionServiceName } from '../compiler/names.js';
import { type KubeObject, objectMeta } from '../compiler/objects.js';
import {
  type Destination,
  type PolicyPlan,
  type RequestMatch,
  type Route,
  type StringMatch,
  UPSTREAM_HEADER,
  type WeightedDestination,
} from '../compiler/plan.js';
import { TOKEN_CLAIM_HEADERS, TOKEN_HEADER } from '../tokens/intercept-token.js';
import { type ApiMatch, type HeaderCondition, headerCondition, methodsOf } from './matches.js';
import { keepPlanOrder, type OrderConflict, type OrderedRule } from './order.js';

export const GATEWAY_API_V1 = 'gateway.networking.k8s.io/v1';

/** Which Gateway API CRDs the cluster has: retries exist only in the experimental channel. */
export type GatewayApiChannel = 'standard' | 'experimental';

/** The Gateway API's own limits on one route (its CRD refuses more). */
export const ROUTE_LIMITS = { rules: 16, matches: 128, matchesPerRule: 64, headersPerMatch: 16 };

type Kind = 'HTTPRoute' | 'GRPCRoute';
type ParentRef = Record<string, string | number>;

/** What one policy renders to, and what it asked for that could not be written. */
export interface RenderedRoutes {
  objects: KubeObject[];
  problems: Problem[];
}

interface Context {
  policy: PolicyPlan;
  kind: Kind;
  channel: GatewayApiChannel;
  problems: Problem[];
  /** The route being written: for problems that concern one route of a policy. */
  routeName?: string;
  /**
   * Whether a token verifier stands before the route and writes the claim headers: a Gateway's
   * Envoy does (its token policy); a route attached to a Service (GAMMA) is applied by the
   * client's own proxy, which verifies nothing, so there a claim header is whatever the client sent.
   */
  claimsVerified: boolean;
  /** The route being written is attached to the Service (GAMMA). */
  gamma?: boolean;
}

interface ParentSet {
  name: string;
  parentRefs: ParentRef[];
  hostnames: string[];
  gamma: boolean;
  /** Its Gateways, `namespace/name`. */
  gateways: string[];
}

/** Whether the Gateway `namespace/name` verifies intercept tokens and writes the claim headers. */
export type TokenVerifier = (gateway: string) => boolean;

/** `verifies`: which Gateways verify intercept tokens (render.ts); token routes go only on those. */
export function renderRoutes(
  policy: PolicyPlan,
  channel: GatewayApiChannel,
  verifies: TokenVerifier | boolean,
): RenderedRoutes {
  const verifier: TokenVerifier = typeof verifies === 'boolean' ? () => verifies : verifies;
  const kind: Kind = policy.upstreamProtocol === 'http2' ? 'GRPCRoute' : 'HTTPRoute';
  const problems: Problem[] = [];
  const c: Context = { policy, kind, channel, problems, claimsVerified: false };
  reportPolicyGaps(c);
  const main = policy.routes.filter((r) => r.kind !== 'preview-host');
  const objects = parentSets(c).map((set) => {
    const inSet: Context = {
      ...c,
      routeName: set.name,
      gamma: set.gamma,
      claimsVerified: !set.gamma && set.gateways.every(verifier),
    };
    return routeObject(inSet, set.name, set.parentRefs, set.hostnames, orderedRules(inSet, main));
  });
  if (policy.previewGateway)
    for (const r of policy.routes.filter((x) => x.kind === 'preview-host')) {
      const host = hostOfPreviewRoute(policy, r);
      if (!host) continue;
      const parent = gatewayParent(policy.previewGateway, policy.namespace);
      const name = `${policy.name}-${r.name}`;
      const claimsVerified = verifier(gatewayRef(policy.previewGateway, policy.namespace));
      const rules = orderedRules({ ...c, routeName: name, claimsVerified }, [r]);
      // Its one route left out (and reported): no route for the host, which then answers 404.
      if (rules.length > 0) objects.push(routeObject(c, name, [parent], [host], rules));
    }
  // Two parent sets share the plan's routes: a route left out of both is reported once.
  return { objects, problems: uniqueProblems(problems) };
}

function uniqueProblems(problems: Problem[]): Problem[] {
  const seen = new Set<string>();
  return problems.filter((p) => !seen.has(p.message) && seen.add(p.message) !== undefined);
}

/** `preview-host-<ref>` → `<ref>`. */
function previewRefOf(r: Route): string {
  return r.name.slice('preview-host-'.length);
}

/** The preview URL host a preview-host route serves (the compiler names both after the ref). */
function hostOfPreviewRoute(policy: PolicyPlan, r: Route): string | undefined {
  const ref = previewRefOf(r);
  return policy.previewHosts.find((h) => h.startsWith(`${ref}--`));
}

/** Parents of the policy's main route: its Gateways (north-south, with its hosts), or its Service (GAMMA). */
function parentSets(c: Context): ParentSet[] {
  const { policy } = c;
  const gateways = policy.gateways.filter((g) => g !== 'mesh');
  const mesh = policy.gateways.length === 0 || policy.gateways.includes('mesh');
  const sets: ParentSet[] = [];
  if (gateways.length > 0)
    sets.push({
      name: policy.name,
      parentRefs: gateways.map((g) => gatewayParent(g, policy.namespace)),
      hostnames: [...policy.hosts],
      gamma: false,
      gateways: gateways.map((g) => gatewayRef(g, policy.namespace)),
    });
  if (mesh)
    sets.push({
      name: gateways.length > 0 ? `${policy.name}-mesh` : policy.name,
      // GAMMA: the route takes the traffic sent to the Service, whatever name it was sent by.
      parentRefs: [{ group: '', kind: 'Service', name: policy.service, port: policy.port }],
      hostnames: [],
      gamma: true,
      gateways: [],
    });
  return sets;
}

/** `namespace/name` or `name` (the policy's namespace) → `namespace/name`. */
function gatewayRef(ref: string, namespace: string): string {
  return ref.includes('/') ? ref : `${namespace}/${ref}`;
}

/** `namespace/name` or `name` (the policy's namespace) → a parentRef to a Gateway. */
function gatewayParent(ref: string, namespace: string): ParentRef {
  const [ns, name] = gatewayRef(ref, namespace).split('/', 2) as [string, string];
  return { group: 'gateway.networking.k8s.io', kind: 'Gateway', namespace: ns, name };
}

function routeObject(
  c: Context,
  name: string,
  parentRefs: ParentRef[],
  hostnames: string[],
  rules: Record<string, unknown>[],
): KubeObject {
  return {
    apiVersion: GATEWAY_API_V1,
    kind: c.kind,
    metadata: objectMeta(c.policy, name),
    spec: { parentRefs, ...(hostnames.length > 0 ? { hostnames } : {}), rules },
  };
}

/** What the policy asks for that this kind of route or channel cannot carry: reported once. */
function reportPolicyGaps(c: Context): void {
  const { policy } = c;
  const gap = (message: string, path: string) =>
    c.problems.push(
      problem('SY_GATEWAY_API_UNSUPPORTED', `${policyName(policy)}: ${message}`, undefined, path),
    );
  if (c.kind === 'GRPCRoute' && policy.timeoutMs !== undefined)
    gap('a GRPCRoute has no timeouts in the Gateway API; the timeout was not written', 'spec.timeout');
  if (policy.retries?.attempts === 0 && c.kind === 'HTTPRoute' && c.channel === 'experimental')
    gap(
      "retries.attempts 0 cannot be written (the Gateway API's retry takes at least 1 attempt); the implementation's default retries apply",
      'spec.retries.attempts',
    );
  if (policy.retries && c.kind === 'GRPCRoute')
    gap('a GRPCRoute has no retries in the Gateway API; the retries were not written', 'spec.retries');
  else if (policy.retries && c.channel === 'standard')
    gap(
      "retries need the Gateway API's experimental channel (HTTPRoute retry); the cluster has the standard one, so the retries were not written",
      'spec.retries',
    );
  // GAMMA serves what is sent to the Service, by whatever name: other hosts need a Gateway.
  const own = new Set([
    policy.service,
    `${policy.service}.${policy.namespace}`,
    `${policy.service}.${policy.namespace}.svc`,
    policy.serviceHost,
  ]);
  const elsewhere = policy.hosts.filter((h) => !own.has(h));
  if (policy.gateways.every((g) => g === 'mesh') && elsewhere.length > 0)
    gap(
      `a route attached to the Service (GAMMA) takes only the traffic sent to Service ${policy.namespace}/${policy.service}; ${elsewhere.join(', ')} are not served without a Gateway (set spec.gateways)`,
      'spec.hosts',
    );
  if (policy.previewHosts.length > 0 && !policy.previewGateway)
    gap(
      'preview URLs need a Gateway: set spec.previews.gateway or spec.gateways (the preview URLs were not rendered)',
      'spec.previews.domain',
    );
}

function policyName(policy: PolicyPlan): string {
  return `TrafficPolicy ${policy.namespace}/${policy.name}`;
}

/**
 * The plan's routes as rules the API will try in the plan's order: matches translated, joins
 * added (order.ts), and what cannot be kept in order or within the API's limits of one route left
 * out, each with a problem.
 */
function orderedRules(c: Context, routes: readonly Route[]): Record<string, unknown>[] {
  let candidates: Candidate[] = [];
  for (const route of routes) {
    const matches = translateMatches(c, route);
    if (matches !== undefined)
      candidates.push({ route, rule: { name: route.name, matches, action: actionKey(route) } });
  }
  const leftOut: Route[] = [];
  for (;;) {
    const fitting = fewEnoughRules(candidates);
    const ordered = keepPlanOrder(
      fitting.map((t) => t.rule),
      c.kind === 'HTTPRoute',
    );
    const rules = fitting.map((t, i) => ({ route: t.route, rule: ordered.rules[i] as OrderedRule }));
    const conflicted = new Set(ordered.conflicts.map((x) => x.later));
    const victim = ordered.tooManyJoins || !withinMatchLimits(rules) ? nextVictim(fitting) : undefined;
    if (conflicted.size === 0 && !victim) {
      for (const t of candidates) if (!fitting.includes(t)) leftOut.push(t.route);
      for (const route of leftOut) reportLeftOut(c, route);
      return rules.map(({ route, rule }) => renderRule(c, route, rule));
    }
    // Conflicts first: leaving them out may make room for the rest.
    for (const x of ordered.conflicts) reportOrderConflict(c, x);
    if (conflicted.size === 0 && victim) leftOut.push(victim.route);
    candidates = candidates.filter((t) =>
      conflicted.size > 0 ? !conflicted.has(t.route.name) : t !== victim,
    );
  }
}

interface Candidate {
  route: Route;
  rule: OrderedRule;
}

/**
 * Which route to leave out first when a route's rules do not fit: sticky classes, the last first
 * (their requests fall to the split, which draws and stamps them again), then the plan's later
 * routes; never the split, which serves everything else.
 */
function nextVictim(candidates: Candidate[]): Candidate | undefined {
  const last = (kinds: (k: Route['kind']) => boolean) => candidates.filter((t) => kinds(t.route.kind)).at(-1);
  return last((k) => k === 'sticky') ?? last((k) => k !== 'split');
}

/** The candidates left after leaving out victims until at most ROUTE_LIMITS.rules remain. */
function fewEnoughRules(candidates: Candidate[]): Candidate[] {
  const kept = [...candidates];
  while (kept.length > ROUTE_LIMITS.rules) {
    const victim = nextVictim(kept);
    if (!victim) break;
    kept.splice(kept.indexOf(victim), 1);
  }
  return kept;
}

function withinMatchLimits(rules: { rule: OrderedRule }[]): boolean {
  const sizes = rules.map((t) => Math.max(1, t.rule.matches.length));
  return (
    sizes.reduce((a, b) => a + b, 0) <= ROUTE_LIMITS.matches &&
    sizes.every((n) => n <= ROUTE_LIMITS.matchesPerRule) &&
    rules.every((t) => t.rule.matches.every((m) => m.headers.size <= ROUTE_LIMITS.headersPerMatch))
  );
}

function reportOrderConflict(c: Context, x: OrderConflict): void {
  c.problems.push(
    problem(
      'SY_ROUTE_ORDER',
      `${policyName(c.policy)}: route ${x.later} matches some requests route ${x.earlier} matches, and is more specific; the Gateway API would try it first, and the two cannot be kept in order (each matches one header with a different pattern), so ${x.later} was left out`,
    ),
  );
}

function reportLeftOut(c: Context, route: Route): void {
  c.problems.push(
    problem(
      'SY_GATEWAY_API_UNSUPPORTED',
      `${policyName(c.policy)}: route ${route.name} does not fit in one ${c.kind} (the Gateway API allows ${ROUTE_LIMITS.rules} rules, ${ROUTE_LIMITS.matches} matches a route and ${ROUTE_LIMITS.headersPerMatch} headers a match); it was left out${route.kind === 'sticky' ? ', and its clients are drawn again by the split' : ''}`,
    ),
  );
}

/** Where the request goes and what is done to it: two routes with the same key act the same. */
function actionKey(route: Route): string {
  return JSON.stringify([route.destinations, route.mirror ?? null]);
}

/**
 * A route's matches as the API writes them, or undefined when the route cannot be written (it
 * reads token claims where nothing verifies them, or, as a GRPCRoute, only methods other than POST).
 */
function translateMatches(c: Context, route: Route): ApiMatch[] | undefined {
  if (!c.claimsVerified && route.matches.some((m) => m.claims)) {
    c.problems.push(problem('SY_GATEWAY_API_UNSUPPORTED', unverifiedTokenRoute(c, route)));
    return undefined;
  }
  if (route.matches.some((m) => Object.keys(m.claims ?? {}).length > 1)) {
    c.problems.push(
      problem(
        'SY_GATEWAY_API_UNSUPPORTED',
        `${policyName(c.policy)}: route ${route.name} matches two token claims, and a token stands for one header; it was left out`,
      ),
    );
    return undefined;
  }
  const out = route.matches.flatMap((m) => apiMatches(c, m));
  // Every match asked for methods gRPC never sends: the route can match nothing, so it is not
  // written (an empty list would match everything).
  if (route.matches.length > 0 && out.length === 0) return undefined;
  return out;
}

function unverifiedTokenRoute(c: Context, route: Route): string {
  const why = c.gamma
    ? `${c.kind} ${c.routeName} is attached to the Service (GAMMA: the client's own proxy routes it, and verifies nothing)`
    : `not every Gateway of ${c.kind} ${c.routeName} verifies intercept tokens (Istio: the controller's --token-jwks; Envoy Gateway: render's --token-gateway; docs/gateway-api.md, "Intercept tokens")`;
  return `${policyName(c.policy)}: route ${route.name} requires an intercept token, and ${why}; it was left out, and its requests take the routes after it`;
}

/** One plan match → the API matches whose union is the same set of requests (one per method). */
function apiMatches(c: Context, m: RequestMatch): ApiMatch[] {
  const headers = new Map<string, HeaderCondition>();
  for (const [name, value] of Object.entries(m.headers ?? {})) headers.set(name, headerCondition(value));
  if (m.claims) for (const [name, value] of claimHeaders(c.policy, m.claims)) headers.set(name, value);
  if (!m.method) return [{ headers }];
  const methods = methodsOf(m.method) ?? [];
  // gRPC is always POST: a method condition holds for every request or for none.
  if (c.kind === 'GRPCRoute') return methods.includes('POST') ? [{ headers }] : [];
  return methods.map((method) => ({ method, headers }));
}

/**
 * Token claims as the headers the Gateway's verifier writes from a verified token
 * (TOKEN_CLAIM_HEADERS; it removes any a client sent): `aud` is this policy, and the header and
 * value the token stands for. A plan's match holds one claim (a token stands for one header).
 */
function claimHeaders(
  policy: PolicyPlan,
  claims: Readonly<Record<string, StringMatch>>,
): [string, HeaderCondition][] {
  const out: [string, HeaderCondition][] = [
    [TOKEN_CLAIM_HEADERS.aud, { type: 'Exact', value: tokenAudience(policy.namespace, policy.name) }],
  ];
  for (const [header, value] of Object.entries(claims))
    out.push(
      [TOKEN_CLAIM_HEADERS.intercept_header, { type: 'Exact', value: header }],
      [TOKEN_CLAIM_HEADERS.intercept_value, headerCondition(value)],
    );
  return out;
}

function renderRule(c: Context, route: Route, rule: OrderedRule): Record<string, unknown> {
  const out: Record<string, unknown> = { name: route.name };
  if (rule.matches.length > 0) out.matches = rule.matches.map((m) => renderMatch(c, m));
  out.backendRefs = route.destinations.map((d) => backendRef(c.policy, d));
  // The intercept token is Switchyard's, never the application's: some verifiers forward it
  // (Envoy Gateway's JWT filter always does), so every rule drops it before the upstream.
  const filters: Record<string, unknown>[] = [
    { type: 'RequestHeaderModifier', requestHeaderModifier: { remove: [TOKEN_HEADER] } },
  ];
  out.filters = filters;
  if (route.mirror)
    filters.push({
      type: 'RequestMirror',
      requestMirror: {
        backendRef: serviceRef(c.policy, route.mirror.destination),
        ...mirrorShare(route.mirror.percent),
      },
    });
  if (c.kind === 'HTTPRoute') Object.assign(out, timeoutsAndRetry(c));
  return out;
}

function renderMatch(c: Context, m: ApiMatch): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  if (c.kind === 'HTTPRoute') out.path = { type: 'PathPrefix', value: '/' };
  if (m.method) out.method = m.method;
  if (m.headers.size > 0)
    out.headers = [...m.headers].map(([name, h]) => ({ name, type: h.type, value: h.value }));
  return out;
}

/** The Service that serves a destination: a preview's own, or the per-version one. */
function serviceRef(policy: PolicyPlan, d: Destination): Record<string, unknown> {
  const name =
    d.role === 'preview' ? (d.host.split('.')[0] as string) : versionServiceName(policy.service, d.version);
  return { name, port: d.port };
}

function backendRef(policy: PolicyPlan, d: WeightedDestination): Record<string, unknown> {
  // Every answer names the destination that gave it, and a sticky canary's carries its cookie.
  const responseHeaderModifier: Record<string, unknown> = {
    set: [{ name: UPSTREAM_HEADER, value: d.upstream }],
  };
  if (d.setCookie) responseHeaderModifier.add = [{ name: 'set-cookie', value: d.setCookie }];
  return {
    ...serviceRef(policy, d),
    weight: d.weight,
    filters: [{ type: 'ResponseHeaderModifier', responseHeaderModifier }],
  };
}

/** A whole percentage as `percent`; a fraction of one (0.5 %) as `fraction` per million. */
function mirrorShare(percent: number): Record<string, unknown> {
  if (Number.isInteger(percent)) return { percent };
  return { fraction: { numerator: Math.round(percent * 10_000), denominator: 1_000_000 } };
}

function timeoutsAndRetry(c: Context): Record<string, unknown> {
  const { policy } = c;
  const out: Record<string, unknown> = {};
  const timeouts: Record<string, string> = {};
  if (policy.timeoutMs !== undefined) timeouts.request = toGatewayApiDuration(policy.timeoutMs);
  const retries = c.channel === 'experimental' && policy.retries?.attempts ? policy.retries : undefined;
  if (retries?.perTryTimeoutMs !== undefined)
    // A try cannot outlast the request: the API refuses a backendRequest above request.
    timeouts.backendRequest = toGatewayApiDuration(
      Math.min(retries.perTryTimeoutMs, policy.timeoutMs ?? Infinity),
    );
  if (Object.keys(timeouts).length > 0) out.timeouts = timeouts;
  if (retries) {
    const codes = retryCodes(retries.on);
    out.retry = { attempts: retries.attempts, ...(codes.length > 0 ? { codes } : {}) };
  }
  return out;
}

/** Envoy's retry-on names → the status codes the API retries on; connection failures it retries itself. */
export function retryCodes(on: readonly string[]): number[] {
  const codes = new Set<number>();
  for (const name of on) {
    if (/^[45][0-9]{2}$/.test(name)) codes.add(Number(name));
    else if (name === '5xx') for (const n of [500, 501, 502, 503, 504]) codes.add(n);
    else if (name === 'gateway-error') for (const n of [502, 503, 504]) codes.add(n);
  }
  return [...codes].sort((a, b) => a - b);
}
