/**
 * Gateway mode end to end on a real API server: the controller's reconciler (gateway mode) writes
 * one Service per version; `switchyard gateway --kube` (as its own ServiceAccount)
 * follows the policies, those Services and their EndpointSlices, and routes live HTTP traffic to
 * the ready endpoints, picking up a TrafficPolicy change within one second. No endpoint controller
 * runs here: the test writes the EndpointSlices, as kube-controller-manager would.
 */

import { join } from 'node:path';
import type { KubernetesObject } from '@kubernetes/client-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { reconcileTrafficPolicy } from '../controllers/traffic-policy.js';
import { createLogger } from '../core/common/logger.js';
import { type RunningGateway, runGateway } from '../gateway/start.js';
import { type Kube, kubeConfigFrom } from '../kube/client.js';
import { canaryRunByHand } from './support/canary-run.js';
import { cli, tempFiles } from './support/cli.js';
import {
  adminKube,
  applyRbac,
  createNamespace,
  GATEWAY_USER,
  stableWorkload,
  writeEndpoints,
} from './support/cluster.js';
import { type Envtest, sharedEnvtest } from './support/envtest.js';
import { header, send } from './support/http.js';
import { createTestNetns, type NetnsUpstream, type TestNetns, testNetnsAvailable } from './support/netns.js';

const shared = await sharedEnvtest({ istio: false });
/**
 * EndpointSlices may not hold loopback addresses: the test's upstreams run in a network namespace
 * this test makes (test/support/netns.ts), each on an address of its own, as pods would be.
 */
const netns = testNetnsAvailable();
if (shared && !netns) {
  if (process.env.CI)
    throw new Error('CI=true, but network namespaces cannot be made here (needs root and ip)');
  console.warn('skipping gateway --kube traffic tests: they need root and `ip netns` for their test hosts');
}
const ns = 'gateway-mode';
const API = 'switchyard.dev/v1alpha1';
type Svc = KubernetesObject & { spec: { selector: Record<string, string>; ports: { port: number }[] } };

