/**
 * Gateway API mode: an HTTPRoute (or GRPCRoute) per policy and parent set, one per preview URL,
 * and the per-version Services they send to (core/gateway-api/ renders them; docs/gateway-api.md).
 * Whatever implements the Gateway API on the cluster (Istio, Envoy Gateway, …) carries them out;
 * what it says of a route (`status.parents`) is read back into the policy's conditions.
 */
import type { KubernetesObject } from '@kubernetes/client-node';
import { type Problem, problem } from '../../core/common/errors.js';
import { HostClaims } from '../../core/compiler/hosts.js';
import { upstreamKey } from '../../core/compiler/names.js';
import type { KubeObject } from '../../core/compiler/objects.js';
import { UPSTREAM_HEADER } from '../../core/compiler/plan.js';
import { versionServices } from '../../core/compiler/version-services.js';
import { GATEWAY_API_V1, type GatewayApiChannel, renderRoutes } from '../../core/gateway-api/http-route.js';
import { ENVOY_GATEWAY_V1ALPHA1 } from '../../core/gateway-api/rate-limits.js';
import { renderGatewayApi, renderRateLimits } from '../../core/gateway-api/render.js';
import {
  TOKEN_AUTHENTICATION_NAME,
  tokenVerificationKinds,
} from '../../core/istio/request-authentication.js';
import { REASON } from '../../core/resources/conditions.js';
import { MANAGED_BY, MANAGED_BY_VALUE, POLICY_LABEL } from '../../core/resources/labels.js';
import { DEFAULTS } from '../../core/resources/schema.js';
import type { Kube } from '../../kube/client.js';
import { keyOf, type WatchEvent, type WatchedObject } from '../../kube/manager.js';
import type { Backend, BackendWatches } from './backend.js';
import { setupTokenAuthentication } from './istio-tokens.js';
import { stableServiceSpec, versionServiceNotServing } from './version-services.js';

const ROUTE_KINDS = ['HTTPRoute', 'GRPCRoute'] as const;
const BACKEND_TRAFFIC_POLICY_CRD = 'backendtrafficpolicies.gateway.envoyproxy.io';

/** What /readyz says when the cluster lacks the Gateway API's CRDs. */
const NEEDS_GATEWAY_API =
  'Gateway API mode (--mode gateway-api) needs the Gateway API CRDs (v1.6) and an implementation of them on the cluster';

type ParentRef = { group?: string; kind?: string; name: string; namespace?: string; port?: number };
type RouteSpec = {
  parentRefs?: ParentRef[];
  hostnames?: string[];
  rules?: {
    name?: string;
    backendRefs?: {
      weight?: number;
      filters?: { responseHeaderModifier?: { set?: { name: string; value: string }[] } }[];
    }[];
  }[];
};
type RouteCondition = { type: string; status: string; reason?: string; message?: string };
type LiveRoute = KubernetesObject & {
  spec?: RouteSpec;
  status?: {
    parents?: { parentRef: ParentRef; controllerName?: string; conditions?: RouteCondition[] }[];
    /** A policy's (Envoy Gateway's BackendTrafficPolicy): the same shape, by ancestor. */
    ancestors?: { ancestorRef: ParentRef; controllerName?: string; conditions?: RouteCondition[] }[];
  };
};

/**
 * The channel of the Gateway API CRDs on the cluster: the experimental one has HTTPRoute retries.
 * Read from the CRD's own channel annotation, each reconcile (an upgrade changes it).
 */
async function installedChannel(kube: Kube): Promise<GatewayApiChannel | undefined> {
  const crd = await kube.get<KubernetesObject>({
    apiVersion: 'apiextensions.k8s.io/v1',
    kind: 'CustomResourceDefinition',
    name: 'httproutes.gateway.networking.k8s.io',
  });
  if (!crd) return undefined;
  return crd.metadata?.annotations?.['gateway.networking.k8s.io/channel'] === 'experimental'
    ? 'experimental'
    : 'standard';
}

/** Whether Envoy Gateway's BackendTrafficPolicy is served (rate limits are written as one). */
async function envoyGatewayPolicies(kube: Kube): Promise<boolean> {
  const crd = await kube.get<KubernetesObject>({
    apiVersion: 'apiextensions.k8s.io/v1',
    kind: 'CustomResourceDefinition',
    name: BACKEND_TRAFFIC_POLICY_CRD,
  });
  return crd !== undefined;
}

/**
 * Whether the Gateways verify intercept tokens: the controller has keys and its EnvoyFilter that
 * removes forged claim headers is in place (written before the RequestAuthentication). Until then,
 * and on an implementation without Istio's objects, routes that require a token are left out:
 * there, a claim header would be whatever a client sent.
 */
