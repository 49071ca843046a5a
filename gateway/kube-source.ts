/**
 * `switchyard gateway --kube`: the plan comes from the cluster, not from files. The gateway watches
 * TrafficPolicies, Previews, the Services the controller writes in gateway mode (one per version,
 * `<service>--<version>`, and one per preview) and their EndpointSlices, and rebuilds its snapshot
 * within a few milliseconds of any change (no push from the controller).
 *
 * It sends requests straight to the ready endpoints of those Services, round-robin, as ingress
 * controllers do: no extra kube-proxy hop, keep-alive to each pod, and a version with no ready pod
 * answers 503 with that reason instead of a connection error.
 */
import type { KubeConfig, KubernetesObject } from '@kubernetes/client-node';
import type { Problem } from '../core/common/errors.js';
import type { Logger } from '../core/common/logger.js';
import { CLUSTER_TOLERATED, clusterPreviews } from '../core/compiler/cluster.js';
import { namespacedUpstreamKey, pinnedRef, upstreamKey } from '../core/compiler/names.js';
import {
  MANAGED_BY,
  MANAGED_BY_VALUE,
  PREVIEW_LABEL,
  SERVICE_NAME_LABEL,
  VERSION_LABEL,
  VERSION_OF_LABEL,
} from '../core/resources/labels.js';
import { DEFAULTS, type Preview, RESOURCE, type TrafficPolicy } from '../core/resources/schema.js';
import { readResources } from '../core/resources/validate.js';
import {
  type EndpointSliceObject as EndpointSlice,
  readyEndpointUrls,
  type ServiceObject as Service,
} from '../kube/endpoints.js';
import { type ObjectInformer, watchObjects } from '../kube/informer.js';
import { type BuildResult, buildSnapshot } from './snapshot.js';

type Obj = KubernetesObject & Record<string, unknown>;

export interface KubeSourceOptions {
  kubeconfig: KubeConfig;
  /** Empty: all namespaces. */
  namespaces: string[];
  logger: Logger;
  /** Called with each new build (after the first, once the informers have listed). */
  onChange: (result: BuildResult, problems: Problem[]) => void;
  debounceMs?: number;
}

export interface KubeSource {
  /** Lists everything, then returns the first build. */
  start(): Promise<{ result: BuildResult; problems: Problem[] }>;
  stop(): Promise<void>;
}

const json = <T>(o: unknown): T => JSON.parse(JSON.stringify(o)) as T; // client-node hands out Dates

/** The informers a gateway follows, per namespace watched. */
interface Caches {
  policies: ObjectInformer<Obj>[];
  previews: ObjectInformer<Obj>[];
  services: ObjectInformer<Obj>[];
  slices: ObjectInformer<Obj>[];
}

export function kubeSource(options: KubeSourceOptions): KubeSource {
  const { kubeconfig, logger } = options;
  const namespaces = options.namespaces.length > 0 ? options.namespaces : [undefined];
  let stopped = false;
  let timer: NodeJS.Timeout | undefined;
  let started = false;
  let generation = 0;

  // Changes come in bursts (a policy and its Services): one build after the burst.
  const changed = () => {
    if (!started || stopped) return;
    clearTimeout(timer);
    timer = setTimeout(() => {
      const { result, problems } = buildFromCaches(caches, ++generation);
      options.onChange(result, problems);
    }, options.debounceMs ?? 20);
  };
  const informers = (apiVersion: string, kind: string, plural: string, labelSelector?: string) =>
    namespaces.map((namespace) =>
      watchObjects<Obj>(
        kubeconfig,
        { apiVersion, kind, plural, namespace, ...(labelSelector ? { labelSelector } : {}) },
        logger,
        changed,
        () => stopped,
      ),
    );
  const { TrafficPolicy, Preview } = RESOURCE;
  const caches: Caches = {
    policies: informers(TrafficPolicy.apiVersion, TrafficPolicy.kind, TrafficPolicy.plural),
    previews: informers(Preview.apiVersion, Preview.kind, Preview.plural),
    services: informers('v1', 'Service', 'services', `${MANAGED_BY}=${MANAGED_BY_VALUE}`),
    slices: informers('discovery.k8s.io/v1', 'EndpointSlice', 'endpointslices'),
  };
  const all = Object.values(caches).flat();
  return {
    async start() {
      await Promise.all(all.map((i) => i.start()));
      started = true;
      return buildFromCaches(caches, ++generation);
    },
    async stop() {
      stopped = true;
      clearTimeout(timer);
      await Promise.all(all.map((i) => i.stop()));
    },
  };
}

