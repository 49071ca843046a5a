/**
 * The controller in Gateway API mode against a real API server with the Gateway API v1.6.3 CRDs
 * (experimental channel): a policy becomes an HTTPRoute and per-version Services; a preview
 * appears in the route and on its own preview URL route, and goes; a foreign HTTPRoute on the same
 * Gateway for the same host is a Conflict until it goes; what the implementation writes into the
 * route's status.parents (a refusal) reaches the TrafficPolicy's conditions; a progressive canary
 * run writes its weights into the route step by step and is promoted; rate limits become Envoy
 * Gateway's BackendTrafficPolicy, whose refusal reaches the policy too; a canary that Istio's
 * standard metrics (of its own Service `web--v3`, scraped by a real Prometheus) show failing is
 * rolled back.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { KubernetesObject } from '@kubernetes/client-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type RunningController, startController } from '../cli/start-controller.js';
import { prometheusReader } from '../controllers/canary-metrics.js';
import { createLogger } from '../core/common/logger.js';
import { GATEWAY_API_V1 } from '../core/gateway-api/http-route.js';
import { ENVOY_GATEWAY_V1ALPHA1 } from '../core/gateway-api/rate-limits.js';
import { type Kube, kubeConfigFrom } from '../kube/client.js';
import {
  adminKube,
  createNamespace,
  markAvailable,
  stableWorkload,
  writeEndpoints,
} from './support/cluster.js';
import { ENVOY_GATEWAY_SKIP_REASON, envoyGatewayAssets, envoyGatewayCrds } from './support/envoy-gateway.js';
import { type Envtest, installCrds, sharedEnvtest } from './support/envtest.js';
import { eventually } from './support/gateway.js';
import { gatewayApiCrdFolder } from './support/gateway-api-crds.js';
import { prometheusGate, startPrometheus, type TestPrometheus } from './support/prometheus.js';

const shared = await sharedEnvtest({ istio: false });
/** Envoy Gateway's CRDs, installed here: rate limits become its BackendTrafficPolicy. */
const egAssets = shared ? envoyGatewayAssets() : undefined;
if (shared && !egAssets && process.env.CI) throw new Error(`CI=true, but ${ENVOY_GATEWAY_SKIP_REASON}`);
const prometheus = prometheusGate();
const API = 'switchyard.dev/v1alpha1';
const ns = 'gwapi-shop';

type Condition = { type: string; status: string; reason: string; message: string };
type Route = KubernetesObject & {
  spec: {
    parentRefs: Record<string, unknown>[];
    hostnames?: string[];
    rules: { name: string; backendRefs: { name: string; weight: number }[] }[];
  };
};