describe.skipIf(!shared || !netns)('gateway mode: per-version Services and gateway --kube', () => {
  const env = shared as Envtest;
  let admin: Kube;
  let kube: Kube;
  let gateway: RunningGateway;
  let hosts: TestNetns;
  const upstreams: Record<string, NetnsUpstream> = {};

  const applyPolicy = (weight: number) =>
    admin.apply(
      {
        apiVersion: API,
        kind: 'TrafficPolicy',
        metadata: { name: 'shop', namespace: ns },
        spec: {
          service: 'shop',
          port: 80,
          hosts: ['shop.test'],
          stable: 'v1',
          canary: { version: 'v2', weight },
          intercepts: [{ name: 'alice', match: { header: 'x-user', exact: 'alice' }, to: { version: 'v3' } }],
        },
      } as KubernetesObject,
      'release-engineer',
      true,
    );
  /** What the endpoint controller would write for `service`: the given upstreams, ready or not. */
  const endpoints = (service: string, backends: NetnsUpstream[], ready = true) =>
    writeEndpoints(admin, ns, service, backends, ready);
  const upstreamOf = async (headers: Record<string, string> = {}) =>
    header(await send(gateway.trafficUrl, { host: 'shop.test', headers }), 'x-switchyard-upstream');
  /** Which test host answered (the version's pod), by the name it answers with. */
  const answeredBy = async (headers: Record<string, string> = {}) =>
    (await send(gateway.trafficUrl, { host: 'shop.test', headers })).body;

  beforeAll(async () => {
    admin = adminKube(env);
    // Reconcilers called directly read live, not through the controller's caches, so they run with
    // an admin client; the controller's own permissions are exercised where it runs whole
    // (controller-loop, controller-resilience and rbac tests).
    await applyRbac(admin);
    kube = admin;
    await createNamespace(admin, ns);
    await stableWorkload(admin, ns, 'shop');
    hosts = await createTestNetns();
    for (const v of ['v1', 'v1b', 'v2', 'v3']) upstreams[v] = await hosts.startUpstream(`shop/${v}`);
  });
  afterAll(async () => {
    await gateway?.close();
    await Promise.all(Object.values(upstreams).map((u) => u.close()));
    await hosts?.close();
  });

  it('the controller writes one Service per version, selecting that version of the stable pods', async () => {
    await applyPolicy(0);
    const result = await reconcileTrafficPolicy(kube, ns, 'shop', { mode: 'gateway' });
    expect(result?.writes).toEqual([
      `apply Service ${ns}/shop--v1`,
      `apply Service ${ns}/shop--v2`,
      `apply Service ${ns}/shop--v3`,
    ]);
    const v2 = await admin.get<Svc>({ apiVersion: 'v1', kind: 'Service', namespace: ns, name: 'shop--v2' });
    expect(v2?.spec.selector).toEqual({ app: 'shop', version: 'v2' });
    expect(v2?.spec.ports.map((p) => p.port)).toEqual([80]);
    expect(v2?.metadata?.ownerReferences?.[0]).toMatchObject({ kind: 'TrafficPolicy', name: 'shop' });
    // No Istio object in gateway mode.
    expect(result?.conditions.find((c) => c.type === 'Ready')).toMatchObject({ status: 'True' });
  });

  it('gateway --kube routes live traffic by them, round-robin over ready endpoints', async () => {
    const { v1, v1b, v2, v3 } = upstreams as Record<string, NetnsUpstream>;
    // Two pods of v1 (same address, distinct ports: one slice each port is not how Kubernetes
    // does it, so two slices of the same Service).
    await endpoints('shop--v1', [v1 as NetnsUpstream]);
    await admin.apply(
      {
        apiVersion: 'discovery.k8s.io/v1',
        kind: 'EndpointSlice',
        metadata: {
          name: 'shop--v1-fghij',
          namespace: ns,
          labels: { 'kubernetes.io/service-name': 'shop--v1' },
        },
        addressType: 'IPv4',
        ports: [{ name: 'http', port: (v1b as NetnsUpstream).port, protocol: 'TCP' }],
        endpoints: [{ addresses: [(v1b as NetnsUpstream).address], conditions: { ready: true } }],
      } as KubernetesObject,
      'endpointslice-controller',
      true,
    );
    await endpoints('shop--v2', [v2 as NetnsUpstream]);
    await endpoints('shop--v3', [v3 as NetnsUpstream]);
    gateway = await runGateway({
      config: [],
      kube: { kubeconfig: kubeConfigFrom(env.kubeconfigFor(GATEWAY_USER)), namespaces: [ns] },
      port: 0,
      adminPort: 0,
      host: '127.0.0.1',
      logger: createLogger({ level: process.env.SWITCHYARD_TEST_LOG ?? 'silent' }),
    });
    const pods: string[] = [];
    for (let i = 0; i < 10; i++) {
      const reply = await send(gateway.trafficUrl, { host: 'shop.test' });
      expect(header(reply, 'x-switchyard-upstream')).toBe('shop/v1');
      pods.push(reply.body);
    }
    expect(pods.filter((p) => p === 'shop/v1')).toHaveLength(5);
    expect(pods.filter((p) => p === 'shop/v1b')).toHaveLength(5);
    expect(await upstreamOf({ 'x-user': 'alice' })).toBe('shop/v3');
    expect(await answeredBy({ 'x-user': 'alice' })).toBe('shop/v3'); // v3's own test host answered
  });

  it('follows a TrafficPolicy change within one second', async () => {
    const start = Date.now();
    await applyPolicy(100);
    await reconcileTrafficPolicy(kube, ns, 'shop', { mode: 'gateway' }); // the controller's part
    let elapsed = 0;
    for (;;) {
      if ((await upstreamOf()) === 'shop/v2') {
        elapsed = Date.now() - start;
        break;
      }
      if (Date.now() - start > 5000) throw new Error('the gateway never routed to v2');
    }
    expect(elapsed).toBeLessThan(1000);
    console.info(`gateway --kube: policy change to first request routed by it: ${elapsed} ms`);
  });

  it('canary status shows the split the gateway serves, and agrees with the traffic', async () => {
    const kubeconfig = join(tempFiles({ kubeconfig: env.adminKubeconfig }), 'kubeconfig');
    const status = async () =>
      JSON.parse(
        (await cli('canary', 'status', 'shop', '-n', ns, '--kubeconfig', kubeconfig, '-o', 'json')).stdout,
      );
    // The gateway serves the spec as it is now (no push from the controller): 100 %, then 0 %.
    expect(await status()).toMatchObject({ backend: 'gateway', targetWeight: 100, observedWeight: 100 });
    expect(await upstreamOf()).toBe('shop/v2');
    await applyPolicy(0);
    expect(await status()).toMatchObject({ backend: 'gateway', targetWeight: 0, observedWeight: 0 });
    const start = Date.now();
    while ((await upstreamOf()) !== 'shop/v1' && Date.now() - start < 5000)
      await new Promise((r) => setTimeout(r, 20));
    expect(await upstreamOf()).toBe('shop/v1');
    const text = (await cli('canary', 'status', 'shop', '-n', ns, '--kubeconfig', kubeconfig)).stdout;
    expect(text).toMatch(/weight: +target 0%, in force 0%\nbackend: +gateway\n/);
    // A policy the gateway leaves out (its host is shop's, which is older) has no split in force.
    await admin.apply(
      {
        apiVersion: API,
        kind: 'TrafficPolicy',
        metadata: { name: 'shop-copy', namespace: ns },
        spec: {
          service: 'shop',
          port: 80,
          hosts: ['shop.test'],
          stable: 'v1',
          canary: { version: 'v3', weight: 50 },
        },
      } as KubernetesObject,
      'someone-else',
      true,
    );
    await reconcileTrafficPolicy(kube, ns, 'shop-copy', { mode: 'gateway' });
    const copy = JSON.parse(
      (await cli('canary', 'status', 'shop-copy', '-n', ns, '--kubeconfig', kubeconfig, '-o', 'json')).stdout,
    );
    expect(copy).toMatchObject({ backend: 'gateway', targetWeight: 50, observedWeight: null });
    expect(copy.note).toMatch(
      /^not served by the gateway: host shop.test overlaps shop.test, which TrafficPolicy gateway-mode\/shop already serves/,
    );
    expect(await upstreamOf()).toBe('shop/v1');
    await admin.delete({ apiVersion: API, kind: 'TrafficPolicy', namespace: ns, name: 'shop-copy' });
  });

  it('answers 503 with the reason when a version has no ready endpoint', async () => {
    await endpoints('shop--v3', [upstreams.v3 as NetnsUpstream], false);
    let reply = await send(gateway.trafficUrl, { host: 'shop.test', headers: { 'x-user': 'alice' } });
    for (let i = 0; i < 100 && reply.status !== 503; i++) {
      await new Promise((r) => setTimeout(r, 20));
      reply = await send(gateway.trafficUrl, { host: 'shop.test', headers: { 'x-user': 'alice' } });
    }
    expect(reply.status).toBe(503);
    expect(reply.body).toMatch(/upstream shop\/v3 has no ready endpoint/);
  });
});

