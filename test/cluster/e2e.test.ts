/**
 * What a platform team does first, on a real single-node cluster (kubelet, containerd, real pods):
 * install the chart in gateway mode and watch the controller and the gateway run as pods with the
 * chart's ServiceAccounts, probes, resources and disruption budgets. The last test stops the
 * cluster and checks that nothing of the run is left on the machine.
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  AppsV1Api,
  CoordinationV1Api,
  CoreV1Api,
  CustomObjectsApi,
  KubeConfig,
  type KubernetesObject,
  PolicyV1Api,
  RbacAuthorizationV1Api,
  type V1Deployment,
  type V1Pod,
} from '@kubernetes/client-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PREVIEW_LABEL } from '../../core/resources/labels.js';
import { type Kube, kubeConfigFrom } from '../../kube/client.js';
import { tempFiles } from '../support/cli.js';
import { eventually } from '../support/gateway.js';
import { postDelivery, pullRequestEvent } from '../support/github-deliveries.js';
import { type GithubStandIn, startGithubStandIn } from '../support/github-stand-in.js';
import { agent, send } from '../support/http.js';
import { type SteadyLoad, steadyLoad } from '../support/load.js';
import { startPrometheus, type TestPrometheus } from '../support/prometheus.js';
import {
  API_PORT,
  alive,
  leftoverCgroups,
  mountsUnder,
  NODE_IP,
  networkLinks,
  processesMentioning,
  type RunState,
  readState,
} from './cluster.js';
import { appImage, PR_COMMITS, SWITCHYARD_IMAGE } from './images.js';
import { followService, type ServiceClient } from './service-client.js';
import {
  CLUSTER_RUN,
  clusterGate,
  type RunningCluster,
  removeTestCluster,
  startTestCluster,
} from './setup.js';

const gate = clusterGate();
/** Set: the cluster is left running after the suite, for a person to look at. */
const KEEP = Boolean(process.env.SWITCHYARD_CLUSTER_KEEP);
const NAMESPACE = 'switchyard-system';
const CHART = join(import.meta.dirname, '..', '..', 'deploy', 'helm', 'switchyard');
/** Pods reach the API server at the node's address: nothing routes the `kubernetes` Service's. */
const WEBHOOK_SECRET = 'cluster test webhook secret';
const REPO = 'Codertocat/Hello-World';
const APP_NS = 'shop';
const API_ENV = [
  { name: 'KUBERNETES_SERVICE_HOST', value: NODE_IP },
  { name: 'KUBERNETES_SERVICE_PORT', value: String(API_PORT) },
];

