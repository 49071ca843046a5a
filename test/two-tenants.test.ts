/**
 * Two tenants share one controller (gateway mode) and one `gateway --kube`, on a real API server.
 * Tenant B tries to take what is A's: a Preview named like A's Service, a TrafficPolicy claiming
 * A's host, a policy with an absurd timeout, and a token minted for B's policy sent to A's preview.
 * Afterwards A's objects are unchanged (resourceVersion), A's traffic still routes and still follows
 * A's changes, and B's objects say what was refused. The "pods" are test hosts in a network
 * namespace this test makes.
 */
import type { KubernetesObject } from '@kubernetes/client-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { reconcilePreview } from '../controllers/preview.js';
import { reconcileTrafficPolicy } from '../controllers/traffic-policy.js';
import { createLogger } from '../core/common/logger.js';
import { type RunningGateway, runGateway } from '../gateway/start.js';
import { type Kube, kubeConfigFrom } from '../kube/client.js';
import {
  adminKube,
  applyRbac,
  createNamespace,
  GATEWAY_USER,
  markAvailable,
  stableWorkload,
} from './support/cluster.js';
import { type Envtest, sharedEnvtest } from './support/envtest.js';
import { header, send } from './support/http.js';
import { createTestNetns, type NetnsUpstream, type TestNetns, testNetnsAvailable } from './support/netns.js';
import { mint, type TestTokenKeys, testTokenKeys } from './support/tokens.js';

const shared = await sharedEnvtest({ istio: false });
const netns = testNetnsAvailable();
if (shared && !netns) {
  if (process.env.CI)
    throw new Error('CI=true, but network namespaces cannot be made here (needs root and ip)');
  console.warn('skipping the two-tenant test: it needs root and `ip netns` for its test hosts');
}
const A = 'tenant-a';
const B = 'tenant-b';
const API = 'switchyard.dev/v1alpha1';
const COMMIT = 'abcdef1234567890abcdef1234567890abcdef12';
type Status = {
  status?: {
    phase?: string;
    conditions?: { type: string; status: string; reason: string; message: string }[];
  };
};