describe.skipIf(!shared)("gateway mode: a progressive run and its version Service's endpoints", () => {
  it('gives the canary no share until its Service has a ready endpoint (gateway --kube would answer 503 for it)', async () => {
    const admin = adminKube(shared as Envtest);
    const runNs = 'gateway-mode-run';
    await applyRbac(admin);
    await createNamespace(admin, runNs);
    await stableWorkload(admin, runNs, 'shop');
    await admin.apply(
      {
        apiVersion: API,
        kind: 'TrafficPolicy',
        metadata: { name: 'shop', namespace: runNs },
        spec: {
          service: 'shop',
          port: 80,
          hosts: ['run.test'],
          stable: 'v1',
          canary: { version: 'v2', steps: [{ weight: 20, pause: '1h' }] },
        },
      } as KubernetesObject,
      'release-engineer',
      true,
    );
    const { run, status, told } = canaryRunByHand(admin, runNs, 'shop', 'gateway');

    // The policy's reconcile has not run yet: no shop--v2 Service, so the run waits and looks again.
    const waiting = await run();
    expect(waiting).toMatchObject({ weightChanged: false, requeueAfterMs: 500 });
    expect(await status()).toBeUndefined();

    await reconcileTrafficPolicy(admin, runNs, 'shop', { mode: 'gateway' }); // creates shop--v2
    // The Service alone is not enough: the gateway sends v2's share to its ready endpoints.
    await writeEndpoints(admin, runNs, 'shop--v2', [{ address: '10.0.0.2', port: 8080 }], false);
    expect(await run()).toMatchObject({ weightChanged: false, requeueAfterMs: 500 });
    expect(await status()).toBeUndefined();

    await writeEndpoints(admin, runNs, 'shop--v2', [{ address: '10.0.0.2', port: 8080 }]);
    const started = await run();
    expect(started.weightChanged).toBe(true);
    expect(await status()).toMatchObject({ weight: 20 });
    // Two looks while waiting, one Event saying why; then the run's own.
    expect(told).toEqual([
      `CanaryWaiting: v2 gets no traffic until Service ${runNs}/shop--v2 has a ready endpoint (are its pods ready?)`,
      expect.stringMatching(/^CanaryStarted: /),
    ]);
  });
});
