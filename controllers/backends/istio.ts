/**
 * Mesh mode: a DestinationRule, VirtualServices and EnvoyFilters per policy, carried by istiod.
 * Subsets are written before the routes that name them, and removed only once no route has named
 * them for SUBSET_GRACE_MS (the proxies have had the new routes by then).
 */
import type { KubernetesObject } from '@kubernetes/client-node';
import { HostClaims } from '../../core/compiler/hosts.js';
import { upstreamKey } from '../../core/compiler/names.js';
import type { KubeObject } from '../../core/compiler/objects.js';
import { UPSTREAM_HEADER } from '../../core/compiler/plan.js';
import { renderIstio } from '../../core/istio/render.js';
import {
  DATAPLANE_MODE_LABEL,
  MANAGED_BY,
  MANAGED_BY_VALUE,
  RETIRED_SUBSETS_ANNOTATION,
} from '../../core/resources/labels.js';
import { DEFAULTS } from '../../core/resources/schema.js';
import { keyOf, type WatchEvent, type WatchedObject } from '../../kube/manager.js';
import { versionDeployments } from '../../kube/version-workload.js';
import type { Backend, BackendWatches } from './backend.js';
import { setupTokenAuthentication } from './istio-tokens.js';

type Live = KubernetesObject & { spec?: Record<string, unknown> };
type Subsets = { name: string }[];

/**
 * How long a subset stays in its DestinationRule after the routes stopped naming it. istiod
 * debounces changes (100 ms, up to 10 s while they keep coming) and may push a proxy its clusters
 * before its routes: removed at once, a subset's cluster can vanish while a proxy still routes to
 * it, and those requests get 503 "no healthy upstream" (seen at every promotion before this).
 */
export const SUBSET_GRACE_MS = 10_000;

interface Retiring {
  subset: Subsets[number];
  /** When the routes stopped naming it (RFC 3339). */
  since: string;
}

/**
 * Which subsets in force but no longer wanted stay (`kept`, within the grace period) and which go
 * (`expired`); when to look again. Pure: the live DestinationRule and the time in, a verdict out.
 */
function retireSubsets(
  wanted: Subsets,
  live: Live | undefined,
  now: number,
): { kept: Retiring[]; expired: Retiring[]; requeueAfterMs?: number } {
  let recorded: Record<string, unknown> = {};
  try {
    recorded = JSON.parse(live?.metadata?.annotations?.[RETIRED_SUBSETS_ANNOTATION] ?? '{}');
  } catch {
    // Someone edited it into something else: every unused subset starts its grace now.
  }
  const names = new Set(wanted.map((s) => s.name));
  const kept: Retiring[] = [];
  const expired: Retiring[] = [];
  let requeueAfterMs: number | undefined;
  for (const subset of (live?.spec?.subsets as Subsets | undefined) ?? []) {
    if (names.has(subset.name)) continue;
    const at = recorded[subset.name];
    const time = typeof at === 'string' ? Date.parse(at) : Number.NaN;
    // A time in the future (a clock skewed or an edit) counts from now, never for longer.
    const since = Number.isNaN(time) || time > now ? now : time;
    const left = since + SUBSET_GRACE_MS - now;
    const entry = { subset, since: new Date(since).toISOString() };
    if (left > 0) {
      kept.push(entry);
      requeueAfterMs = Math.min(requeueAfterMs ?? left, left);
    } else expired.push(entry);
  }
  return { kept, expired, ...(requeueAfterMs !== undefined ? { requeueAfterMs } : {}) };
}