describe.skipIf(!shared || !netns)('two tenants on one controller and one gateway', () => {
  const env = shared as Envtest;
  let kube: Kube;
  let hosts: TestNetns;
  let gateway: RunningGateway;
  const pods: Record<string, NetnsUpstream> = {};

  const policy = (namespace: string, name: string, spec: Record<string, unknown>, manager: string) =>
    kube.apply(
      {
        apiVersion: API,
        kind: 'TrafficPolicy',
        metadata: { name, namespace },
        spec: { port: 80, stable: 'v1', ...spec },
      } as KubernetesObject,
      manager,
      true,
    );
  const aPolicy = (weight: number) =>
    policy(
      A,
      'shop',
      {
        service: 'shop',
        hosts: ['shop.a.test'],
        canary: { version: 'v2', weight },
        previews: { repository: 'acme/shop', image: 'ghcr.io/acme/shop:{sha7}', requireToken: true },
      },
      'tenant-a',
    );
  const endpoints = (namespace: string, service: string, pod: NetnsUpstream) =>
    kube.apply(
      {
        apiVersion: 'discovery.k8s.io/v1',
        kind: 'EndpointSlice',
        metadata: { name: `${service}-x`, namespace, labels: { 'kubernetes.io/service-name': service } },
        addressType: 'IPv4',
        ports: [{ name: 'http', port: pod.port, protocol: 'TCP' }],
        endpoints: [{ addresses: [pod.address], conditions: { ready: true } }],
      } as KubernetesObject,
      'endpointslice-controller',
      true,
    );
  const get = <T = KubernetesObject & Status>(
    apiVersion: string,
    kind: string,
    namespace: string,
    name: string,
  ) => kube.get<KubernetesObject & T>({ apiVersion, kind, namespace, name });
  const condition = async (namespace: string, name: string, type: string) =>
    (await get<Status>(API, 'TrafficPolicy', namespace, name))?.status?.conditions?.find(
      (c) => c.type === type,
    );
  const reconcileAll = async () => {
    for (const [ns, name] of [
      [A, 'shop'],
      [B, 'grab'],
      [B, 'slow'],
    ] as const)
      await reconcileTrafficPolicy(kube, ns, name, { mode: 'gateway' });
  };
  const to = async (headers: Record<string, string> = {}) =>
    header(await send(gateway.trafficUrl, { host: 'shop.a.test', headers }), 'x-switchyard-upstream');
  /** A's objects, by resourceVersion. */
  const versionsOfA = async () => {
    const out: Record<string, string | undefined> = {};
    for (const [apiVersion, kind, name] of [
      ['v1', 'Service', 'shop'],
      ['apps/v1', 'Deployment', 'shop-v1'],
      [API, 'TrafficPolicy', 'shop'],
      [API, 'Preview', 'shop-pr-1-abcdef1'],
      ['v1', 'Service', 'shop--v1'],
      ['v1', 'Service', 'shop--v2'],
      ['v1', 'Service', 'shop-pr-1-abcdef1'],
      ['apps/v1', 'Deployment', 'shop-pr-1-abcdef1'],
    ] as const)
      out[`${kind}/${name}`] = (await get(apiVersion, kind, A, name))?.metadata?.resourceVersion;
    return out;
  };

  let keys: TestTokenKeys;
  beforeAll(async () => {
    keys = await testTokenKeys();
    kube = adminKube(env);
    await applyRbac(kube);
    hosts = await createTestNetns();
    for (const v of ['v1', 'v2', 'pr-1', 'grab']) pods[v] = await hosts.startUpstream(v);
    for (const ns of [A, B]) await createNamespace(kube, ns);
    // Tenant A: a service, its policy and a Ready preview, routed by the gateway.
    await stableWorkload(kube, A, 'shop');
    await aPolicy(0);
    await kube.apply(
      {
        apiVersion: API,
        kind: 'Preview',
        metadata: { name: 'shop-pr-1-abcdef1', namespace: A },
        spec: { policy: 'shop', repository: 'acme/shop', pullRequest: 1, commit: COMMIT },
      } as KubernetesObject,
      'pr-bot',
      true,
    );
    await reconcilePreview(kube, A, 'shop-pr-1-abcdef1');
    await markAvailable(env, A, 'shop-pr-1-abcdef1');
    await reconcilePreview(kube, A, 'shop-pr-1-abcdef1');
    await reconcileTrafficPolicy(kube, A, 'shop', { mode: 'gateway' });
    await endpoints(A, 'shop--v1', pods.v1 as NetnsUpstream);
    await endpoints(A, 'shop--v2', pods.v2 as NetnsUpstream);
    await endpoints(A, 'shop-pr-1-abcdef1', pods['pr-1'] as NetnsUpstream);
    gateway = await runGateway({
      config: [],
      kube: { kubeconfig: kubeConfigFrom(env.kubeconfigFor(GATEWAY_USER)), namespaces: [A, B] },
      port: 0,
      adminPort: 0,
      host: '127.0.0.1',
      tokenJwks: keys.jwks,
      logger: createLogger({ level: process.env.SWITCHYARD_TEST_LOG ?? 'silent' }),
    });
  });
  afterAll(async () => {
    await gateway?.close();
    await Promise.all(Object.values(pods).map((p) => p.close()));
    await hosts?.close();
  });

  it("B's attempts are refused with reasons, and A's objects and traffic are untouched", async () => {
    const tokenFor = (audience: string) => mint({ value: 'pr-1', audience, key: keys.current });
    expect(await to()).toBe('shop/v1');
    expect(await to({ 'x-switchyard-token': await tokenFor(`${A}/shop`) })).toBe('shop/pr-1-abcdef1');
    const before = await versionsOfA();

    // B: a Preview named like A's Service (B may create Previews in A's namespace, as a PR bot can).
    await kube.apply(
      {
        apiVersion: API,
        kind: 'Preview',
        metadata: { name: 'shop', namespace: A },
        spec: { policy: 'shop', repository: 'acme/shop', pullRequest: 2, commit: 'fedcba9876' },
      } as KubernetesObject,
      'tenant-b',
      true,
    );
    // B: a policy claiming A's host (newer, so A keeps it), and one with an absurd timeout.
    await stableWorkload(kube, B, 'grab');
    await policy(
      B,
      'grab',
      { service: 'grab', hosts: ['shop.a.test'], previews: { repository: 'b/grab', requireToken: true } },
      'tenant-b',
    );
    await policy(B, 'slow', { service: 'grab', hosts: ['slow.b.test'], timeout: '600h' }, 'tenant-b');
    await reconcilePreview(kube, A, 'shop');
    await reconcileAll();
    await endpoints(B, 'grab--v1', pods.grab as NetnsUpstream);

    // B's objects say what was refused.
    const bPreview = await get<Status>(API, 'Preview', A, 'shop');
    expect(bPreview?.status?.phase).toBe('Failed');
    expect(bPreview?.status?.conditions?.[0]).toMatchObject({ reason: 'NameTaken' });
    expect(await condition(B, 'grab', 'Conflict')).toMatchObject({ status: 'True', reason: 'Conflict' });
    expect((await condition(B, 'grab', 'Conflict'))?.message).toMatch(
      /which TrafficPolicy tenant-a\/shop already serves/,
    );
    expect(await condition(B, 'slow', 'Invalid')).toMatchObject({ status: 'True', reason: 'InvalidSpec' });
    expect((await condition(B, 'slow', 'Invalid'))?.message).toMatch(/spec\.timeout: expected at most 1h/);
    expect(await get('v1', 'Service', B, 'grab--v1')).toBeUndefined(); // the loser wrote nothing

    // A's traffic: still A's; B's token opens nothing of A's.
    // The gateway has seen B's objects and left both of B's policies out (the log names them).
    const leftOut = async () =>
      Number(
        /switchyard_gateway_resources_left_out (\d+)/.exec(
          (await send(gateway.adminUrl, { path: '/metrics' })).body,
        )?.[1],
      );
    for (let i = 0; (await leftOut()) < 2; i++) {
      if (i > 200) throw new Error("the gateway never saw B's policies");
      await new Promise((r) => setTimeout(r, 25));
    }
    for (let i = 0; i < 5; i++) expect(await to()).toBe('shop/v1');
    expect(await to({ 'x-switchyard-token': await tokenFor(`${B}/grab`) })).toBe('shop/v1');
    expect(await to({ 'x-switchyard-token': await tokenFor(`${A}/shop`) })).toBe('shop/pr-1-abcdef1');
    expect(await versionsOfA()).toEqual(before);

    // A gateway that starts while B's objects are there serves A all the same.
    const fresh = await runGateway({
      config: [],
      kube: { kubeconfig: kubeConfigFrom(env.kubeconfigFor(GATEWAY_USER)), namespaces: [A, B] },
      port: 0,
      adminPort: 0,
      host: '127.0.0.1',
      logger: createLogger({ level: 'silent' }),
    });
    try {
      expect(header(await send(fresh.trafficUrl, { host: 'shop.a.test' }), 'x-switchyard-upstream')).toBe(
        'shop/v1',
      );
    } finally {
      await fresh.close();
    }

    // A still changes its own traffic: the gateway follows, B's objects in the cluster or not.
    await aPolicy(100);
    await reconcileTrafficPolicy(kube, A, 'shop', { mode: 'gateway' });
    const start = Date.now();
    while ((await to()) !== 'shop/v2') {
      if (Date.now() - start > 5000) throw new Error("the gateway did not follow A's change");
      await new Promise((r) => setTimeout(r, 25));
    }
  });
});
