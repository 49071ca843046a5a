/**
 * Rate limits → Envoy Gateway's BackendTrafficPolicy (local rate limit), the implementation's own
 * policy where the Gateway API has none (docs/gateway-api.md, "Rate limits"). One object per
 * group of routes it applies to: `<policy>-ratelimit` for `appliesTo: all`, targeting the
 * policy's routes on Gateways; `<policy>-ratelimit-previews` for `appliesTo: previews`, targeting
 * the preview URL routes and the preview rules of the main route (by rule name), holding the
 * policy-wide limits too (Envoy Gateway applies the most specific policy of a rule, not both).
 *
 * Envoy Gateway counts in a token bucket per route and per Envoy, refilled over one unit (second,
 * minute, hour, day, week); what it cannot count is left out with a problem: another window,
 * `appliesTo: stable` or `canary` (the two versions share the split rule), `enforce: false` (its
 * shadow mode is for global limits only), and routes attached to a Service (it is no mesh).
 */
import { type Problem, problem } from '../common/errors.js';
import { type KubeObject, objectMeta } from '../compiler/objects.js';
import type { PolicyPlan, RateLimitPlan } from '../compiler/plan.js';

export const ENVOY_GATEWAY_V1ALPHA1 = 'gateway.envoyproxy.io/v1alpha1';

/** Envoy Gateway's rate limit units, by their length in seconds. */
const UNITS = new Map([
  [1, 'Second'],
  [60, 'Minute'],
  [3600, 'Hour'],
  [86_400, 'Day'],
  [604_800, 'Week'],
]);

type Target = { group: string; kind: string; name: string; sectionName?: string };
type RouteObject = KubeObject & {
  spec: { parentRefs?: { kind?: string }[]; rules?: { name?: string }[] };
};

export interface RenderedRateLimits {
  objects: KubeObject[];
  problems: Problem[];
}

/** The BackendTrafficPolicies for `policy`'s limits, given the routes rendered for it. */
export function renderRateLimitPolicies(
  policy: PolicyPlan,
  routes: readonly KubeObject[],
): RenderedRateLimits {
  const problems: Problem[] = [];
  const countable = policy.rateLimits.filter((rl) => countableByEnvoyGateway(policy, rl, problems));
  const onGateways = (routes as RouteObject[]).filter((r) =>
    (r.spec.parentRefs ?? []).some((p) => (p.kind ?? 'Gateway') === 'Gateway'),
  );
  if (countable.length > 0 && onGateways.length === 0)
    problems.push(
      gap(
        policy,
        'the rate limits apply to routes on a Gateway; this policy has none (Envoy Gateway is no mesh: a route attached to the Service is not its to serve)',
      ),
    );
  const all = countable.filter((rl) => rl.appliesTo === 'all');
  const previews = countable.filter((rl) => rl.appliesTo === 'previews');
  const previewRules = new Set(policy.routes.filter((r) => r.kind.startsWith('preview-')).map((r) => r.name));
  const previewTargets = onGateways.flatMap((r) => previewTargetsOf(r, previewRules));
  const previewRoutes = new Set(previewTargets.filter((t) => !t.sectionName).map((t) => t.name));
  const objects: KubeObject[] = [];
  const wholeRoutes = onGateways
    .filter((r) => previews.length === 0 || !previewRoutes.has(r.metadata.name))
    .map((r) => target(r));
  if (all.length > 0 && wholeRoutes.length > 0)
    objects.push(trafficPolicy(policy, `${policy.name}-ratelimit`, wholeRoutes, all));
  if (previews.length > 0 && previewTargets.length > 0)
    objects.push(
      trafficPolicy(policy, `${policy.name}-ratelimit-previews`, previewTargets, [...all, ...previews]),
    );
  return { objects, problems };
}

function gap(policy: PolicyPlan, message: string): Problem {
  return problem(
    'SY_GATEWAY_API_UNSUPPORTED',
    `TrafficPolicy ${policy.namespace}/${policy.name}: ${message}`,
    undefined,
    'spec.rateLimits',
  );
}

/** Whether Envoy Gateway can count `rl` as written; if not, a problem says why. */
function countableByEnvoyGateway(policy: PolicyPlan, rl: RateLimitPlan, problems: Problem[]): boolean {
  const leftOut = (why: string) => {
    problems.push(gap(policy, `rate limit ${rl.name}: ${why}; it was not written`));
    return false;
  };
  if (!UNITS.has(rl.windowSeconds))
    return leftOut(
      `Envoy Gateway counts per second, minute, hour, day or week, not per ${rl.windowSeconds} s (write the window as one of those)`,
    );
  if (rl.appliesTo === 'stable' || rl.appliesTo === 'canary')
    return leftOut(
      `appliesTo ${rl.appliesTo}: Envoy Gateway limits per route rule, and the stable and canary versions share the split rule`,
    );
  if (!rl.enforce)
    return leftOut("enforce: false: Envoy Gateway's shadow mode is for global rate limits only");
  return true;
}

function target(route: KubeObject, sectionName?: string): Target {
  return {
    group: 'gateway.networking.k8s.io',
    kind: route.kind,
    name: route.metadata.name,
    ...(sectionName ? { sectionName } : {}),
  };
}

/**
 * A route whose rules all serve previews (a preview URL's) as a whole; the preview rules of any
 * other route by their names (a rule is named after the plan's route it carries).
 */
function previewTargetsOf(route: RouteObject, previewRules: ReadonlySet<string>): Target[] {
  const names = (route.spec.rules ?? []).map((r) => r.name ?? '');
  if (names.length > 0 && names.every((n) => previewRules.has(n))) return [target(route)];
  return names.filter((n) => previewRules.has(n)).map((n) => target(route, n));
}

function trafficPolicy(
  policy: PolicyPlan,
  name: string,
  targetRefs: Target[],
  limits: RateLimitPlan[],
): KubeObject {
  return {
    apiVersion: ENVOY_GATEWAY_V1ALPHA1,
    kind: 'BackendTrafficPolicy',
    metadata: objectMeta(policy, name),
    spec: { targetRefs, rateLimit: { local: { rules: limits.flatMap(rateLimitRules) } } },
  };
}

/** One limit → Envoy Gateway's rules: a bucket per header value or client address, or one for the route. */
function rateLimitRules(rl: RateLimitPlan): Record<string, unknown>[] {
  const limit = { requests: rl.limit, unit: UNITS.get(rl.windowSeconds) };
  switch (rl.key.type) {
    case 'header':
      return [{ clientSelectors: [{ headers: [{ name: rl.key.header, type: 'Distinct' }] }], limit }];
    case 'clientIp':
      // One CIDR a selector: IPv4 and IPv6 clients each by address.
      return ['0.0.0.0/0', '::/0'].map((value) => ({
        clientSelectors: [{ sourceCIDR: { type: 'Distinct', value } }],
        limit,
      }));
    case 'route':
      return [{ limit }];
  }
}
