/**
 * The conformance table through real Envoy: `switchyard render` of deploy/examples goes to an API
 * server, istiod configures an ingress gateway Envoy (the examples' `istio-system/public` and
 * `istio-system/previews` Gateways) and a client sidecar (for the in-mesh hosts), and every row is
 * sent through the proxy that would carry it. Each upstream key is its own test host in a network
 * namespace this run made, so the answer proves where the request went; the same rows run through
 * `explain` (conformance.test.ts) and the Node gateway (gateway-conformance.test.ts). Envoy must
 * accept everything istiod sends (no NACK).
 */
import { randomInt } from 'node:crypto';
import type { KubernetesObject } from '@kubernetes/client-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseAllDocuments } from 'yaml';
import type { Kube } from '../kube/client.js';
import { cli, EXAMPLES } from './support/cli.js';
import { adminKube, createNamespace } from './support/cluster.js';
import { CONFORMANCE_TABLE, type ConformanceRow } from './support/conformance-table.js';
import { checkRowThroughEnvoy } from './support/conformance-through-envoy.js';
import { type Envtest, startEnvtestWithCrds } from './support/envtest.js';
import { header, send } from './support/http.js';
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
import { unusedPort } from './support/upstreams.js';

const gate = meshTestGate();
const ns = 'shop';
const SERVICE_PORT = 8080; // every example's spec.port
const VERSIONS: Record<string, string[]> = {
  cart: ['v1', 'v2', 'v3'],
  search: ['v1', 'v2'],
  payments: ['v1', 'v2'],
  catalog: ['v1', 'v2'],
  recommendations: ['v1', 'v2'],
  api: ['v1', 'v2'],
  checkout: ['v1', 'v2'],
};
const PREVIEWS = ['checkout-pr-42-7f3a2c1', 'checkout-pr-42-1b2c3d4', 'checkout-pr-7-0a1b2c3'];
/** The upstream key a preview's test host answers as (`checkout/pr-42-7f3a2c1`). */
const previewKey = (name: string) => `checkout/${name.slice('checkout-'.length)}`;

describe.skipIf(!gate)('conformance through real Envoy (istiod + gateway and sidecar proxies)', () => {
  const { envtest, assets } = gate as NonNullable<typeof gate>;
  let env: Envtest;
  let admin: Kube;
  let istiod: Istiod;
  let ingress: Envoy;
  let sidecar: Envoy;
  let hosts: TestNetns;
  let ingressPort: number;
  /** The client sidecar's egress listener for the Services' port, on a loopback address of its own. */
  const sidecarBind = `127.${randomInt(1, 255)}.${randomInt(1, 255)}.${randomInt(2, 255)}`;
  const upstreams: NetnsUpstream[] = [];

  const apply = (o: object) => admin.apply(o as KubernetesObject, 'mesh-test', true);

  const service = (
    name: string,
    selector: Record<string, string>,
    pods: { labels: Record<string, string>; host: NetnsUpstream }[],
  ) => serviceWithEndpoints(apply, { namespace: ns, name, port: SERVICE_PORT, selector }, pods);

  /** Where a row's request goes: the ingress gateway for external hosts, the client sidecar for the mesh's. */
  const proxyFor = (row: ConformanceRow) =>
    row.host.endsWith('.svc.cluster.local')
      ? `http://${sidecarBind}:${SERVICE_PORT}`
      : `http://127.0.0.1:${ingressPort}`;

  beforeAll(async () => {
    env = await startEnvtestWithCrds(envtest);
    admin = adminKube(env);
    for (const n of ['istio-system', ns, 'client']) await createNamespace(admin, n);
    hosts = await createTestNetns();
    for (const [svc, versions] of Object.entries(VERSIONS)) {
      const pods = [];
      for (const v of versions) {
        const host = await hosts.startUpstream(`${svc}/${v}`);
        upstreams.push(host);
        pods.push({ labels: { app: svc, version: v }, host });
      }
      await service(svc, { app: svc }, pods);
    }
    for (const name of PREVIEWS) {
      const host = await hosts.startUpstream(previewKey(name));
      upstreams.push(host);
      await service(name, { 'switchyard.dev/preview': name }, [
        { labels: { 'switchyard.dev/preview': name }, host },
      ]);
    }
    ingressPort = await unusedPort();
    const gateway = (name: string, hostsOf: string[]) => ingressGateway(apply, name, ingressPort, hostsOf);
    await gateway('public', ['*/shop.example.com', '*/payments.example.com']);
    await gateway('previews', ['*/*.preview.example.com']);
    // The client's sidecar: no iptables, an egress listener on its own loopback address.
    await apply({
      apiVersion: 'networking.istio.io/v1',
      kind: 'Sidecar',
      metadata: { name: 'client', namespace: 'client' },
      spec: {
        workloadSelector: { labels: { app: 'client' } },
        egress: [
          {
            port: { number: SERVICE_PORT, protocol: 'HTTP', name: 'http' },
            bind: sidecarBind,
            captureMode: 'NONE',
            hosts: [`${ns}/*`],
          },
        ],
      },
    });
    const rendered = await cli('render', '-f', EXAMPLES);
    expect(rendered.stderr).toBe('');
    for (const d of parseAllDocuments(rendered.stdout)) await apply(d.toJSON());
    istiod = await startIstiod(assets, env.adminKubeconfig);
    ingress = await startEnvoy(assets, istiod, {
      role: 'router',
      name: 'ingress',
      namespace: 'istio-system',
      labels: { istio: 'ingressgateway' },
    });
    sidecar = await startEnvoy(assets, istiod, {
      role: 'sidecar',
      name: 'client',
      namespace: 'client',
      labels: { app: 'client' },
    });
    // Ready when both proxies route a row each.
    const until = Date.now() + 30_000;
    for (const [base, host, key] of [
      [`http://127.0.0.1:${ingressPort}`, 'payments.example.com:443', 'payments/'],
      [`http://${sidecarBind}:${SERVICE_PORT}`, 'cart.shop.svc.cluster.local', 'cart/v1'],
    ] as const) {
      for (;;) {
        const r = await send(base, { host }).catch(() => undefined);
        if (r && (header(r, 'x-switchyard-upstream') ?? '').startsWith(key)) break;
        if (Date.now() > until)
          throw new Error(
            `${host} was never routed (last: ${r?.status} ${r?.body})\n${ingress.log()}\n${sidecar.log()}`,
          );
        await new Promise((r) => setTimeout(r, 100));
      }
    }
  }, 180_000);

  afterAll(async () => {
    await sidecar?.stop();
    await ingress?.stop();
    await istiod?.stop();
    await Promise.all(upstreams.map((u) => u.close()));
    await hosts?.close();
    await env?.stop();
  });

  it.each(CONFORMANCE_TABLE)('$name', async (row) => {
    const shadow = 'cluster.outbound|8080|v2|recommendations.shop.svc.cluster.local;.upstream_rq_total';
    await checkRowThroughEnvoy(row, proxyFor(row), () => sidecar.stat(shadow));
  });

  it('Envoy accepted every update istiod sent', async () => {
    expect(await ingress.rejected()).toBe(0);
    expect(await sidecar.rejected()).toBe(0);
    expect(istiod.log()).not.toMatch(/ACK ERROR/);
  });
});