describe.skipIf(!gate)('Switchyard on a real cluster', () => {
  let c: RunningCluster;
  let core: CoreV1Api;
  let apps: AppsV1Api;
  let policy: PolicyV1Api;
  let github: GithubStandIn;
  let stopped = false;

  beforeAll(async () => {
    c = await startTestCluster(gate as NonNullable<typeof gate>);
    const kc = kubeConfigFrom(c.adminKubeconfigText);
    core = kc.makeApiClient(CoreV1Api);
    apps = kc.makeApiClient(AppsV1Api);
    policy = kc.makeApiClient(PolicyV1Api);
    // GitHub's stand-in on the node's address, where the controller's pod reaches it.
    github = await startGithubStandIn({ host: NODE_IP });
    await c.admin.apply({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: NAMESPACE } }, 'test', true);
    await c.admin.apply(
      {
        apiVersion: 'v1',
        kind: 'Secret',
        metadata: { name: 'switchyard-github', namespace: NAMESPACE },
        stringData: { 'webhook-secret': WEBHOOK_SECRET, token: 'test-token', 'api-url': github.url },
      } as KubernetesObject,
      'test',
      true,
    );
  });

  afterAll(async () => {
    await github?.close();
    await agent.close();
    if (KEEP)
      console.log(
        `SWITCHYARD_CLUSTER_KEEP: the cluster runs on; KUBECONFIG=${c?.adminKubeconfig}; stop it with npm run cluster:stop`,
      );
    else await removeTestCluster(stopped ? undefined : c);
  });

  /** The pods of one of Switchyard's Deployments, less those being deleted. */
  const podsOf = async (app: string): Promise<V1Pod[]> =>
    (
      await core.listNamespacedPod({ namespace: NAMESPACE, labelSelector: `app.kubernetes.io/name=${app}` })
    ).items.filter((p) => !p.metadata?.deletionTimestamp);

  it('helm install in mesh mode (the default) on a cluster without Istio: refused before anything is made, naming mode=gateway', async () => {
    const r = await c.helm([
      'install',
      'switchyard-mesh',
      CHART,
      '--namespace',
      'switchyard-mesh',
      '--create-namespace',
    ]);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/mode: istio needs Istio on the cluster .*--set mode=gateway/);
    const releases = await c.helm(['list', '--all-namespaces', '--all', '-q']);
    expect(releases.stdout.trim()).toBe('');
    expect(
      await apps.listDeploymentForAllNamespaces().then((l) => l.items.map((d) => d.metadata?.name)),
    ).toEqual([]);
  });

  it('helm install in gateway mode: the controller and the gateway run as pods and become Ready', async () => {
    const r = await c.helm([
      'install', 'switchyard', CHART, '--namespace', NAMESPACE, '--create-namespace',
      '-f', installValues(), '--wait', '--timeout', '180s',
    ]); // biome-ignore format: flags in pairs
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    for (const name of ['switchyard-controller', 'switchyard-gateway']) {
      const d = await apps.readNamespacedDeployment({ namespace: NAMESPACE, name });
      expect(d.status?.availableReplicas).toBe(2);
    }
    const controllers = await podsOf('switchyard-controller');
    const gateways = await podsOf('switchyard-gateway');
    expect(controllers.map((p) => p.spec?.serviceAccountName)).toEqual(['switchyard', 'switchyard']);
    expect(gateways.map((p) => p.spec?.serviceAccountName)).toEqual([
      'switchyard-gateway',
      'switchyard-gateway',
    ]);
    for (const pod of [...controllers, ...gateways]) {
      const container = pod.spec?.containers[0];
      expect(container?.readinessProbe?.httpGet?.path).toBe('/readyz');
      expect(container?.resources?.requests?.cpu).toBeDefined();
      expect(pod.status?.containerStatuses?.[0]?.ready).toBe(true);
      expect(pod.status?.containerStatuses?.[0]?.restartCount).toBe(0);
      expect(pod.status?.podIP).toMatch(/^198\.19\./);
    }
    const pdbs = await policy.listNamespacedPodDisruptionBudget({ namespace: NAMESPACE });
    expect(pdbs.items.map((p) => [p.metadata?.name, p.status?.currentHealthy]).sort()).toEqual([
      ['switchyard-controller', 2],
      ['switchyard-gateway', 2],
    ]);
  });

  it('the gateway pod answers on its pod address, with its admin port saying where it listens', async () => {
    const [pod] = await podsOf('switchyard-gateway');
    const ip = pod?.status?.podIP as string;
    const ready = await fetch(`http://${ip}:9901/readyz`);
    expect(ready.status).toBe(200);
    const r = await send(`http://${ip}:8080`, { host: 'nothing.test' });
    expect(r.status).toBe(404);
    expect(r.headers['x-switchyard-error']).toBeDefined();
    const logs = await core.readNamespacedPodLog({
      namespace: NAMESPACE,
      name: pod?.metadata?.name as string,
    });
    const listening = logs.split('\n').filter((l) => l.includes('"adminUrl"'));
    expect(listening).toHaveLength(1);
    expect(listening[0]).toContain('"adminUrl":"http://0.0.0.0:9901"');
  });

  describe('a pull request becomes a running preview', () => {
    let gatewayUrl: string;
    let webhookUrl: string;
    let delivery = 0;
    const post = (payload: unknown) =>
      postDelivery(webhookUrl, 'pull_request', payload, {
        id: `cluster-${++delivery}`,
        secret: WEBHOOK_SECRET,
      });
    /** The app's answer through the gateway pod: which version served it. */
    const served = async (headers: Record<string, string>) => {
      const r = await send(gatewayUrl, { host: 'web.test', headers });
      const body = r.status === 200 ? (JSON.parse(r.body) as { version: string }) : undefined;
      return { status: r.status, version: body?.version };
    };
    const previewPods = async () =>
      (await core.listNamespacedPod({ namespace: APP_NS })).items.filter(
        (p) => p.metadata?.labels?.[PREVIEW_LABEL] && !p.metadata.deletionTimestamp,
      );

    beforeAll(async () => {
      await teamWorkload(c.admin);
      const [gw] = await podsOf('switchyard-gateway');
      gatewayUrl = `http://${gw?.status?.podIP}:8080`;
      const [ctl] = await podsOf('switchyard-controller');
      webhookUrl = `http://${ctl?.status?.podIP}:8081`;
      await eventually(async () => (await served({})).version === 'v1', 60_000);
    });

    it('an unsigned delivery gets 401 from the controller pod', async () => {
      const r = await postDelivery(
        webhookUrl,
        'pull_request',
        pullRequestEvent('opened', 7, PR_COMMITS[0], 0),
        {
          id: 'unsigned',
          secret: null,
        },
      );
      expect(r).toBe(401);
    });

    it('opened: the preview pod runs the commit and the gateway routes the header and the preview URL to it', async () => {
      expect(await post(pullRequestEvent('opened', 1, PR_COMMITS[0], 0))).toBe(202);
      await eventually(
        async () => (await served({ 'x-switchyard-preview': 'pr-1' })).version === 'c0ffee1',
        90_000,
      );
      const pods = await previewPods();
      expect(pods.map((p) => p.spec?.containers[0]?.image)).toEqual([appImage('c0ffee1')]);
      expect(pods[0]?.status?.containerStatuses?.[0]?.ready).toBe(true);
      const byUrl = await send(gatewayUrl, { host: 'pr-1--web.preview.test' });
      expect((JSON.parse(byUrl.body) as { version: string }).version).toBe('c0ffee1');
      expect((await served({})).version).toBe('v1');
      expect((await served({ 'x-switchyard-preview': 'pr-2' })).version).toBe('v1');
      // The pull request is told, from the controller's pod: a success status on the commit.
      await eventually(
        () => github.statuses.get(`${REPO}@${PR_COMMITS[0]}`)?.some((s) => s.state === 'success'),
        30_000,
      );
    });

    it('synchronize: pr-1 moves to the new commit’s pod', async () => {
      expect(await post(pullRequestEvent('synchronize', 1, PR_COMMITS[1], 1))).toBe(202);
      await eventually(
        async () => (await served({ 'x-switchyard-preview': 'pr-1' })).version === 'c0ffee2',
        90_000,
      );
      expect((await served({})).version).toBe('v1');
    });

    it('closed: the preview pods go, and pr-1 is served by stable again', async () => {
      expect(await post(pullRequestEvent('closed', 1, PR_COMMITS[1], 2))).toBe(202);
      await eventually(async () => (await previewPods()).length === 0, 90_000);
      await eventually(
        async () => (await served({ 'x-switchyard-preview': 'pr-1' })).version === 'v1',
        30_000,
      );
    });
  });

  describe('a progressive canary with real pods, analysed by a Prometheus scraping the gateway pods', () => {
    let prom: TestPrometheus;
    let gatewayUrl: string;
    let load: SteadyLoad;
    const applyShop = (stable: string, canary?: string) =>
      c.admin.apply(shopPolicy(stable, canary) as KubernetesObject, 'release-engineer', true);
    const shopPolicy = (stable: string, canary?: string) => ({
      apiVersion: 'switchyard.dev/v1alpha1',
      kind: 'TrafficPolicy',
      metadata: { name: 'shop', namespace: APP_NS },
      spec: {
        service: 'shop',
        port: 80,
        hosts: ['shop.test'],
        stable,
        ...(canary && {
          canary: {
            version: canary,
            steps: [
              { weight: 20, pause: '4s' },
              { weight: 60, pause: '4s' },
            ],
            analysis: {
              interval: '2s',
              failureLimit: 2,
              metrics: [{ name: 'request-success-rate', thresholdRange: { min: 95 } }],
            },
            autoPromote: true,
          },
        }),
      },
    });
    const readShop = () =>
      c.admin.get<
        KubernetesObject & {
          spec: { stable: string; canary?: object };
          status?: { canary?: { phase: string; version: string; weight: number; message: string } };
        }
      >({
        apiVersion: 'switchyard.dev/v1alpha1',
        kind: 'TrafficPolicy',
        namespace: APP_NS,
        name: 'shop',
      });

    beforeAll(async () => {
      await c.admin.apply(appService('shop'), 'test', true);
      for (const [version, tag] of [
        ['v1', 'v1'],
        ['v2', 'v2'],
        ['v3', 'v2-failing'],
      ] as const)
        await c.admin.apply(appDeployment('shop', version, tag), 'test', true);
      await applyShop('v1');
      const gateways = await podsOf('switchyard-gateway');
      gatewayUrl = `http://${gateways[0]?.status?.podIP}:8080`;
      prom = await startPrometheus({
        host: NODE_IP,
        scrapeIntervalMs: 500,
        targets: gateways.map((p, i) => ({
          job: `gateway-${i}`,
          address: `${p.status?.podIP}:9901`,
          path: '/metrics',
        })),
      });
      await prom.targetsUp();
      // The release engineer's upgrade: the controller now reads its analysis from this Prometheus.
      const upgrade = await c.helm([
        'upgrade', 'switchyard', CHART, '--namespace', NAMESPACE, '--reuse-values',
        '--set', `controller.prometheus=${prom.url}`, '--wait', '--timeout', '180s',
      ]); // biome-ignore format: flags in pairs
      expect(upgrade.stderr).toBe('');
      await eventually(
        async () =>
          (await send(gatewayUrl, { host: 'shop.test' })).headers['x-switchyard-upstream'] === 'shop/v1',
        60_000,
      );
      load = steadyLoad(() => send(gatewayUrl, { host: 'shop.test' }));
    });

    afterAll(async () => {
      await load?.stop();
      await prom?.stop();
    });

    it('a healthy canary walks its steps and is promoted, with no request failed', async () => {
      const started = Date.now();
      await applyShop('v1', 'v2');
      await eventually(async () => {
        const p = await readShop();
        return p?.spec.stable === 'v2' && !p.spec.canary;
      }, 90_000);
      const during = load.since(started);
      expect(during.filter((a) => a.status !== 200)).toEqual([]);
      expect(during.some((a) => a.upstream === 'shop/v2')).toBe(true);
      await eventually(() => load.lastFrom('shop/v2'), 20_000);
    });

    it('a canary failing a fifth of its requests is rolled back; no client off the canary saw a failure', async () => {
      const started = Date.now();
      await applyShop('v2', 'v3');
      const done = await eventually(async () => {
        const p = await readShop();
        return p?.status?.canary?.phase === 'RolledBack' ? p : undefined;
      }, 90_000);
      expect(done.status?.canary).toMatchObject({
        version: 'v3',
        weight: 0,
        message: expect.stringMatching(/^rolled back at step [12] of 2 \((20|60)%\): request-success-rate/),
      });
      expect(done.spec.stable).toBe('v2');
      await eventually(() => load.lastFrom('shop/v2'), 20_000);
      const during = load.since(started);
      expect(during.some((a) => a.upstream === 'shop/v3' && a.status === 500)).toBe(true);
      expect(during.filter((a) => a.status !== 200 && a.upstream !== 'shop/v3')).toEqual([]);
    });
  });

  describe('disruption under load: gateway pods deleted and rolled, the leader deleted', () => {
    let gateways: ServiceClient;
    let load: SteadyLoad;
    const slow: string[] = [];
    let inFlight = '';
    const gatewayAvailable = async () => {
      const d = await apps.readNamespacedDeployment({ namespace: NAMESPACE, name: 'switchyard-gateway' });
      return d.status?.updatedReplicas === 2 && d.status.availableReplicas === 2 && d.status.replicas === 2;
    };

    beforeAll(async () => {
      // Clients reach the gateway through its Service, as kube-proxy would send them.
      gateways = await followService(
        kubeConfigFrom(c.adminKubeconfigText),
        NAMESPACE,
        'switchyard-gateway',
        'http',
      );
      load = steadyLoad(async () => {
        const url = gateways.next();
        const t = Date.now();
        inFlight = `${url} since ${t}`;
        try {
          return await send(url, { host: 'web.test' });
        } finally {
          if (Date.now() - t > 500)
            slow.push(`${url} ${Date.now() - t} ms (ready then: ${gateways.ready().join(' ')})`);
        }
      });
      await eventually(() => load.answers.length > 50, 20_000);
    });

    afterAll(async () => {
      await load?.stop();
      gateways?.stop();
    });

    /** The load's answers since `started`, and what a person needs to see when some failed or stalled. */
    const answersSince = (started: number) => {
      const during = load.since(started);
      const stalls = during.flatMap((a, i) => {
        const gap = a.at - (during[i - 1]?.at ?? started);
        return gap > 500 ? [`${gap} ms before an answer ${a.status} from ${a.upstream}`] : [];
      });
      if (stalls.length > 0)
        console.log(
          `stalls: ${stalls.join('; ')}; slow requests: ${slow.join('; ')}; in flight: ${inFlight}`,
        );
      return during;
    };

    it('a gateway pod deleted: its replacement becomes Ready and no request fails', async () => {
      const started = Date.now();
      const [victim] = await podsOf('switchyard-gateway');
      const name = victim?.metadata?.name as string;
      await core.deleteNamespacedPod({ namespace: NAMESPACE, name });
      // Gone for good (its drain done), and a replacement available.
      await eventually(
        async () =>
          (await core.readNamespacedPod({ namespace: NAMESPACE, name }).catch(() => undefined)) === undefined,
        90_000,
      );
      await eventually(gatewayAvailable, 90_000);
      await eventually(() => gateways.ready().length === 2, 20_000);
      const during = answersSince(started);
      expect(during.length).toBeGreaterThan(100);
      expect(during.filter((a) => a.status !== 200)).toEqual([]);
    });

    it('the gateway rolled to a new image tag: every pod replaced, no request fails', async () => {
      const started = Date.now();
      const [repository] = SWITCHYARD_IMAGE.split(':') as [string];
      c.cluster.ctr(['images', 'tag', SWITCHYARD_IMAGE, `${repository}:cluster-test-2`]);
      const upgrade = await c.helm([
        'upgrade', 'switchyard', CHART, '--namespace', NAMESPACE, '--reuse-values',
        '--set', 'image.tag=cluster-test-2', '--wait', '--timeout', '180s',
      ]); // biome-ignore format: flags in pairs
      expect(upgrade.stderr).toBe('');
      const rolled = async () => {
        const pods = await podsOf('switchyard-gateway');
        return (
          (await gatewayAvailable()) &&
          pods.length === 2 &&
          pods.every((p) => p.spec?.containers[0]?.image === `${repository}:cluster-test-2`)
        );
      };
      await eventually(rolled, 90_000);
      await eventually(() => gateways.ready().length === 2, 20_000);
      const during = answersSince(started);
      expect(during.length).toBeGreaterThan(100);
      expect(during.filter((a) => a.status !== 200)).toEqual([]);
    });

    it('the leader pod deleted: another replica leads within the lease duration, and a change made meanwhile is applied', async () => {
      const coordination = kubeConfigFrom(c.adminKubeconfigText).makeApiClient(CoordinationV1Api);
      // After the roll above, one of the new pods leads (its identity: the pod's name, then the
      // process's own suffix).
      const controllers = (await podsOf('switchyard-controller')).map((p) => p.metadata?.name as string);
      const podOf = (holder: string | undefined) =>
        controllers.find((name) => holder?.startsWith(`${name}-`));
      const lease = await eventually(async () => {
        const [l] = (await coordination.listNamespacedLease({ namespace: NAMESPACE })).items;
        return podOf(l?.spec?.holderIdentity) ? l : undefined;
      }, 60_000);
      const leader = podOf(lease.spec?.holderIdentity) as string;
      const deleted = Date.now();
      await core.deleteNamespacedPod({ namespace: NAMESPACE, name: leader });
      // Meanwhile, a team ships a new service.
      await c.admin.apply(appService('hello'), 'test', true);
      await c.admin.apply(appDeployment('hello', 'v1', 'v1'), 'test', true);
      await c.admin.apply(
        {
          apiVersion: 'switchyard.dev/v1alpha1',
          kind: 'TrafficPolicy',
          metadata: { name: 'hello', namespace: APP_NS },
          spec: { service: 'hello', port: 80, hosts: ['hello.test'], stable: 'v1' },
        } as KubernetesObject,
        'test',
        true,
      );
      const served = await eventually(async () => {
        const r = await send(gateways.next(), { host: 'hello.test' });
        return r.status === 200 && r.headers['x-switchyard-upstream'] === 'hello/v1' ? Date.now() : undefined;
      }, 60_000).catch(async (e) => {
        // What a person needs to see: the policy's status, the Lease, the gateway's answer.
        const p = await c.admin.get<KubernetesObject & { status?: unknown }>({
          apiVersion: 'switchyard.dev/v1alpha1',
          kind: 'TrafficPolicy',
          namespace: APP_NS,
          name: 'hello',
        });
        const l = await coordination.readNamespacedLease({
          namespace: NAMESPACE,
          name: lease.metadata?.name as string,
        });
        const r = await send(gateways.next(), { host: 'hello.test' });
        const pods = (await podsOf('switchyard-controller')).map(
          (x) => `${x.metadata?.name} ready=${x.status?.containerStatuses?.[0]?.ready}`,
        );
        throw new Error(
          `${e}: policy status ${JSON.stringify(p?.status)}; lease ${JSON.stringify(l.spec)}; controllers ${pods.join(', ')}; gateway ${r.status} ${r.body.slice(0, 200)}`,
        );
      });
      const next = await coordination.readNamespacedLease({
        namespace: NAMESPACE,
        name: lease.metadata?.name as string,
      });
      // The standby (warm caches, campaigning) or, had it lost the race, the leader's replacement.
      expect(next.spec?.holderIdentity).not.toMatch(new RegExp(`^${leader}-`));
      expect(next.spec?.holderIdentity).toMatch(/^switchyard-controller-/);
      const leaseMs = (lease.spec?.leaseDurationSeconds ?? 15) * 1000;
      console.log(
        `leader pod deleted: the change was served ${served - deleted} ms later (lease ${leaseMs} ms)`,
      );
      expect(served - deleted).toBeLessThan(leaseMs);
    });
  });

  describe('a namespaced install: the controller and the gateway given only the shop namespace', () => {
    const OTHER_NS = 'other-team';
    let gatewayUrl: string;
    let webhookUrl: string;
    /** A client acting as one of the chart's ServiceAccounts, with a token the API server issued it. */
    const actingAs = async (account: string) => {
      const { status } = await core.createNamespacedServiceAccountToken({
        namespace: NAMESPACE,
        name: account,
        body: { spec: { audiences: [], expirationSeconds: 600 } },
      });
      const admin = kubeConfigFrom(c.adminKubeconfigText);
      const kc = new KubeConfig();
      kc.loadFromOptions({
        clusters: admin.clusters,
        users: [{ name: account, token: status?.token }],
        contexts: [{ name: account, cluster: admin.clusters[0]?.name as string, user: account }],
        currentContext: account,
      });
      return kc;
    };
    /** The HTTP status a call answers with: 200 when it succeeds. */
    const statusOf = (call: Promise<unknown>) =>
      call.then(
        () => 200,
        (e: { code?: number }) => e.code ?? -1,
      );

    beforeAll(async () => {
      // The cluster-wide release goes; the team in other-team has the same repository's previews.
      const uninstall = await c.helm(['uninstall', 'switchyard', '--namespace', NAMESPACE, '--wait']);
      expect(uninstall.code).toBe(0);
      await teamWorkload(c.admin, OTHER_NS);
      const r = await c.helm([
        'install', 'switchyard', CHART, '--namespace', NAMESPACE,
        '-f', installValues({ namespaces: [APP_NS] }), '--wait', '--timeout', '180s',
      ]); // biome-ignore format: flags in pairs
      expect(r.stderr).toBe('');
      expect(r.code).toBe(0);
      const [gw] = await podsOf('switchyard-gateway');
      gatewayUrl = `http://${gw?.status?.podIP}:8080`;
      const [ctl] = await podsOf('switchyard-controller');
      webhookUrl = `http://${ctl?.status?.podIP}:8081`;
    });

    it('has Roles in shop and nothing cluster-wide, and both parts become Ready', async () => {
      const rbac = kubeConfigFrom(c.adminKubeconfigText).makeApiClient(RbacAuthorizationV1Api);
      const mine = (o: { metadata?: { name?: string } }) => o.metadata?.name?.startsWith('switchyard');
      expect((await rbac.listClusterRole()).items.filter(mine)).toEqual([]);
      expect((await rbac.listClusterRoleBinding()).items.filter(mine)).toEqual([]);
      const roles = (await rbac.listNamespacedRole({ namespace: APP_NS })).items.map((r) => r.metadata?.name);
      expect(roles.sort()).toEqual([
        'switchyard-controller',
        'switchyard-controller-gateway',
        'switchyard-gateway',
      ]);
      expect((await rbac.listNamespacedRole({ namespace: OTHER_NS })).items).toEqual([]);
      for (const name of ['switchyard-controller', 'switchyard-gateway']) {
        const d = await apps.readNamespacedDeployment({ namespace: NAMESPACE, name });
        expect(d.status?.availableReplicas).toBe(2);
      }
    });

    it('a pull request opened: its preview runs in shop and is served; the policy in other-team gets none', async () => {
      await eventually(async () => (await send(gatewayUrl, { host: 'web.test' })).status === 200, 60_000);
      const opened = await postDelivery(
        webhookUrl,
        'pull_request',
        pullRequestEvent('opened', 3, PR_COMMITS[0], 3),
        { id: 'namespaced-1', secret: WEBHOOK_SECRET },
      );
      expect(opened).toBe(202);
      await eventually(async () => {
        const r = await send(gatewayUrl, { host: 'web.test', headers: { 'x-switchyard-preview': 'pr-3' } });
        return r.status === 200 && (JSON.parse(r.body) as { version: string }).version === 'c0ffee1';
      }, 90_000);
      const previews = (namespace: string) =>
        c.admin
          .list('switchyard.dev/v1alpha1', 'Preview', namespace)
          .then((l) => l.map((p) => p.metadata?.name));
      expect(await previews(APP_NS)).toEqual([`web-pr-3-${PR_COMMITS[0].slice(0, 7)}`]);
      expect(await previews(OTHER_NS)).toEqual([]);
      // The gateway does not serve the other team's host: it does not see its policy.
      const other = await send(gatewayUrl, { host: 'web.other-team.test' });
      expect(other.status).toBe(404);
      // Closed: the preview goes (the finalizer released by this controller).
      const closed = await postDelivery(
        webhookUrl,
        'pull_request',
        pullRequestEvent('closed', 3, PR_COMMITS[0], 4),
        { id: 'namespaced-2', secret: WEBHOOK_SECRET },
      );
      expect(closed).toBe(202);
      await eventually(async () => (await previews(APP_NS)).length === 0, 90_000);
    });

    it('the controller’s and the gateway’s ServiceAccounts are refused in a namespace they were not given (403)', async () => {
      const controller = await actingAs('switchyard');
      const gateway = await actingAs('switchyard-gateway');
      const deployment = appDeployment('intruder', 'v1', 'v1', OTHER_NS) as V1Deployment;
      const listPreviews = (kc: KubeConfig, namespace: string) =>
        kc.makeApiClient(CustomObjectsApi).listNamespacedCustomObject({
          group: 'switchyard.dev',
          version: 'v1alpha1',
          namespace,
          plural: 'previews',
        });
      // What each may do in shop, it may not do in other-team, nor across the cluster.
      for (const kc of [controller, gateway]) {
        expect(await statusOf(listPreviews(kc, APP_NS))).toBe(200);
        expect(await statusOf(listPreviews(kc, OTHER_NS))).toBe(403);
        expect(await statusOf(kc.makeApiClient(CoreV1Api).listServiceForAllNamespaces())).toBe(403);
      }
      const asController = controller.makeApiClient(AppsV1Api);
      expect(
        await statusOf(asController.createNamespacedDeployment({ namespace: OTHER_NS, body: deployment })),
      ).toBe(403);
      expect(
        await statusOf(asController.deleteNamespacedDeployment({ namespace: OTHER_NS, name: 'web-v1' })),
      ).toBe(403);
      expect(
        (await apps.readNamespacedDeployment({ namespace: OTHER_NS, name: 'web-v1' })).metadata?.name,
      ).toBe('web-v1');
    });
  });

  it.skipIf(KEEP)('stopping the cluster leaves nothing of the run on the machine', async () => {
    const pids = readPids();
    const before = readState(CLUSTER_RUN) as RunState;
    await c.cluster.stop();
    stopped = true;
    expect(pids.filter(alive)).toEqual([]);
    expect(processesMentioning(CLUSTER_RUN)).toEqual([]);
    expect(mountsUnder(CLUSTER_RUN)).toEqual([]);
    expect(networkLinks()).toEqual(before.links);
    expect(leftoverCgroups()).toEqual([]);
    expect(before.created.filter((p) => existsSync(p))).toEqual([]);
    for (const [dir, entries] of Object.entries(before.shared))
      expect(existsSync(dir) ? readdirSync(dir).sort() : [], dir).toEqual([...entries].sort());
    // Nor a Kubernetes client's cache in the project (helm once wrote one there).
    expect(existsSync(join(import.meta.dirname, '..', '..', '.kube'))).toBe(false);
    for (const [k, v] of Object.entries(before.sysctls))
      expect(readFileSync(`/proc/sys/${k}`, 'utf8').trim()).toBe(v);
  });
});