export const istioBackend: Backend = {
  mode: 'istio',
  tokensCheckedBy: 'controller',
  tokenClaimHeaders: false,
  install: {
    rbac: 'rbac-istio.yaml',
    parts: [],
    // The analysis reads Istio's metrics; tokens in Istio's root namespace.
    controllerArgs: ['--mesh-metrics', 'istio', '--istio-root-namespace', 'istio-system'],
  },
  versionServices: false,
  ownedKinds: [
    { apiVersion: 'networking.istio.io/v1', kind: 'VirtualService' },
    { apiVersion: 'networking.istio.io/v1', kind: 'DestinationRule' },
    { apiVersion: 'networking.istio.io/v1alpha3', kind: 'EnvoyFilter' },
  ],

  async desired(kube, plan, namespace) {
    // EnvoyFilters do nothing in an ambient namespace: rate limits there are refused, not lost.
    const ns = await kube.get<KubernetesObject>({ apiVersion: 'v1', kind: 'Namespace', name: namespace });
    const ambient = ns?.metadata?.labels?.[DATAPLANE_MODE_LABEL] === 'ambient';
    const { objects, problems } = renderIstio(
      { policies: [plan] },
      { ambientNamespaces: new Set(ambient ? [namespace] : []) },
    );
    return { ok: true, objects, problems };
  },

  async foreignConflicts(kube, objects, namespace) {
    // Any namespace: a VirtualService elsewhere for the same host on the same gateway collides too.
    const foreign = (await kube.list<Live>('networking.istio.io/v1', 'VirtualService')).filter(
      (vs) => vs.metadata?.labels?.[MANAGED_BY] !== MANAGED_BY_VALUE,
    );
    const conflicts: string[] = [];
    for (const vs of objects.filter((o) => o.kind === 'VirtualService')) {
      // Whatever gateways either is bound to: several VirtualServices for one host are undefined
      // behaviour in Istio, so any overlap is reported.
      const claims = new HostClaims<Live>(DEFAULTS.clusterDomain);
      for (const f of foreign)
        claims.claim(
          f,
          (f.spec?.hosts as string[] | undefined) ?? [],
          f.metadata?.namespace ?? DEFAULTS.namespace,
        );
      const hit = claims.conflict((vs.spec.hosts as string[]) ?? [], namespace);
      if (hit)
        conflicts.push(
          `VirtualService ${hit.owner.metadata?.namespace}/${hit.owner.metadata?.name} (not managed by Switchyard) already serves ${hit.host}, which overlaps ${hit.mine}`,
        );
    }
    return conflicts;
  },

  async write(kube, objects, apply, now) {
    // 1. the DestinationRule with the subsets wanted and those still in force, 2. the routes (every
    // subset they name exists now) and EnvoyFilters, 3. the DestinationRule without the subsets no
    // route has named for SUBSET_GRACE_MS.
    const dr = objects.find((o) => o.kind === 'DestinationRule') as KubeObject;
    const live = await kube.get<Live>({
      apiVersion: dr.apiVersion,
      kind: dr.kind,
      namespace: dr.metadata.namespace,
      name: dr.metadata.name,
      labels: dr.metadata.labels,
    });
    const wanted = dr.spec.subsets as Subsets;
    const { kept, expired, requeueAfterMs } = retireSubsets(wanted, live, now.getTime());
    /** The DestinationRule with `retiring` kept after the wanted subsets, and when each retired. */
    const withRetiring = (retiring: Retiring[]): KubeObject =>
      retiring.length === 0
        ? dr
        : {
            ...dr,
            metadata: {
              ...dr.metadata,
              annotations: {
                [RETIRED_SUBSETS_ANNOTATION]: JSON.stringify(
                  Object.fromEntries(retiring.map((r) => [r.subset.name, r.since])),
                ),
              },
            },
            spec: { ...dr.spec, subsets: [...wanted, ...retiring.map((r) => r.subset)] },
          };
    const inForce = [...kept, ...expired];
    await apply([withRetiring(inForce)], inForce.length > 0 ? ' (subsets wanted and in force)' : '');
    await apply(objects.filter((x) => x.kind === 'VirtualService' || x.kind === 'EnvoyFilter'));
    if (expired.length > 0) await apply([withRetiring(kept)], ' (subsets no longer used removed)');
    return requeueAfterMs === undefined ? {} : { requeueAfterMs };
  },

  async splitInForce(kube, policy) {
    type Vs = {
      spec?: {
        http?: {
          name: string;
          route: { weight?: number; headers?: { response?: { set?: Record<string, string> } } }[];
        }[];
      };
    };
    const namespace = policy.metadata.namespace ?? DEFAULTS.namespace;
    const vs = await kube.get<Vs & KubernetesObject>({
      apiVersion: 'networking.istio.io/v1',
      kind: 'VirtualService',
      namespace,
      name: policy.metadata.name,
    });
    const split = vs?.spec?.http?.find((r) => r.name === 'split');
    if (!split) return { canaryWeight: null, note: 'no VirtualService yet' };
    const canary = policy.spec.canary && upstreamKey(policy.spec.service, policy.spec.canary.version);
    return {
      canaryWeight:
        split.route.find((d) => d.headers?.response?.set?.[UPSTREAM_HEADER] === canary)?.weight ?? 0,
    };
  },

  addWatches: addIstioWatches,

  /**
   * The subset selects the Service's pods that carry the version label. When a Deployment runs
   * them, one of its pods must be available. Pods run by anything else (a StatefulSet, another
   * tool's rollout) cannot be told apart here, and the run does not wait.
   */
  async versionNotServing(kube, policy, version) {
    const namespace = policy.metadata.namespace ?? DEFAULTS.namespace;
    const service = await kube.get<KubernetesObject & { spec?: { selector?: Record<string, string> } }>({
      apiVersion: 'v1',
      kind: 'Service',
      namespace,
      name: policy.spec.service,
    });
    const selector = service?.spec?.selector;
    if (!selector) return undefined; // no selector: no pods to tell apart, nothing to wait for
    const runs = versionDeployments(
      await kube.list<VersionDeployment>('apps/v1', 'Deployment', namespace),
      selector,
      policy.spec.versionLabel ?? DEFAULTS.versionLabel,
      version,
    );
    if (runs.length === 0 || runs.some((d) => (d.status?.availableReplicas ?? 0) > 0)) return undefined;
    return `Deployment ${runs.map((d) => `${namespace}/${d.metadata?.name}`).join(', ')} has an available pod (are its pods ready?)`;
  },

  analysisSeries: (meshMetrics) => meshMetrics,

  renderOffline: (plan, { ambientNamespaces, sourceOf }) =>
    renderIstio(plan, { ambientNamespaces, sourceOf }),
};