async function tokensVerified(kube: Kube, namespace: string | undefined): Promise<boolean> {
  if (!namespace) return false;
  const [removal] = tokenVerificationKinds(true);
  const live = await kube.get<KubernetesObject>({
    ...(removal as { apiVersion: string; kind: string }),
    namespace,
    name: TOKEN_AUTHENTICATION_NAME,
  });
  return live?.metadata?.labels?.[MANAGED_BY] === MANAGED_BY_VALUE;
}

/** The key of a parentRef, with the API's defaults (group gateway.networking.k8s.io, kind Gateway). */
function parentKey(p: ParentRef, routeNamespace: string): string {
  const group = p.group ?? 'gateway.networking.k8s.io';
  const kind = p.kind ?? 'Gateway';
  return `${group}/${kind}/${p.namespace ?? routeNamespace}/${p.name}`;
}

/**
 * What the implementation said of the routes and policies this policy already has: each parent
 * (a route's `status.parents`, a policy's `status.ancestors`) that did not accept one, or could not
 * resolve its backends, with its reason and message.
 */
async function routeRefusals(
  kube: Kube,
  objects: readonly KubeObject[],
  namespace: string,
): Promise<Problem[]> {
  const refusals: Problem[] = [];
  for (const o of objects.filter(
    (x) => x.apiVersion === GATEWAY_API_V1 || x.apiVersion === ENVOY_GATEWAY_V1ALPHA1,
  )) {
    const live = await kube.get<LiveRoute>({
      apiVersion: o.apiVersion,
      kind: o.kind,
      namespace,
      name: o.metadata.name,
    });
    const parents = [
      ...(live?.status?.parents ?? []),
      ...(live?.status?.ancestors ?? []).map((a) => ({ ...a, parentRef: a.ancestorRef })),
    ];
    for (const parent of parents)
      for (const c of parent.conditions ?? [])
        if ((c.type === 'Accepted' || c.type === 'ResolvedRefs') && c.status === 'False')
          refusals.push(
            problem(
              'SY_ROUTE_NOT_ACCEPTED',
              `${o.kind} ${namespace}/${o.metadata.name}: ${parent.parentRef.kind ?? 'Gateway'} ${parent.parentRef.namespace ?? namespace}/${parent.parentRef.name} says ${c.type}=False (${c.reason ?? 'no reason'}${c.message ? `: ${c.message}` : ''})`,
            ),
          );
  }
  return refusals;
}

export const gatewayApiBackend: Backend = {
  mode: 'gateway-api',
  // On Istio, its gateways verify intercept tokens by the RequestAuthentication the controller
  // keeps (docs/gateway-api.md, "Intercept tokens").
  tokensCheckedBy: 'controller',
  tokenClaimHeaders: true,
  install: {
    rbac: 'rbac-gateway-api.yaml',
    parts: [],
    controllerArgs: ['--mesh-metrics', 'istio', '--istio-root-namespace', 'istio-system'],
  },
  versionServices: true,
  ownedKinds: [
    { apiVersion: GATEWAY_API_V1, kind: 'HTTPRoute' },
    { apiVersion: GATEWAY_API_V1, kind: 'GRPCRoute' },
    { apiVersion: ENVOY_GATEWAY_V1ALPHA1, kind: 'BackendTrafficPolicy', optional: true },
    { apiVersion: 'v1', kind: 'Service' },
  ],

  async desired(kube, plan, namespace, { tokenVerifierNamespace }) {
    const channel = await installedChannel(kube);
    if (!channel) return { ok: false, reason: REASON.GatewayApiMissing, message: NEEDS_GATEWAY_API };
    const service = await stableServiceSpec(kube, plan, namespace);
    if ('ok' in service) return service;
    const routes = renderRoutes(plan, channel, await tokensVerified(kube, tokenVerifierNamespace));
    const limits = renderRateLimits(plan, routes.objects, await envoyGatewayPolicies(kube));
    const objects = [...versionServices(plan, service), ...routes.objects, ...limits.objects];
    const problems = [...routes.problems, ...limits.problems];
    return { ok: true, objects, problems: [...problems, ...(await routeRefusals(kube, objects, namespace))] };
  },

  async foreignConflicts(kube, objects, namespace) {
    const foreign = (await Promise.all(ROUTE_KINDS.map((kind) => kube.list<LiveRoute>(GATEWAY_API_V1, kind))))
      .flat()
      .filter((r) => r.metadata?.labels?.[MANAGED_BY] !== MANAGED_BY_VALUE);
    const conflicts: string[] = [];
    for (const mine of objects.filter((o) => o.apiVersion === GATEWAY_API_V1)) {
      const spec = mine.spec as RouteSpec;
      const parents = new Set((spec.parentRefs ?? []).map((p) => parentKey(p, namespace)));
      for (const other of foreign) {
        const ns = other.metadata?.namespace ?? DEFAULTS.namespace;
        const shared = (other.spec?.parentRefs ?? []).find((p) => parents.has(parentKey(p, ns)));
        if (!shared) continue;
        const host = sharedHost(spec.hostnames ?? [], namespace, other.spec?.hostnames ?? [], ns);
        if (host === undefined) continue;
        conflicts.push(
          `${other.kind} ${ns}/${other.metadata?.name} (not managed by Switchyard) is attached to ${shared.kind ?? 'Gateway'} ${shared.namespace ?? ns}/${shared.name}${host ? ` for ${host}` : ''}; the Gateway API would merge its rules with this policy's by precedence (the most specific match first, then the oldest route), so either could take a request`,
        );
      }
    }
    return conflicts;
  },

  async write(_kube, objects, apply) {
    // The Services first: a route naming a missing backend answers 500 until it exists.
    await apply(objects.filter((o) => o.kind === 'Service'));
    await apply(objects.filter((o) => o.kind !== 'Service'));
    return {};
  },

  async splitInForce(kube, policy) {
    const namespace = policy.metadata.namespace ?? DEFAULTS.namespace;
    const kind = policy.spec.upstreamProtocol === 'http2' ? 'GRPCRoute' : 'HTTPRoute';
    const route = await kube.get<LiveRoute>({
      apiVersion: GATEWAY_API_V1,
      kind,
      namespace,
      name: policy.metadata.name,
    });
    const split = route?.spec?.rules?.find((r) => r.name === 'split');
    if (!split) return { canaryWeight: null, note: `no ${kind} yet` };
    const canary = policy.spec.canary && upstreamKey(policy.spec.service, policy.spec.canary.version);
    const names = (b: NonNullable<NonNullable<RouteSpec['rules']>[number]['backendRefs']>[number]) =>
      (b.filters ?? []).flatMap((f) => f.responseHeaderModifier?.set ?? []);
    const ref = split.backendRefs?.find((b) =>
      names(b).some((h) => h.name === UPSTREAM_HEADER && h.value === canary),
    );
    return { canaryWeight: ref?.weight ?? 0 };
  },

  addWatches: addGatewayApiWatches,

  // A version takes requests through its Service `<service>--<version>`, as in gateway mode.
  versionNotServing: versionServiceNotServing,

  analysisSeries: (meshMetrics) => meshMetrics,

  renderOffline: (
    plan,
    { gatewayApiChannel, tokensVerified, tokenGateways, envoyGatewayPolicies, sourceOf },
  ) =>
    renderGatewayApi(plan, {
      channel: gatewayApiChannel,
      tokensVerified,
      ...(tokenGateways ? { tokenGateways } : {}),
      envoyGatewayPolicies,
      sourceOf,
    }),
};