const items = <T>(list: ObjectInformer<Obj>[]) => list.flatMap((i) => i.list()) as unknown as T[];

/** One snapshot from the caches: every valid policy, and the previews that are Ready. */
function buildFromCaches(caches: Caches, generation: number): { result: BuildResult; problems: Problem[] } {
  const docs = [
    ...items<TrafficPolicy & KubernetesObject>(caches.policies),
    ...clusterPreviews(items<Preview & KubernetesObject>(caches.previews)),
  ].map((o, i) => {
    const value = json<Record<string, unknown>>(o);
    delete (value.metadata as Record<string, unknown>).managedFields;
    return {
      source: { file: `${o.metadata?.namespace}/${o.kind}/${o.metadata?.name}`, document: i + 1 },
      value,
    };
  });
  // One team's invalid policy must not take everyone's routes down: it is left out (the
  // controller reports it on the policy's status), the rest are served.
  const { resources, problems } = readResources(docs);
  const upstreams = upstreamsOf(
    resources,
    items<Service>(caches.services),
    items<EndpointSlice>(caches.slices),
  );
  const result = buildSnapshot(resources, upstreams, {
    source: 'kubernetes',
    generation,
    now: new Date(),
    requireUpstreams: false,
    // What the controller tolerates too: a preview not Ready yet, one of another repository.
    ignore: CLUSTER_TOLERATED,
    // A policy that does not compile (a host another policy holds, two previews of one commit, a
    // name too long) is left out; every other policy keeps being served and updated.
    isolate: true,
  });
  return { result, problems: [...problems, ...(result.ok ? (result.leftOut ?? []) : [])] };
}

/**
 * Each upstream key's ready endpoints: a per-version Service (`<service>--<version>`) is the
 * version of its policy, a preview's Service is the preview's pinned reference.
 */
function upstreamsOf(
  resources: { policies: TrafficPolicy[]; previews: Preview[] },
  services: Service[],
  slices: EndpointSlice[],
): Map<string, URL[]> {
  const sliceBy = new Map<string, EndpointSlice[]>();
  for (const s of slices) {
    const svc = s.metadata?.labels?.[SERVICE_NAME_LABEL];
    if (!svc) continue;
    const key = `${s.metadata?.namespace}/${svc}`;
    sliceBy.set(key, [...(sliceBy.get(key) ?? []), s]);
  }
  const byKey = <T extends { metadata: { namespace?: string; name: string } }>(list: T[]) =>
    new Map(list.map((p) => [`${p.metadata.namespace ?? DEFAULTS.namespace}/${p.metadata.name}`, p]));
  const policyBy = byKey(resources.policies);
  const previewBy = byKey(resources.previews);
  const upstreams = new Map<string, URL[]>();
  for (const svc of services) {
    const ns = svc.metadata?.namespace as string;
    const labels = svc.metadata?.labels ?? {};
    const endpoints = sliceBy.get(`${ns}/${svc.metadata?.name}`) ?? [];
    const versionOf = labels[VERSION_OF_LABEL];
    const version = labels[VERSION_LABEL];
    if (versionOf && version) {
      const policy = resources.policies.find(
        (p) => (p.metadata.namespace ?? DEFAULTS.namespace) === ns && p.spec.service === versionOf,
      );
      if (policy)
        upstreams.set(
          namespacedUpstreamKey(ns, upstreamKey(versionOf, version)),
          readyEndpointUrls(svc, policy.spec.port, endpoints),
        );
      continue;
    }
    const preview = previewBy.get(`${ns}/${labels[PREVIEW_LABEL]}`);
    const policy = preview && policyBy.get(`${ns}/${preview.spec.policy}`);
    if (preview && policy)
      upstreams.set(
        namespacedUpstreamKey(
          ns,
          upstreamKey(policy.spec.service, pinnedRef(preview.spec.pullRequest, preview.spec.commit)),
        ),
        readyEndpointUrls(svc, policy.spec.port, endpoints),
      );
  }
  return upstreams;
}
