/**
 * Mesh mode: a DestinationRule, VirtualServices and EnvoyFilters per policy, carried by istiod.
 * Subsets are written before the routes that name them, and removed only after no route does.
 */
import type { KubernetesObject } from '@kubernetes/client-node';
import { HostClaims } from '../../src/compiler/hosts.js';
import { upstreamKey } from '../../src/compiler/names.js';
import { UPSTREAM_HEADER } from '../../src/compiler/plan.js';
import type { KubeObject } from '../../src/istio/objects.js';
import { renderIstio } from '../../src/istio/render.js';
import { DATAPLANE_MODE_LABEL, MANAGED_BY, MANAGED_BY_VALUE } from '../../src/resources/labels.js';
import { DEFAULTS } from '../../src/resources/schema.js';
import type { Backend } from './backend.js';

type Live = KubernetesObject & { spec?: Record<string, unknown> };
type Subsets = { name: string }[];

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

  async write(kube, objects, apply) {
    // 1. the DestinationRule with the subsets wanted and those still in force, 2. the routes (every
    // subset they name exists now) and EnvoyFilters, 3. the DestinationRule with only those wanted.
    const dr = objects.find((o) => o.kind === 'DestinationRule') as KubeObject;
    const live = await kube.get<Live>({
      apiVersion: dr.apiVersion,
      kind: dr.kind,
      namespace: dr.metadata.namespace,
      name: dr.metadata.name,
      labels: dr.metadata.labels,
    });
    const wanted = (dr.spec.subsets as Subsets).map((s) => s.name);
    const inForce = ((live?.spec?.subsets as Subsets | undefined) ?? []).filter(
      (s) => !wanted.includes(s.name),
    );
    if (inForce.length > 0)
      await apply(
        [{ ...dr, spec: { ...dr.spec, subsets: [...(dr.spec.subsets as Subsets), ...inForce] } }],
        ' (subsets wanted and in force)',
      );
    else await apply([dr]);
    await apply(objects.filter((x) => x.kind === 'VirtualService' || x.kind === 'EnvoyFilter'));
    if (inForce.length > 0) await apply([dr], ' (subsets no longer used removed)');
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
