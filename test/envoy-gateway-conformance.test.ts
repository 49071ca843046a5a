/**
 * The conformance table through real Envoy configured by Envoy Gateway from the same Gateway API
 * routes istiod reads in mesh-gateway-api.test.ts: the examples rendered by the Gateway API
 * renderer go to an API server with the Gateway API and Envoy Gateway CRDs; Envoy Gateway (v1.9.1,
 * Kubernetes provider, our Envoy 1.40 as a host process) programs one Envoy for the Gateways
 * `istio-system/public` and `istio-system/previews`. Envoy Gateway is not a mesh: the rows of the
 * external hosts and preview URLs are sent through it (the in-mesh rows need a GAMMA
 * implementation: istiod carries them). Every one must reach the test host the table names, the
 * routes must be Accepted, and Envoy must refuse no update (NACK).
 */
import type { KubernetesObject } from '@kubernetes/client-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadAndCompile } from '../cli/input.js';
import { GATEWAY_API_V1 } from '../core/gateway-api/http-route.js';
import { renderGatewayApi } from '../core/gateway-api/render.js';
import type { Kube } from '../kube/client.js';
import { EXAMPLES } from './support/cli.js';
import { adminKube, createNamespace } from './support/cluster.js';
import { CONFORMANCE_TABLE, type ConformanceRow } from './support/conformance-table.js';
import {
  checkRowThroughEnvoy,
  EXAMPLES_NAMESPACE,
  examplesBackends,
  routesNotAccepted,
} from './support/conformance-through-envoy.js';
import {
  ENVOY_GATEWAY_SKIP_REASON,
  type EnvoyGateway,
  envoyGatewayAssets,
  envoyGatewayCrds,
  envoyGatewayGateways,
  startEnvoyGateway,
} from './support/envoy-gateway.js';
import { type Envtest, installCrds, startEnvtestWithCrds } from './support/envtest.js';
import { gatewayApiCrdFolder } from './support/gateway-api-crds.js';
import { untilRouted } from './support/http.js';
import { meshTestGate } from './support/mesh.js';
import { createTestNetns, type NetnsUpstream, type TestNetns } from './support/netns.js';

const gate = meshTestGate();
const assets = gate && gatewayApiCrdFolder() ? envoyGatewayAssets() : undefined;
if (gate && !assets && process.env.CI) throw new Error(`CI=true, but ${ENVOY_GATEWAY_SKIP_REASON}`);
const ns = EXAMPLES_NAMESPACE;

/** The rows Envoy Gateway carries: every host outside the mesh. */
const ROWS = CONFORMANCE_TABLE.filter((row) => !row.host.endsWith('.svc.cluster.local'));

describe.skipIf(!assets)('conformance through Envoy Gateway from Gateway API routes', () => {
  const { envtest } = gate as NonNullable<typeof gate>;
  let env: Envtest;
  let admin: Kube;
  let eg: EnvoyGateway;
  let hosts: TestNetns;
  const ports = { public: 0, previews: 0 };
  const upstreams: NetnsUpstream[] = [];
  let routes: KubernetesObject[];
  const apply = (o: object) => admin.apply(o as KubernetesObject, 'eg-test', true);
  const portFor = (row: ConformanceRow) => (row.host.includes('.preview.') ? ports.previews : ports.public);

  beforeAll(async () => {
    env = await startEnvtestWithCrds(envtest);
    await installCrds(env.adminKubeconfig, envoyGatewayCrds(assets as string));
    admin = adminKube(env);
    for (const n of ['istio-system', ns]) await createNamespace(admin, n);
    hosts = await createTestNetns();
    upstreams.push(...(await examplesBackends(apply, hosts)));
    eg = await startEnvoyGateway(assets as string, `${gate?.assets}/envoy`, env.adminKubeconfig, apply);
    Object.assign(ports, await envoyGatewayGateways(apply));
    const { plan } = await loadAndCompile([EXAMPLES]);
    routes = renderGatewayApi(plan, { channel: 'experimental' }).objects as KubernetesObject[];
    for (const o of routes) await apply(o);
    await untilRouted(
      [
        {
          base: `http://127.0.0.1:${ports.public}`,
          request: { host: 'payments.example.com' },
          upstream: 'payments/',
        },
      ],
      () => eg.log(),
      60_000,
    );
  }, 180_000);

  afterAll(async () => {
    await eg?.stop();
    await Promise.all(upstreams.map((u) => u.close()));
    await hosts?.close();
    await env?.stop();
  });

  it('carries the 17 rows of hosts outside the mesh', () => {
    expect(ROWS).toHaveLength(17);
  });

  it.each(ROWS)('$name', async (row) => {
    await checkRowThroughEnvoy(row, `http://127.0.0.1:${portFor(row)}`, async () => 0);
  });

  it('Envoy Gateway accepted every route it serves, and its Envoy every update', async () => {
    expect(await eg.rejected()).toBe(0);
    const served = routes.filter(
      (o) =>
        o.apiVersion === GATEWAY_API_V1 &&
        ((o as { spec?: { parentRefs?: { name: string }[] } }).spec?.parentRefs ?? []).some(
          (p) => p.name === 'public' || p.name === 'previews',
        ),
    );
    expect(served.length).toBeGreaterThan(3);
    expect(await routesNotAccepted(admin, served)).toEqual([]);
  });
});
