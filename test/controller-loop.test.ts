/**
 * The controller as it runs: informers and the work queue against a real kube-apiserver. Changes
 * made by others (a policy edit, a preview turning Ready, a foreign edit to an owned
 * VirtualService) are picked up from watches and converged without anyone calling reconcile.
 */
import { createWriteStream } from 'node:fs';
import { AppsV1Api, type KubernetesObject } from '@kubernetes/client-node';
import { sign } from '@octokit/webhooks-methods';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type RunningController, startController } from '../cli/start-controller.js';
import { createLogger } from '../core/common/logger.js';
import { clientNodeKube, type Kube, kubeConfigFrom } from '../kube/client.js';
import { applyRbac } from './support/cluster.js';
import { type Envtest, sharedEnvtest } from './support/envtest.js';
import { eventually } from './support/gateway.js';

const shared = await sharedEnvtest({ istio: true });

type Vs = { spec: { http: { name: string; route: { weight: number }[] }[] } };

describe.skipIf(!shared)('controller loop on a real API server', () => {
  let env: Envtest;
  let kube: Kube;
  let controller: RunningController;
  const ns = 'loop';
  const vs = () =>
    kube.get<Vs & { apiVersion: string; kind: string; metadata: { name: string } }>({
      apiVersion: 'networking.istio.io/v1',
      kind: 'VirtualService',
      namespace: ns,
      name: 'web',
    });
  const canaryWeight = async () => (await vs())?.spec.http.find((r) => r.name === 'split')?.route[1]?.weight;
  const applyPolicy = (weight: number) =>
    kube.apply(
      {
        apiVersion: 'switchyard.dev/v1alpha1',
        kind: 'TrafficPolicy',
        metadata: { name: 'web', namespace: ns },
        spec: {
          service: 'web',
          port: 80,
          stable: 'v1',
          canary: { version: 'v2', weight },
          previews: {
            repository: 'acme/web',
            image: 'ghcr.io/acme/web:{sha7}',
            domain: 'preview.example.com',
            gateway: 'istio-system/previews',
          },
        },
      } as never,
      'release-engineer',
      true,
    );

  beforeAll(async () => {
    env = shared as Envtest;
    kube = clientNodeKube(kubeConfigFrom(env.adminKubeconfig));
    await kube.apply({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: ns } } as never, 'test', true);
    // The controller runs as its ServiceAccount, bound only by the RBAC in deploy/install: a
    // missing permission fails here with a real Forbidden.
    await applyRbac(kube);
    controller = await startController({
      kubeconfig: kubeConfigFrom(env.kubeconfigFor('system:serviceaccount:switchyard-system:switchyard')),
      logger: createLogger({
        level: process.env.SWITCHYARD_TEST_LOG ?? 'silent',
        ...(process.env.SWITCHYARD_TEST_LOG_FILE
          ? { destination: createWriteStream(process.env.SWITCHYARD_TEST_LOG_FILE) }
          : {}),
      }),
      namespaces: [ns],
      githubWebhookSecret: 'loop-webhook-secret',
      port: 0,
      host: '127.0.0.1',
    });
  }, 180_000);
  afterAll(async () => {
    await controller?.stop();
    await env?.stop();
  });

  it('is ready once its informers have listed', async () => {
    expect((await fetch(`${controller.url}/readyz`)).status).toBe(200);
  });

  it('serves the GitHub webhook on its port: 401 unsigned, 202 signed', async () => {
    const body = JSON.stringify({ zen: 'Keep it logically awesome.', hook_id: 1 });
    const post = (headers: Record<string, string>) =>
      fetch(`${controller.url}/webhooks/github`, {
        method: 'POST',
        headers: {
          'content-type': 'application/json',
          'x-github-event': 'ping',
          'x-github-delivery': 'd1',
          ...headers,
        },
        body,
      });
    expect((await post({})).status).toBe(401);
    expect((await post({ 'x-hub-signature-256': await sign('loop-webhook-secret', body) })).status).toBe(202);
  });

  it('writes routes for a new policy and follows weight changes from the watch', async () => {
    await applyPolicy(20);
    await eventually(async () => (await canaryWeight()) === 20, 10_000);
    await applyPolicy(45);
    await eventually(async () => (await canaryWeight()) === 45, 10_000);
  });

  it('reverts a foreign edit to an owned VirtualService', async () => {
    const live = (await vs()) as Vs & { apiVersion: string; kind: string };
    const http = live.spec.http.map((r) =>
      r.name === 'split' ? { ...r, route: r.route.map((d, i) => ({ ...d, weight: i === 0 ? 0 : 100 })) } : r,
    );
    await kube.apply(
      {
        apiVersion: live.apiVersion,
        kind: live.kind,
        metadata: { name: 'web', namespace: ns },
        spec: { hosts: ['web.loop.svc.cluster.local'], http },
      } as never,
      'kubectl-edit',
      true,
    );
    await eventually(async () => (await canaryWeight()) === 45, 10_000);
    // Counted, and shown on the policy as a Warning Event.
    const reverted = async () =>
      (await (await fetch(`${controller.url}/metrics`)).text())
        .split('\n')
        .find((l) => l.startsWith('switchyard_controller_foreign_edits_reverted_total'));
    await eventually(async () => (await reverted()) !== undefined, 10_000);
    expect(await reverted()).toBe(
      'switchyard_controller_foreign_edits_reverted_total{kind="VirtualService"} 1',
    );
    const events = await kube.list<{
      apiVersion?: string;
      reason: string;
      type: string;
      involvedObject: { kind: string; name: string };
    }>('v1', 'Event', ns);
    expect(events).toContainEqual(
      expect.objectContaining({
        reason: 'ForeignEditReverted',
        type: 'Warning',
        involvedObject: expect.objectContaining({ kind: 'TrafficPolicy', name: 'web' }),
      }),
    );
  });

  it('deploys a Preview as a clone of stable, marks it Ready when available, and routes it', async () => {
    const labels = { app: 'web', version: 'v1' };
    await kube.apply(
      {
        apiVersion: 'v1',
        kind: 'Service',
        metadata: { name: 'web', namespace: ns },
        spec: { selector: { app: 'web' }, ports: [{ name: 'http', port: 80, targetPort: 8080 }] },
      } as never,
      'test',
      true,
    );
    await kube.apply(
      {
        apiVersion: 'apps/v1',
        kind: 'Deployment',
        metadata: { name: 'web-v1', namespace: ns },
        spec: {
          replicas: 3,
          selector: { matchLabels: labels },
          template: {
            metadata: { labels },
            spec: {
              containers: [
                { name: 'web', image: 'ghcr.io/acme/web:v1', env: [{ name: 'MODE', value: 'prod' }] },
              ],
            },
          },
        },
      } as never,
      'test',
      true,
    );
    const commit = '0a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d';
    await kube.apply(
      {
        apiVersion: 'switchyard.dev/v1alpha1',
        kind: 'Preview',
        metadata: { name: 'web-pr-7-0a1b2c3', namespace: ns },
        spec: { policy: 'web', repository: 'acme/web', pullRequest: 7, commit, env: { MODE: 'preview' } },
      } as never,
      'test',
      true,
    );
    type Dep = {
      metadata: {
        ownerReferences?: {
          apiVersion: string;
          name: string;
          uid: string;
          kind: string;
          controller?: boolean;
        }[];
      };
      spec: {
        replicas: number;
        template: {
          metadata: { labels: Record<string, string> };
          spec: { containers: { image: string; env: { name: string; value: string }[] }[] };
        };
      };
    };
    const dep = await eventually(
      () =>
        kube.get<Dep & { apiVersion: string; kind: string }>({
          apiVersion: 'apps/v1',
          kind: 'Deployment',
          namespace: ns,
          name: 'web-pr-7-0a1b2c3',
        }),
      10_000,
    );
    expect(dep.spec.replicas).toBe(1);
    expect(dep.spec.template.spec.containers[0]?.image).toBe('ghcr.io/acme/web:0a1b2c3');
    expect(dep.spec.template.spec.containers[0]?.env).toEqual([{ name: 'MODE', value: 'preview' }]);
    expect(dep.spec.template.metadata.labels).toMatchObject({
      app: 'web',
      version: 'pr-7-0a1b2c3',
      'switchyard.dev/role': 'preview',
    });
    expect(dep.metadata.ownerReferences).toEqual([
      expect.objectContaining({ kind: 'Preview', controller: true }),
    ]);
    const phase = async () =>
      (
        await kube.get<
          { status?: { phase?: string; url?: string; intercept?: string } } & {
            apiVersion: string;
            kind: string;
          }
        >({ apiVersion: 'switchyard.dev/v1alpha1', kind: 'Preview', namespace: ns, name: 'web-pr-7-0a1b2c3' })
      )?.status;
    await eventually(async () => (await phase())?.phase === 'Deploying', 10_000);
    expect((await vs())?.spec.http.some((r) => r.name === 'preview-pr-7')).toBe(false);

    // No kubelet here: play its part and report the Deployment available.
    const apps = kubeConfigFrom(env.adminKubeconfig).makeApiClient(AppsV1Api);
    const current = await apps.readNamespacedDeployment({ name: 'web-pr-7-0a1b2c3', namespace: ns });
    const status = {
      replicas: 1,
      readyReplicas: 1,
      availableReplicas: 1,
      conditions: [{ type: 'Available', status: 'True', reason: 'MinimumReplicasAvailable', message: 'ok' }],
    };
    await apps.replaceNamespacedDeploymentStatus({
      name: 'web-pr-7-0a1b2c3',
      namespace: ns,
      body: { ...current, status },
    });
    await eventually(async () => (await phase())?.phase === 'Ready', 10_000);
    expect(await phase()).toMatchObject({
      url: 'https://pr-7--web.preview.example.com',
      intercept: 'x-switchyard-preview: pr-7',
    });
    await eventually(async () => (await vs())?.spec.http.some((r) => r.name === 'preview-pr-7'), 10_000);
    const metrics = await (await fetch(`${controller.url}/metrics`)).text();
    expect(metrics).toMatch(/switchyard_controller_reconciles_total\{result="success"\} [1-9]/);
    // Lost races (409) are retried and fine; a missing permission (403) is not.
    expect(metrics).not.toMatch(/switchyard_controller_reconcile_errors_total\{code="403"\}/);
  });
  it('a host freed is taken down the claim order: a change to one policy re-judges those it reaches through others', async () => {
    const policyOf = (name: string, hosts: string[]) =>
      kube.apply(
        {
          apiVersion: 'switchyard.dev/v1alpha1',
          kind: 'TrafficPolicy',
          metadata: { name, namespace: ns },
          spec: { service: name, port: 80, hosts, stable: 'v1' },
        } as never,
        'test',
        true,
      );
    const ready = async (name: string) =>
      (
        await kube.get<
          KubernetesObject & { status?: { conditions?: { type: string; status: string; reason: string }[] } }
        >({
          apiVersion: 'switchyard.dev/v1alpha1',
          kind: 'TrafficPolicy',
          namespace: ns,
          name,
        })
      )?.status?.conditions?.find((c) => c.type === 'Ready');
    // Created a second apart: a, then b, then c in claim order. b loses x to a, so it serves
    // nothing and c has y.
    await policyOf('claim-a', ['x.loop.test']);
    await new Promise((r) => setTimeout(r, 1100));
    await policyOf('claim-b', ['x.loop.test', 'y.loop.test']);
    await new Promise((r) => setTimeout(r, 1100));
    await policyOf('claim-c', ['y.loop.test']);
    await eventually(async () => (await ready('claim-c'))?.status === 'True', 10_000);
    await eventually(async () => (await ready('claim-b'))?.reason === 'Conflict', 10_000);
    // a lets x go: b is judged again and serves x and y, and so c (which never overlapped a)
    // loses y to it, without waiting for a resync.
    await policyOf('claim-a', ['z.loop.test']);
    await eventually(async () => (await ready('claim-b'))?.status === 'True', 10_000);
    await eventually(async () => (await ready('claim-c'))?.reason === 'Conflict', 10_000);
  });
});
