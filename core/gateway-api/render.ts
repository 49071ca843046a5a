/**
 * RoutePlan → Gateway API objects, per policy: its routes (http-route.ts), then the per-version
 * Services they send to. What the Gateway API cannot carry is returned as problems, the rest is
 * written (docs/gateway-api.md lists both).
 */
import { type Problem, problem, type Source } from '../common/errors.js';
import type { KubeObject } from '../compiler/objects.js';
import type { PolicyPlan, RoutePlan } from '../compiler/plan.js';
import { offlineService, versionServices } from '../compiler/version-services.js';
import { type GatewayApiChannel, renderRoutes, type TokenVerifier } from './http-route.js';
import { type RenderedRateLimits, renderRateLimitPolicies } from './rate-limits.js';

export interface GatewayApiRenderOptions {
  /** The channel of the Gateway API CRDs on the cluster (retries are experimental). */
  channel: GatewayApiChannel;
  /**
   * Whether the Gateways verify intercept tokens and remove forged claim headers (on Istio, the
   * objects core/istio/request-authentication.ts writes). Without it, a route that requires a token
   * is left out: a claim header would be whatever a client sent.
   */
  tokensVerified?: boolean;
  /** Only these Gateways (`namespace/name`) verify tokens (Envoy Gateway); absent: every Gateway does (Istio's selector). */
  tokenGateways?: ReadonlySet<string>;
  /**
   * Envoy Gateway's CRDs are installed: rate limits are written as its BackendTrafficPolicy
   * (rate-limits.ts). Without it they are left out with a problem.
   */
  envoyGatewayPolicies?: boolean;
  /** Where a policy was read from, so a problem names its file. */
  sourceOf?: (policy: { namespace: string; name: string }) => Source | undefined;
}

export interface GatewayApiRenderResult {
  objects: KubeObject[];
  problems: Problem[];
}

export function renderGatewayApi(plan: RoutePlan, options: GatewayApiRenderOptions): GatewayApiRenderResult {
  const objects: KubeObject[] = [];
  const problems: Problem[] = [];
  for (const policy of plan.policies) {
    const routes = renderRoutes(policy, options.channel, tokenVerifier(options));
    const limits = renderRateLimits(policy, routes.objects, options.envoyGatewayPolicies ?? false);
    objects.push(...routes.objects, ...limits.objects, ...versionServices(policy, offlineService(policy)));
    const source = options.sourceOf?.(policy);
    problems.push(...[...routes.problems, ...limits.problems].map((p) => (source ? { ...p, source } : p)));
  }
  return { objects, problems };
}

/** Which Gateways verify tokens, as renderRoutes asks: none, all, or those named. */
function tokenVerifier(options: GatewayApiRenderOptions): TokenVerifier {
  if (!options.tokensVerified) return () => false;
  const named = options.tokenGateways;
  return named ? (gateway) => named.has(gateway) : () => true;
}

/**
 * Rate limits need an implementation's own policy object: Envoy Gateway's where its CRDs are;
 * elsewhere (Istio's Gateway API routes and waypoints) nothing can carry them, and that is said.
 */
export function renderRateLimits(
  policy: PolicyPlan,
  routes: readonly KubeObject[],
  envoyGatewayPolicies: boolean,
): RenderedRateLimits {
  if (policy.rateLimits.length === 0) return { objects: [], problems: [] };
  if (envoyGatewayPolicies) return renderRateLimitPolicies(policy, routes);
  return {
    objects: [],
    problems: [
      problem(
        'SY_GATEWAY_API_UNSUPPORTED',
        `TrafficPolicy ${policy.namespace}/${policy.name} has rate limits; the Gateway API has none of its own, and the only implementation's policy this backend writes is Envoy Gateway's (BackendTrafficPolicy), whose CRDs are not installed; they were not written`,
        undefined,
        'spec.rateLimits',
      ),
    ],
  };
}
