/**
 * One Service per version a policy routes or mirrors to (`<service>--<version>`, selecting the
 * Service's pods that carry that version label, with its ports): what the Node gateway and the
 * Gateway API send a version's requests to, where Istio has a DestinationRule subset.
 */
import {
  MANAGED_BY,
  MANAGED_BY_VALUE,
  POLICY_LABEL,
  VERSION_LABEL,
  VERSION_OF_LABEL,
} from '../resources/labels.js';
import { versionServiceName } from './names.js';
import type { KubeObject } from './objects.js';
import type { PolicyPlan } from './plan.js';

export type ServicePort = {
  name?: string;
  port: number;
  targetPort?: number | string;
  protocol?: string;
  appProtocol?: string;
};
export type ServiceSpec = { selector?: Record<string, string>; ports?: ServicePort[] };

/**
 * The Gateway API's appProtocol for cleartext HTTP/2 (GEP-1911): what tells an implementation
 * (Envoy Gateway, Istio) to speak HTTP/2 to the pods of a Service whose port says nothing else.
 */
export const H2C_APP_PROTOCOL = 'kubernetes.io/h2c';

/**
 * A Service port as Switchyard copies it: with `upstreamProtocol: http2` (gRPC) and no
 * appProtocol of its own, marked h2c, or the proxies would speak HTTP/1.1 to a gRPC server.
 */
export function copiedPort(p: ServicePort, upstreamProtocol: PolicyPlan['upstreamProtocol']): ServicePort {
  const appProtocol = p.appProtocol ?? (upstreamProtocol === 'http2' ? H2C_APP_PROTOCOL : undefined);
  return { ...p, ...(appProtocol ? { appProtocol } : {}) };
}

/** The versions a plan routes or mirrors to (previews have their own Services). */
function routedVersions(plan: PolicyPlan): string[] {
  const versions = new Set<string>();
  for (const route of plan.routes)
    for (const d of [...route.destinations, ...(route.mirror ? [route.mirror.destination] : [])])
      if (d.role !== 'preview') versions.add(d.version);
  return [...versions].sort();
}

export function versionServices(plan: PolicyPlan, service: ServiceSpec): KubeObject[] {
  return routedVersions(plan).map((version) => ({
    apiVersion: 'v1',
    kind: 'Service',
    metadata: {
      name: versionServiceName(plan.service, version),
      namespace: plan.namespace,
      labels: {
        [MANAGED_BY]: MANAGED_BY_VALUE,
        [POLICY_LABEL]: plan.name,
        [VERSION_OF_LABEL]: plan.service,
        [VERSION_LABEL]: version,
      },
    },
    spec: {
      selector: { ...service.selector, [plan.versionLabel]: version },
      ports: (service.ports ?? []).map((p) => {
        const copied = copiedPort(p, plan.upstreamProtocol);
        return {
          ...(p.name ? { name: p.name } : {}),
          port: p.port,
          ...(p.targetPort !== undefined ? { targetPort: p.targetPort } : {}),
          protocol: p.protocol ?? 'TCP',
          ...(copied.appProtocol ? { appProtocol: copied.appProtocol } : {}),
        };
      }),
    },
  }));
}

/**
 * Without a cluster to read the Service from, its pods are those of `workloadLabels` and the port
 * is the policy's (the controller copies the live Service's selector and ports instead).
 */
export function offlineService(policy: PolicyPlan): ServiceSpec {
  return { selector: policy.workloadLabels, ports: [{ name: 'http', port: policy.port }] };
}
