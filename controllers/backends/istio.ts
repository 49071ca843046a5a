/**
 * Mesh mode: a DestinationRule, VirtualServices and EnvoyFilters per policy, carried by istiod.
 * Subsets are written before the routes that name them, and removed only once no route has named
 * them for SUBSET_GRACE_MS (the proxies have had the new routes by then).
 */
import type { KubernetesObject } from '@kubernetes/client-node';
import { HostClaims } from '../../src/compiler/hosts.js';
import { upstreamKey } from '../../src/compiler/names.js';
import { UPSTREAM_HEADER } from '../../src/compiler/plan.js';
import type { KubeObject } from '../../src/istio/objects.js';
import { renderIstio } from '../../src/istio/render.js';
import {
  DATAPLANE_MODE_LABEL,
  MANAGED_BY,
  MANAGED_BY_VALUE,
  RETIRED_SUBSETS_ANNOTATION,
} from '../../src/resources/labels.js';
import { DEFAULTS } from '../../src/resources/schema.js';
import type { Backend } from './backend.js';

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
};
