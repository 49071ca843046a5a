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
import {
  checkRowThroughEnvoy,
  EXAMPLES_NAMESPACE,
  EXAMPLES_PORT,
  examplesBackends,
} from './support/conformance-through-envoy.js';
import { type Envtest, startEnvtestWithCrds } from './support/envtest.js';
import { untilRouted } from './support/http.js';
import {
  type Envoy,
  egressSidecar,
  type Istiod,
  ingressGateway,
  meshTestGate,
  startEnvoy,
  startIstiod,
} from './support/mesh.js';
import { createTestNetns, type NetnsUpstream, type TestNetns } from './support/netns.js';
import { unusedPort } from './support/upstreams.js';

const gate = meshTestGate();
const ns = EXAMPLES_NAMESPACE;
const SERVICE_PORT = EXAMPLES_PORT; // every example's spec.port

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
    upstreams.push(...(await examplesBackends(apply, hosts)));
    ingressPort = await unusedPort();
    const gateway = (name: string, hostsOf: string[]) => ingressGateway(apply, name, ingressPort, hostsOf);
    await gateway('public', ['*/shop.example.com', '*/payments.example.com']);
    await gateway('previews', ['*/*.preview.example.com']);
    // The client's sidecar: no iptables, an egress listener on its own loopback address.
    await egressSidecar(apply, {
      name: 'client',
      namespace: 'client',
      port: SERVICE_PORT,
      bind: sidecarBind,
      hosts: [`${ns}/*`],
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
    await untilRouted(
      [
        {
          base: `http://127.0.0.1:${ingressPort}`,
          request: { host: 'payments.example.com:443' },
          upstream: 'payments/',
        },
        {
          base: `http://${sidecarBind}:${SERVICE_PORT}`,
          request: { host: 'cart.shop.svc.cluster.local' },
          upstream: 'cart/v1',
        },
      ],
      () => `${ingress.log()}\n${sidecar.log()}`,
    );
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