/**
 * A host both route hostname lists serve ('' when either lists none: a GAMMA route, or a route
 * for every host), or undefined when they serve none in common.
 */
function sharedHost(
  mine: string[],
  myNamespace: string,
  theirs: string[],
  theirNamespace: string,
): string | undefined {
  if (mine.length === 0 || theirs.length === 0) return '';
  const claims = new HostClaims<true>(DEFAULTS.clusterDomain);
  claims.claim(true, theirs, theirNamespace);
  const hit = claims.conflict(mine, myNamespace);
  return hit ? hit.mine : undefined;
}

/**
 * Routes, every one cached: Switchyard's (a foreign edit is reverted; what the implementation
 * says of it in `status.parents` is brought to its policy) and others (one attached to a policy's
 * parent for its hosts is a Conflict, and its removal ends it).
 */
function addGatewayApiWatches({
  manager,
  policies,
  requeuePolicy,
  ownedChanged,
  filter,
  tokenAuthentication,
}: BackendWatches) {
  // Routes that require a token are written once the token objects are (tokensVerified).
  setupTokenAuthentication(manager, tokenAuthentication, gatewayApiBackend.tokenClaimHeaders, () => {
    for (const p of policies.list()) requeuePolicy(keyOf(p));
  });
  for (const kind of ROUTE_KINDS)
    manager.watch(
      { apiVersion: GATEWAY_API_V1, kind, plural: `${kind.toLowerCase()}s`, missingHint: NEEDS_GATEWAY_API },
      (o: WatchedObject, event: WatchEvent) => {
        const owner =
          o.metadata?.labels?.[MANAGED_BY] === MANAGED_BY_VALUE ? o.metadata.labels[POLICY_LABEL] : undefined;
        if (!owner) {
          // Only where it attaches and for which hosts can start or end a Conflict (not its status).
          const claim = [
            o.metadata?.labels,
            (o as LiveRoute).spec?.parentRefs,
            (o as LiveRoute).spec?.hostnames,
          ];
          if (filter.changed(`foreign/${kind}`, o, event, claim))
            for (const p of policies.list()) requeuePolicy(keyOf(p));
          return;
        }
        ownedChanged(o, event);
        if (
          filter.changed(`route-status/${kind}`, o, event, (o as LiveRoute).status?.parents) &&
          event !== 'delete'
        )
          requeuePolicy(keyOf(o, owner));
      },
    );
}