describe.skipIf(!shared || !gatewayApiCrdFolder() || !prometheus)(
  'the controller in gateway-api mode on a real API server',
  () => {
    let env: Envtest;
    let kube: Kube;
    let controller: RunningController;
    let exporter: Server;
    let prom: TestPrometheus;
    const get = <T extends KubernetesObject>(apiVersion: string, kind: string, name: string) =>
      kube.get<T>({ apiVersion, kind, namespace: ns, name });
    const route = (name = 'web') => get<Route>(GATEWAY_API_V1, 'HTTPRoute', name);
    const conditions = async () =>
      (await get<KubernetesObject & { status?: { conditions?: Condition[] } }>(API, 'TrafficPolicy', 'web'))
        ?.status?.conditions ?? [];
    const condition = async (type: string) => (await conditions()).find((c) => c.type === type);
    const policy = (spec: Record<string, unknown>) =>
      kube.apply(
        {
          apiVersion: API,
          kind: 'TrafficPolicy',
          metadata: { name: 'web', namespace: ns },
          spec: {
            service: 'web',
            port: 80,
            hosts: ['web.example.com'],
            gateways: ['infra/public'],
            stable: 'v1',
            previews: {
              repository: 'acme/web',
              image: 'ghcr.io/acme/web:{sha7}',
              domain: 'preview.example.com',
            },
            ...spec,
          },
        } as KubernetesObject,
        'author',
        true,
      );

    beforeAll(async () => {
      env = shared as Envtest;
      kube = adminKube(env);
      await createNamespace(kube, ns);
      await createNamespace(kube, 'infra');
      if (egAssets)
        await installCrds(env.adminKubeconfig, envoyGatewayCrds(egAssets, ['backendtrafficpolicies']));
      await stableWorkload(kube, ns, 'web');
      // Istio's standard metrics as the destination sidecars of the canary v3 report them, reached
      // through its own Service web--v3: half of its answers are 503.
      const started = Date.now();
      exporter = createServer((_req, res) => {
        const t = (Date.now() - started) / 1000;
        const labels = `reporter="destination",destination_workload_namespace="${ns}",destination_service_name="web--v3",destination_version="v3"`;
        res
          .writeHead(200, { 'content-type': 'text/plain; version=0.0.4' })
          .end(
            [
              '# TYPE istio_requests_total counter',
              `istio_requests_total{${labels},response_code="200"} ${50 * t}`,
              `istio_requests_total{${labels},response_code="503"} ${50 * t}`,
              '',
            ].join('\n'),
          );
      });
      await new Promise<void>((r) => exporter.listen(0, '127.0.0.1', r));
      prom = await startPrometheus({
        scrapeIntervalMs: 250,
        targets: [
          {
            job: 'istio',
            address: `127.0.0.1:${(exporter.address() as AddressInfo).port}`,
            path: '/metrics',
          },
        ],
      });
      await prom.targetsUp();
      controller = await startController({
        metrics: prometheusReader(prom.url),
        kubeconfig: kubeConfigFrom(env.adminKubeconfig),
        logger: createLogger({ level: process.env.SWITCHYARD_TEST_LOG ?? 'silent' }),
        mode: 'gateway-api',
        namespaces: [ns],
        port: 0,
        host: '127.0.0.1',
      });
    }, 60_000);
    afterAll(async () => {
      await controller?.stop();
      await prom?.stop();
      await new Promise((r) => exporter?.close(r));
    });

    it('a policy becomes an HTTPRoute on its Gateway for its hosts, and the per-version Services it sends to', async () => {
      await policy({
        canary: { version: 'v2', weight: 20 },
        intercepts: [{ name: 'alice', match: { header: 'x-user', exact: 'alice' }, to: { version: 'v3' } }],
      });
      const written = await eventually(async () => {
        const r = await route();
        return r?.spec.rules.some((x) => x.name === 'split') ? r : undefined;
      }, 10_000);
      expect(written.spec.parentRefs).toEqual([
        { group: 'gateway.networking.k8s.io', kind: 'Gateway', namespace: 'infra', name: 'public' },
      ]);
      expect(written.spec.hostnames).toEqual(['web.example.com']);
      expect(written.spec.rules.map((r) => r.name)).toEqual(['intercept-alice', 'split']);
      expect(written.spec.rules[1]?.backendRefs.map((b) => [b.name, b.weight])).toEqual([
        ['web--v1', 80],
        ['web--v2', 20],
      ]);
      for (const v of ['v1', 'v2', 'v3']) expect(await get('v1', 'Service', `web--${v}`)).toBeDefined();
      expect(written.metadata?.ownerReferences?.[0]?.name).toBe('web');
      await eventually(async () => (await condition('Ready'))?.status === 'True', 10_000);
      const status = (
        await get<KubernetesObject & { status?: { backend?: string } }>(API, 'TrafficPolicy', 'web')
      )?.status;
      expect(status?.backend).toBe('gateway-api');
    });

    it('a preview appears in the route and on its preview URL route once Ready, and goes with it', async () => {
      await kube.apply(
        {
          apiVersion: API,
          kind: 'Preview',
          metadata: { name: 'web-pr-7-0000007', namespace: ns },
          spec: { policy: 'web', repository: 'acme/web', pullRequest: 7, commit: '0000007' },
        } as KubernetesObject,
        'pr-bot',
        true,
      );
      await eventually(() => get('apps/v1', 'Deployment', 'web-pr-7-0000007'), 10_000);
      await markAvailable(env, ns, 'web-pr-7-0000007');
      const withPreview = await eventually(async () => {
        const r = await route();
        return r?.spec.rules.some((x) => x.name === 'preview-pr-7') ? r : undefined;
      }, 10_000);
      expect(withPreview.spec.rules.map((r) => r.name)).toEqual([
        'preview-pr-7-0000007',
        'preview-pr-7',
        'intercept-alice',
        'split',
      ]);
      const host = await eventually(() => route('web-preview-host-pr-7'), 10_000);
      expect(host.spec.hostnames).toEqual(['pr-7--web.preview.example.com']);
      expect(host.spec.rules[0]?.backendRefs.map((b) => b.name)).toEqual(['web-pr-7-0000007']);

      await kube.delete({ apiVersion: API, kind: 'Preview', namespace: ns, name: 'web-pr-7-0000007' });
      await eventually(async () => (await route('web-preview-host-pr-7')) === undefined, 15_000);
      await eventually(
        async () => !(await route())?.spec.rules.some((x) => x.name.startsWith('preview')),
        10_000,
      );
    });

    it('a foreign HTTPRoute on the same Gateway for the same host is a Conflict, named, until it goes', async () => {
      await kube.apply(
        {
          apiVersion: GATEWAY_API_V1,
          kind: 'HTTPRoute',
          metadata: { name: 'legacy', namespace: ns },
          spec: {
            parentRefs: [{ name: 'public', namespace: 'infra' }],
            hostnames: ['*.example.com'],
            rules: [{ backendRefs: [{ name: 'legacy', port: 80 }] }],
          },
        } as KubernetesObject,
        'another-team',
        true,
      );
      await policy({ canary: { version: 'v2', weight: 30 } }); // a change that would be written
      const conflict = await eventually(async () => {
        const c = await condition('Conflict');
        return c?.status === 'True' ? c : undefined;
      }, 10_000);
      expect(conflict.message).toContain(
        `HTTPRoute ${ns}/legacy (not managed by Switchyard) is attached to Gateway infra/public for web.example.com`,
      );
      // Nothing was written over it: the route keeps its last weights.
      expect((await route())?.spec.rules.at(-1)?.backendRefs.map((b) => b.weight)).toEqual([80, 20]);
      await kube.delete({
        apiVersion: GATEWAY_API_V1,
        kind: 'HTTPRoute',
        namespace: ns,
        name: 'legacy',
      });
      await eventually(async () => (await condition('Conflict'))?.status === 'False', 10_000);
      await eventually(
        async () =>
          (await route())?.spec.rules
            .at(-1)
            ?.backendRefs.map((b) => b.weight)
            .join() === '70,30',
        10_000,
      );
    });

    it('a route the Gateway refuses: its reason reaches the TrafficPolicy, and it is Ready again when accepted', async () => {
      const parentRef = {
        group: 'gateway.networking.k8s.io',
        kind: 'Gateway',
        namespace: 'infra',
        name: 'public',
      };
      // As an implementation writes it: onto the route as it is now.
      const setStatus = async (accepted: Condition) => {
        const live = (await route()) as Route;
        return kube
          .replaceStatus('gateway.networking.k8s.io', 'v1', 'httproutes', {
            ...live,
            status: {
              parents: [
                {
                  parentRef,
                  controllerName: 'example.com/gateway-controller',
                  conditions: [
                    { ...accepted, lastTransitionTime: new Date().toISOString(), observedGeneration: 1 },
                  ],
                },
              ],
            },
          } as KubernetesObject)
          .catch((e) => {
            throw new Error(`status refused: ${(e as { body?: string }).body ?? e}`);
          });
      };
      await setStatus({
        type: 'Accepted',
        status: 'False',
        reason: 'NotAllowedByListeners',
        message: 'no listener allows routes from namespace gwapi-shop',
      });
      const ready = await eventually(async () => {
        const c = await condition('Ready');
        return c?.reason === 'RouteNotAccepted' ? c : undefined;
      }, 10_000);
      expect(ready.status).toBe('False');
      expect(ready.message).toContain(
        'HTTPRoute gwapi-shop/web: Gateway infra/public says Accepted=False (NotAllowedByListeners: no listener allows routes from namespace gwapi-shop)',
      );
      await setStatus({ type: 'Accepted', status: 'True', reason: 'Accepted', message: 'ok' });
      await eventually(async () => (await condition('Ready'))?.status === 'True', 10_000);
    });

    it.skipIf(!egAssets)(
      'rate limits become a BackendTrafficPolicy; what Envoy Gateway says of it reaches the policy; it goes with the limits',
      async () => {
        const limited = {
          rateLimits: [{ name: 'per-key', key: { header: 'x-api-key' }, limit: 10, window: '1m' }],
        };
        await policy(limited);
        type Btp = KubernetesObject & { spec: { targetRefs: { kind: string; name: string }[] } };
        const btp = await eventually(
          () => get<Btp>(ENVOY_GATEWAY_V1ALPHA1, 'BackendTrafficPolicy', 'web-ratelimit'),
          10_000,
        );
        expect(btp.spec.targetRefs).toEqual([
          { group: 'gateway.networking.k8s.io', kind: 'HTTPRoute', name: 'web' },
        ]);
        // As Envoy Gateway writes it: the policy conflicts with another on the same route.
        await kube.replaceStatus('gateway.envoyproxy.io', 'v1alpha1', 'backendtrafficpolicies', {
          ...btp,
          status: {
            ancestors: [
              {
                ancestorRef: {
                  group: 'gateway.networking.k8s.io',
                  kind: 'Gateway',
                  namespace: 'infra',
                  name: 'public',
                },
                controllerName: 'gateway.envoyproxy.io/gatewayclass-controller',
                conditions: [
                  {
                    type: 'Accepted',
                    status: 'False',
                    reason: 'Conflicted',
                    message: 'another policy already targets HTTPRoute gwapi-shop/web',
                    lastTransitionTime: new Date().toISOString(),
                    observedGeneration: 1,
                  },
                ],
              },
            ],
          },
        } as KubernetesObject);
        // Its status is read at each reconcile (the kind is not watched: a cluster may not serve it).
        await policy({ ...limited, timeout: '9s' });
        const ready = await eventually(async () => {
          const c = await condition('Ready');
          return c?.reason === 'RouteNotAccepted' ? c : undefined;
        }, 10_000);
        expect(ready.message).toContain(
          'BackendTrafficPolicy gwapi-shop/web-ratelimit: Gateway infra/public says Accepted=False (Conflicted: another policy already targets HTTPRoute gwapi-shop/web)',
        );
        await policy({});
        await eventually(
          async () =>
            (await get(ENVOY_GATEWAY_V1ALPHA1, 'BackendTrafficPolicy', 'web-ratelimit')) === undefined,
          10_000,
        );
        await eventually(async () => (await condition('Ready'))?.status === 'True', 10_000);
      },
    );

    it('a progressive canary run writes each step’s weight into the route and is promoted', async () => {
      await writeEndpoints(kube, ns, 'web--v2', [{ address: '10.0.0.2', port: 8080 }]);
      await policy({ canary: { version: 'v2', steps: [{ weight: 40, pause: '1s' }], autoPromote: true } });
      const weights: string[] = [];
      await eventually(async () => {
        const split = (await route())?.spec.rules.find((r) => r.name === 'split');
        const w = split?.backendRefs.map((b) => `${b.name}=${b.weight}`).join(',') ?? '';
        if (weights.at(-1) !== w) weights.push(w);
        const promoted =
          (await get<KubernetesObject & { spec: { stable: string } }>(API, 'TrafficPolicy', 'web'))?.spec
            .stable === 'v2';
        return promoted && w === 'web--v2=100' ? true : undefined;
      }, 20_000);
      expect(weights).toContain('web--v1=60,web--v2=40');
    });

    it('a canary failing by Istio’s metrics of its own Service is rolled back, and the route goes back to stable', async () => {
      await writeEndpoints(kube, ns, 'web--v3', [{ address: '10.0.0.3', port: 8080 }]);
      await policy({
        stable: 'v2',
        canary: {
          version: 'v3',
          steps: [{ weight: 30, pause: '10s' }],
          analysis: {
            interval: '1s',
            failureLimit: 1,
            metrics: [{ name: 'request-success-rate', thresholdRange: { min: 95 } }],
          },
        },
      });
      const run = await eventually(async () => {
        const p = await get<KubernetesObject & { status?: { canary?: { phase: string; message: string } } }>(
          API,
          'TrafficPolicy',
          'web',
        );
        return p?.status?.canary?.phase === 'RolledBack' ? p.status.canary : undefined;
      }, 20_000);
      expect(run.message).toMatch(/request-success-rate 50 \(threshold >= 95\)/);
      await eventually(
        async () =>
          (await route())?.spec.rules
            .find((r) => r.name === 'split')
            ?.backendRefs.map((b) => `${b.name}=${b.weight}`)
            .join() === 'web--v2=100,web--v3=0',
        10_000,
      );
    });
  },
);
