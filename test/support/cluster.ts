/**
 * Set-up shared by the tests that run the controller against the envtest API server: the RBAC of
 * deploy/install (the controller runs as its ServiceAccount under exactly those rules), a stable
 * workload to clone, and the kubelet's part (reporting a Deployment available).
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { AppsV1Api, type KubernetesObject, loadAllYaml } from '@kubernetes/client-node';
import { clientNodeKube, type Kube, kubeConfigFrom } from '../../kube/client.js';
import type { Envtest } from './envtest.js';

export const CONTROLLER_USER = 'system:serviceaccount:switchyard-system:switchyard';
export const GATEWAY_USER = 'system:serviceaccount:switchyard-system:switchyard-gateway';
const ROOT = join(import.meta.dirname, '..', '..');

export function adminKube(env: Envtest): Kube {
  return clientNodeKube(kubeConfigFrom(env.adminKubeconfig));
}

/** The RBAC of deploy/install for both modes (tests run either) and the gateway's. */
export async function applyRbac(admin: Kube): Promise<void> {
  for (const file of ['rbac.yaml', 'rbac-istio.yaml', 'rbac-gateway.yaml']) {
    const text = readFileSync(join(ROOT, 'deploy', 'install', file), 'utf8');
    for (const doc of loadAllYaml(text) as KubernetesObject[]) {
      // A Role in Istio's root namespace needs that namespace.
      if (doc.metadata?.namespace) await createNamespace(admin, doc.metadata.namespace);
      await admin.apply(doc, 'test', true);
    }
  }
}

export async function createNamespace(kube: Kube, name: string): Promise<void> {
  await kube.apply({ apiVersion: 'v1', kind: 'Namespace', metadata: { name } }, 'test', true);
}

/** The Service `service` and a Deployment of its stable version, as a team would have them. */
export async function stableWorkload(kube: Kube, namespace: string, service: string, version = 'v1') {
  const labels = { app: service, version };
  await kube.apply(
    {
      apiVersion: 'v1',
      kind: 'Service',
      metadata: { name: service, namespace },
      spec: { selector: { app: service }, ports: [{ name: 'http', port: 80, targetPort: 8080 }] },
    } as KubernetesObject,
    'test',
    true,
  );
  await kube.apply(
    {
      apiVersion: 'apps/v1',
      kind: 'Deployment',
      metadata: { name: `${service}-${version}`, namespace },
      spec: {
        replicas: 2,
        selector: { matchLabels: labels },
        template: {
          metadata: { labels },
          spec: { containers: [{ name: service, image: `ghcr.io/acme/${service}:${version}` }] },
        },
      },
    } as KubernetesObject,
    'test',
    true,
  );
}

/** No kubelet runs: play its part and report the Deployment's replicas available. */
export async function markAvailable(env: Envtest, namespace: string, name: string): Promise<void> {
  const apps = kubeConfigFrom(env.adminKubeconfig).makeApiClient(AppsV1Api);
  const current = await apps.readNamespacedDeployment({ name, namespace });
  const replicas = current.spec?.replicas ?? 1;
  await apps.replaceNamespacedDeploymentStatus({
    name,
    namespace,
    body: {
      ...current,
      status: {
        replicas,
        readyReplicas: replicas,
        availableReplicas: replicas,
        conditions: [
          { type: 'Available', status: 'True', reason: 'MinimumReplicasAvailable', message: 'ok' },
        ],
      },
    },
  });
}

/**
 * What the endpoint controller would write for `service`: one EndpointSlice with these test hosts
 * (one port: the first host's), ready or not.
 */
export function writeEndpoints(
  kube: Kube,
  namespace: string,
  service: string,
  hosts: { address: string; port: number }[],
  ready = true,
): Promise<KubernetesObject> {
  return kube.apply(
    {
      apiVersion: 'discovery.k8s.io/v1',
      kind: 'EndpointSlice',
      metadata: { name: `${service}-abcde`, namespace, labels: { 'kubernetes.io/service-name': service } },
      addressType: 'IPv4',
      ports: [{ name: 'http', port: hosts[0]?.port, protocol: 'TCP' }],
      endpoints: hosts.map((h) => ({ addresses: [h.address], conditions: { ready } })),
    } as KubernetesObject,
    'endpointslice-controller',
    true,
  );
}