/** The chart's values for this cluster, as a file: gateway mode, the images imported. */
function installValues(controller: { namespaces?: string[] } = {}): string {
  const [repository, tag] = SWITCHYARD_IMAGE.split(':') as [string, string];
  const values = tempFiles({
    'values.json': JSON.stringify({
      mode: 'gateway',
      image: { repository, tag, pullPolicy: 'Never' },
      controller: { extraEnv: API_ENV, ...controller },
      gateway: { extraEnv: API_ENV },
    }),
  });
  return join(values, 'values.json');
}

function readPids(): number[] {
  const dir = join(CLUSTER_RUN, 'pids');
  return readdirSync(dir).map((f) => Number(readFileSync(join(dir, f), 'utf8')));
}

/**
 * The team's app as it runs before Switchyard: a Service, its stable Deployment, and a policy with
 * previews of the repository's pull requests. In another namespace, `web.<ns>.test`.
 */
async function teamWorkload(admin: Kube, ns = APP_NS): Promise<void> {
  const suffix = ns === APP_NS ? 'test' : `${ns}.test`;
  await admin.apply({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: ns } }, 'test', true);
  await admin.apply(appService('web', ns), 'test', true);
  await admin.apply(appDeployment('web', 'v1', 'v1', ns), 'test', true);
  await admin.apply(
    {
      apiVersion: 'switchyard.dev/v1alpha1',
      kind: 'TrafficPolicy',
      metadata: { name: 'web', namespace: ns },
      spec: {
        service: 'web',
        port: 80,
        hosts: [`web.${suffix}`],
        stable: 'v1',
        previews: {
          repository: REPO,
          image: 'localhost/switchyard-test/app:{sha7}',
          domain: `preview.${suffix}`,
        },
      },
    } as KubernetesObject,
    'test',
    true,
  );
}

function appService(app: string, ns = APP_NS): KubernetesObject {
  return {
    apiVersion: 'v1',
    kind: 'Service',
    metadata: { name: app, namespace: ns },
    spec: { selector: { app }, ports: [{ name: 'http', port: 80, targetPort: 8080 }] },
  } as KubernetesObject;
}

/** One version of the app: a Deployment of the test app's image `tag`, with a readiness probe. */
function appDeployment(app: string, version: string, tag: string, ns = APP_NS): KubernetesObject {
  const labels = { app, version };
  return {
    apiVersion: 'apps/v1',
    kind: 'Deployment',
    metadata: { name: `${app}-${version}`, namespace: ns },
    spec: {
      replicas: 1,
      selector: { matchLabels: labels },
      template: {
        metadata: { labels },
        spec: {
          containers: [
            {
              name: app,
              image: appImage(tag),
              imagePullPolicy: 'Never',
              ports: [{ containerPort: 8080 }],
              readinessProbe: { httpGet: { path: '/healthz', port: 8080 }, periodSeconds: 1 },
            },
          ],
        },
      },
    },
  } as KubernetesObject;
}
