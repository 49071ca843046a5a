/**
 * Progressive delivery in mesh mode, end to end (issue 15, acceptance 4): the controller (as its
 * ServiceAccount, `--mode istio --mesh-metrics envoy`) moves a run's weights in the VirtualService
 * on a real API server, a real istiod pushes them to a real Envoy ingress gateway, and the run is
 * judged by that Envoy's own per-cluster statistics (each version is its own Envoy cluster),
 * scraped from its /stats/prometheus by a real Prometheus. A healthy canary walks its steps (the
 * VirtualService's weights seen step by step) and is promoted with no request failed, through the
 * removal of the old version's subset after its grace period too; one whose
 * test host answers 500 to a fifth of requests is rolled back, the status naming the metric,
 * its value and the threshold.
 */
import { join } from 'node:path';
import type { KubernetesObject } from '@kubernetes/client-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type RunningController, startController } from '../cli/start-controller.js';
import { prometheusReader } from '../controllers/canary-metrics.js';
import type { CanaryRun } from '../core/canary/progression.js';
import { createLogger } from '../core/common/logger.js';
import { type Kube, kubeConfigFrom } from '../kube/client.js';
import { cli, tempFiles } from './support/cli.js';
import { adminKube, applyRbac, CONTROLLER_USER, createNamespace } from './support/cluster.js';
import { type Envtest, startEnvtestWithCrds } from './support/envtest.js';
import { eventually } from './support/gateway.js';
import { send } from './support/http.js';
import { type SteadyLoad, steadyLoad } from './support/load.js';
import {
  type Envoy,
  type Istiod,
  ingressGateway,
  meshTestGate,
  serviceWithEndpoints,
  startEnvoy,
  startIstiod,
} from './support/mesh.js';
import { createTestNetns, type NetnsUpstream, type TestNetns } from './support/netns.js';
import { prometheusGate, startPrometheus, type TestPrometheus } from './support/prometheus.js';
import { unusedPort } from './support/upstreams.js';

const gate = meshTestGate();
const prometheus = gate ? prometheusGate() : false;
const ns = 'release';
const API = 'switchyard.dev/v1alpha1';
const INTERVAL_S = 2;

type Policy = KubernetesObject & {
  spec: { stable: string; canary?: object };
  status?: { canary?: CanaryRun };
};
type VirtualService = KubernetesObject & {
  spec: { http: { name: string; route: { destination: { subset: string }; weight?: number }[] }[] };
};