type VersionDeployment = KubernetesObject & {
  spec?: { template?: { metadata?: { labels?: Record<string, string> } } };
  status?: { availableReplicas?: number };
};

/** What /readyz says when the cluster lacks Istio's CRDs. */
const NEEDS_ISTIO =
  'mesh mode (--mode istio) needs Istio on the cluster: install Istio, or run Switchyard without a mesh (--mode gateway)';

/**
 * Mesh mode's watches: Namespaces (the ambient label decides whether EnvoyFilters can work), every
 * DestinationRule, EnvoyFilter and VirtualService (Switchyard's, to revert foreign edits; others,
 * for names taken and hosts served), and the intercept-token RequestAuthentication.
 */
function addIstioWatches({
  manager,
  policies,
  requeuePolicy,
  ownedChanged,
  filter,
  tokenAuthentication,
}: BackendWatches) {
  setupTokenAuthentication(manager, tokenAuthentication, istioBackend.tokenClaimHeaders);
  const requeueAll = (namespace?: string) => {
    for (const p of policies.list(namespace)) requeuePolicy(keyOf(p));
  };
  manager.watch(
    { apiVersion: 'v1', kind: 'Namespace', plural: 'namespaces', clusterScoped: true },
    (o, event) => {
      if (event === 'add' || !filter.changed('namespace', o, event, o.metadata?.labels)) return;
      requeueAll(o.metadata?.name);
    },
  );
  // Every DestinationRule and EnvoyFilter is cached, not only Switchyard's: one of a wanted name
  // that is someone else's must be seen (NameTaken), and its removal lets the policy write again.
  const ownedOrNamesake = (o: WatchedObject, event: WatchEvent) => {
    if (o.metadata?.labels?.[MANAGED_BY] === MANAGED_BY_VALUE) return ownedChanged(o, event);
    for (const p of policies.list(o.metadata?.namespace))
      if (o.metadata?.name?.startsWith(p.metadata?.name ?? '\0')) requeuePolicy(keyOf(p));
  };
  const istio = (apiVersion: string, kind: string, plural: string) => ({
    apiVersion,
    kind,
    plural,
    missingHint: NEEDS_ISTIO,
  });
  manager.watch(istio('networking.istio.io/v1', 'DestinationRule', 'destinationrules'), ownedOrNamesake);
  manager.watch(istio('networking.istio.io/v1alpha3', 'EnvoyFilter', 'envoyfilters'), ownedOrNamesake);
  manager.watch(istio('networking.istio.io/v1', 'VirtualService', 'virtualservices'), (o, event) => {
    if (o.metadata?.labels?.[MANAGED_BY] === MANAGED_BY_VALUE) return ownedChanged(o, event);
    // A foreign VirtualService may start or stop a Conflict, in any namespace (it may be bound to a
    // shared gateway): look at every policy. Foreign VirtualServices change rarely.
    requeueAll();
  });
}
