/**
 * Gateway mode: no Istio objects; one Service per version the policy routes or mirrors to
 * (`<service>--<version>`, selecting the Service's pods that carry that version label, with its
 * ports), which `switchyard gateway --kube` sends requests to. The gateway reads the policies
 * themselves and compiles them as the controller does, within milliseconds of a change.
 */
import type { KubernetesObject } from '@kubernetes/client-node';
import { compile } from '../../core/compiler/compile.js';
import { versionServiceName } from '../../core/compiler/names.js';
import type { PolicyPlan } from '../../core/compiler/plan.js';
import { offlineService, type ServiceSpec, versionServices } from '../../core/compiler/version-services.js';
import { CONDITION, REASON } from '../../core/resources/conditions.js';
import { SERVICE_NAME_LABEL } from '../../core/resources/labels.js';
import { DEFAULTS, type TrafficPolicy } from '../../core/resources/schema.js';
import { readResources } from '../../core/resources/validate.js';
import type { Kube } from '../../kube/client.js';
import { type EndpointSliceObject, readyEndpointUrls, type ServiceObject } from '../../kube/endpoints.js';
import type { Backend, Desired } from './backend.js';

export const gatewayBackend: Backend = {
  mode: 'gateway',
  tokensCheckedBy: 'gateway',
  tokenClaimHeaders: false,
  install: { rbac: 'rbac-gateway.yaml', parts: ['gateway.yaml'], controllerArgs: [] },
  versionServices: true,
  ownedKinds: [{ apiVersion: 'v1', kind: 'Service' }],

  async desired(kube, plan, namespace) {
    const service = await stableServiceSpec(kube, plan, namespace);
    if ('ok' in service) return service;
    return { ok: true, objects: versionServices(plan, service), problems: [] };
  },

  // The gateway routes by host itself: only other policies can claim a host (checked by the caller).
  foreignConflicts: async () => [],

  async write(_kube, objects, apply) {
    await apply([...objects]);
    return {};
  },

  async splitInForce(kube, policy) {
    const namespace = policy.metadata.namespace ?? DEFAULTS.namespace;
    // The gateway leaves out a policy that does not validate or whose host another policy holds,
    // and serves every other one as its spec says now.
    const conflict = policy.status?.conditions?.find(
      (c) => c.type === CONDITION.Conflict && c.status === 'True',
    );
    if (conflict) return { canaryWeight: null, note: `not served by the gateway: ${conflict.message}` };
    const { resources } = readResources([
      {
        source: { file: `${namespace}/${policy.metadata.name}`, document: 1 },
        value: JSON.parse(JSON.stringify(policy)), // client-node hands out Dates
      },
    ]);
    const plan = compile({ policies: resources.policies, previews: [] }).plan.policies[0];
    if (!plan) return { canaryWeight: null, note: 'not served by the gateway: the policy does not validate' };
    if (!plan.canary) return { canaryWeight: 0 };
    const name = versionServiceName(plan.service, plan.canary.version);
    const written = await kube.get({ apiVersion: 'v1', kind: 'Service', namespace, name });
    return {
      canaryWeight: plan.canary.weight,
      ...(written || plan.canary.weight === 0
        ? {}
        : { note: `Service ${namespace}/${name} is not written yet: the canary's share answers 503` }),
    };
  },

  // The per-version Services are watched with every Service (../setup.ts): nothing more to watch.
  addWatches() {},

  /**
   * `gateway --kube` routes by the run's status the moment it is written, to the ready endpoints
   * of the version's Service (`<service>--<version>`, which the policy's reconcile creates and
   * Kubernetes fills as the pods get ready), read here as the gateway reads them.
   */
  versionNotServing: versionServiceNotServing,

  // The gateway's own series, by policy and upstream: the same in every cluster.
  analysisSeries: () => 'switchyard-gateway',

  // The gateway reads the policies themselves: GitOps applies only the per-version Services.
  renderOffline: (plan) => ({
    objects: plan.policies.flatMap((p) => versionServices(p, offlineService(p))),
    problems: [],
  }),
};

/** What a version's Service `<service>--<version>` still waits for: a ready endpoint on the policy's port. */
export async function versionServiceNotServing(
  kube: Kube,
  policy: TrafficPolicy,
  version: string,
): Promise<string | undefined> {
  const namespace = policy.metadata.namespace ?? DEFAULTS.namespace;
  const service = versionServiceName(policy.spec.service, version);
  const svc = await kube.get<ServiceObject>({ apiVersion: 'v1', kind: 'Service', namespace, name: service });
  const slices = svc
    ? await kube.list<EndpointSliceObject>(
        'discovery.k8s.io/v1',
        'EndpointSlice',
        namespace,
        `${SERVICE_NAME_LABEL}=${service}`,
      )
    : [];
  return svc && readyEndpointUrls(svc, policy.spec.port, slices).length > 0
    ? undefined
    : `Service ${namespace}/${service} has a ready endpoint (are its pods ready?)`;
}

/**
 * The policy's Service as its per-version Services copy it (selector and ports), or why there is
 * none to copy.
 */
export async function stableServiceSpec(
  kube: Kube,
  plan: PolicyPlan,
  namespace: string,
): Promise<ServiceSpec | Extract<Desired, { ok: false }>> {
  const service = await kube.get<KubernetesObject & { spec?: ServiceSpec }>({
    apiVersion: 'v1',
    kind: 'Service',
    namespace,
    name: plan.service,
  });
  if (!service?.spec?.selector)
    return {
      ok: false,
      reason: REASON.StableNotFound,
      message: `Service ${namespace}/${plan.service} (spec.service) is missing or has no selector: the per-version Services select each version's pods from it`,
    };
  return service.spec;
}