describe.skipIf(!gate || !prometheus)(
  'progressive canary, mesh mode, judged by Envoy’s own statistics',
  () => {
    const { envtest, assets } = gate as NonNullable<typeof gate>;
    let env: Envtest;
    let admin: Kube;
    let hosts: TestNetns;
    let istiod: Istiod;
    let ingress: Envoy;
    let prom: TestPrometheus;
    let controller: RunningController;
    let port: number;
    const upstreams: Record<string, NetnsUpstream> = {};
    let load: SteadyLoad;
    const apply = (o: object) => admin.apply(o as KubernetesObject, 'release-engineer', true);
    const through = () => send(`http://127.0.0.1:${port}`, { host: 'shop.test' });

    const applyPolicy = (stable: string, canaryVersion?: string) =>
      apply({
        apiVersion: API,
        kind: 'TrafficPolicy',
        metadata: { name: 'shop', namespace: ns },
        spec: {
          service: 'shop',
          port: 80,
          hosts: ['shop.test'],
          gateways: ['istio-system/ingress'],
          stable,
          ...(canaryVersion
            ? {
                canary: {
                  version: canaryVersion,
                  steps: [
                    { weight: 20, pause: `${2 * INTERVAL_S}s` },
                    { weight: 60, pause: `${2 * INTERVAL_S}s` },
                  ],
                  analysis: {
                    interval: `${INTERVAL_S}s`,
                    failureLimit: 2,
                    metrics: [
                      { name: 'request-success-rate', thresholdRange: { min: 95 } },
                      { name: 'request-duration', thresholdRange: { max: 500 } },
                    ],
                  },
                  autoPromote: true,
                },
              }
            : {}),
        },
      });
    const policy = () =>
      admin.get<Policy>({ apiVersion: API, kind: 'TrafficPolicy', namespace: ns, name: 'shop' });
    /** The subsets of the policy's DestinationRule, as the API server holds them. */
    const subsets = async () =>
      (
        await admin.get<KubernetesObject & { spec: { subsets: { name: string }[] } }>({
          apiVersion: 'networking.istio.io/v1',
          kind: 'DestinationRule',
          namespace: ns,
          name: 'shop',
        })
      )?.spec.subsets.map((s) => s.name);
    /** The canary's weight in the VirtualService's split route, as the API server holds it. */
    const splitWeights = async () => {
      const vs = await admin.get<VirtualService>({
        apiVersion: 'networking.istio.io/v1',
        kind: 'VirtualService',
        namespace: ns,
        name: 'shop',
      });
      const split = vs?.spec.http.find((r) => r.name === 'split');
      return Object.fromEntries((split?.route ?? []).map((d) => [d.destination.subset, d.weight ?? 100]));
    };
    /** Follows the VirtualService while `until` is pending: each distinct split, in order. */
    async function followSplit(version: string, until: Promise<unknown>): Promise<number[]> {
      const seen: number[] = [];
      let done = false;
      until.finally(() => {
        done = true;
      });
      while (!done) {
        const w = (await splitWeights())[version] ?? 0;
        if (seen.at(-1) !== w) seen.push(w);
        await new Promise((r) => setTimeout(r, 100));
      }
      return seen;
    }

    beforeAll(async () => {
      env = await startEnvtestWithCrds(envtest);
      admin = adminKube(env);
      for (const n of ['istio-system', ns]) await createNamespace(admin, n);
      await applyRbac(admin);
      hosts = await createTestNetns();
      upstreams.v1 = await hosts.startUpstream('shop/v1');
      upstreams.v2 = await hosts.startUpstream('shop/v2');
      // v3 fails every fifth request.
      upstreams.v3 = await hosts.startUpstream('shop/v3', undefined, {
        script: 'netns-upstream.mjs',
        args: ['5'],
      });
      await serviceWithEndpoints(
        apply,
        { namespace: ns, name: 'shop', port: 80, selector: { app: 'shop' } },
        ['v1', 'v2', 'v3'].map((v) => ({
          labels: { app: 'shop', version: v },
          host: upstreams[v] as NetnsUpstream,
        })),
      );
      port = await unusedPort();
      await ingressGateway(apply, 'ingress', port, ['*/shop.test']);
      istiod = await startIstiod(assets, env.adminKubeconfig);
      ingress = await startEnvoy(assets, istiod, {
        role: 'router',
        name: 'ingress',
        namespace: 'istio-system',
        labels: { istio: 'ingressgateway' },
      });
      prom = await startPrometheus({
        scrapeIntervalMs: 500,
        targets: [{ job: 'ingress', address: new URL(ingress.adminUrl).host, path: '/stats/prometheus' }],
      });
      await prom.targetsUp();
      const logger = createLogger({ level: process.env.SWITCHYARD_TEST_LOG ?? 'silent' });
      controller = await startController({
        kubeconfig: kubeConfigFrom(env.kubeconfigFor(CONTROLLER_USER)),
        logger,
        mode: 'istio',
        meshMetrics: 'envoy',
        namespaces: [ns],
        port: 0,
        host: '127.0.0.1',
        metrics: prometheusReader(prom.url),
      });
      await applyPolicy('v1');
      await eventually(async () => (await through().catch(() => undefined))?.body === 'shop/v1', 30_000);
      load = steadyLoad(through);
    }, 120_000);

    afterAll(async () => {
      await load?.stop();
      await controller?.stop();
      await prom?.stop();
      await ingress?.stop();
      await istiod?.stop();
      await Promise.all(Object.values(upstreams).map((u) => u.close()));
      await hosts?.close();
      await env?.stop();
    });

    it('a healthy canary: the VirtualService takes each step’s weight, Envoy’s statistics pass it, and it is promoted with no request failed', async () => {
      await applyPolicy('v1', 'v2');
      const started = Date.now();
      const promoted = eventually(async () => {
        const p = await policy();
        return p?.spec.stable === 'v2' && !p.spec.canary ? p : undefined;
      }, 60_000);
      const weights = await followSplit('v2', promoted);
      const done = await promoted;
      // Step by step on the API server: 20 %, 60 %, then the canary is the stable version.
      expect(weights.filter((w) => w > 0 && w < 100)).toEqual([20, 60]);
      // The promotion is in the spec first; the routes follow it.
      await eventually(async () => JSON.stringify(await splitWeights()) === '{"v2":100}', 20_000);
      // v1's subset outlives the last route to it by the grace period, then goes; the load goes on
      // through its removal (a second for istiod's push), which fails no request either.
      await eventually(async () => JSON.stringify(await subsets()) === '["v2"]', 30_000);
      await new Promise((r) => setTimeout(r, 1000));
      const run = done.status?.canary as CanaryRun;
      expect(run).toMatchObject({ version: 'v2', phase: 'Succeeded', weightsUsed: [20, 60] });
      // Judged by the numbers Envoy counted for the v2 cluster.
      const [success, duration] = run.lastAnalysis?.metrics ?? [];
      expect(success).toMatchObject({ name: 'request-success-rate', verdict: 'pass', value: 100 });
      expect(duration).toMatchObject({ name: 'request-duration', verdict: 'pass' });
      expect(duration?.value).toBeGreaterThan(0);
      const during = load.since(started);
      expect(during.length).toBeGreaterThan(100);
      expect(during.filter((a) => a.status !== 200)).toEqual([]);
      expect(during.some((a) => a.upstream === 'shop/v2')).toBe(true);
      await eventually(async () => (await through()).body === 'shop/v2', 20_000);
    }, 90_000);

    it('a canary failing a fifth of its requests is rolled back by Envoy’s statistics, naming metric, value and threshold', async () => {
      await applyPolicy('v2', 'v3');
      const rolledBack = eventually(async () => {
        const p = await policy();
        return p?.status?.canary?.version === 'v3' && p.status.canary.phase === 'RolledBack' ? p : undefined;
      }, 60_000);
      const weights = await followSplit('v3', rolledBack);
      const run = (await rolledBack).status?.canary as CanaryRun;
      // The canary had its first step's weight; the status is written first, then the routes.
      expect(weights).toContain(20);
      await eventually(async () => ((await splitWeights()).v3 ?? 0) === 0, 20_000);
      expect(run.failures).toBe(2);
      expect(run.message).toMatch(
        /^rolled back at step [12] of 2 \((20|60)%\): request-success-rate \d+(\.\d+)? \(threshold >= 95\); 2 failed analyses reached the limit of 2$/,
      );
      const success = run.lastAnalysis?.metrics.find((m) => m.name === 'request-success-rate');
      expect(success?.verdict).toBe('fail');
      // One in five fails: about 80 %.
      expect(success?.value).toBeGreaterThan(60);
      expect(success?.value).toBeLessThan(90);
      expect(await splitWeights()).toMatchObject({ v2: 100 });
      await eventually(() => load.lastFrom('shop/v2'), 20_000);
      // The release engineer's view: the run and its last analysis as a table.
      const kubeconfig = join(tempFiles({ kubeconfig: env.adminKubeconfig }), 'kubeconfig');
      const shown = (await cli('canary', 'status', 'shop', '-n', ns, '--kubeconfig', kubeconfig)).stdout;
      expect(shown).toMatch(/run:\s+RolledBack, step [12] of 2 at 0%, 2 failed analyses: rolled back/);
      expect(shown).toMatch(
        /analysis: {2}\S+, not passed\n {11}METRIC {16}VALUE +THRESHOLD +VERDICT\n {11}request-success-rate {2}[\d.]+ +>= 95 +fail\n {11}request-duration +\S+ +<= 500 +(pass|no-data)\n/,
      );
      expect(await ingress.rejected()).toBe(0);
    }, 90_000);
  },
);
