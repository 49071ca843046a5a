/**
 * Intercepts across hops through real Envoy: a request enters at the ingress gateway for service
 * A; A calls B through A's sidecar; B has a preview. The preview header (or the baggage member) sent
 * to A reaches B's preview only because A forwards it with Switchyard's propagation helper
 * (sdk/propagation.ts); a call that does not forward it reaches B's stable version.
 */
import { join } from 'node:path';
import type { KubernetesObject } from '@kubernetes/client-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseAllDocuments } from 'yaml';
import type { Kube } from '../kube/client.js';
import { cli, tempFiles } from './support/cli.js';
import { adminKube, createNamespace } from './support/cluster.js';
import { type Envtest, startEnvtestWithCrds } from './support/envtest.js';
import { header, send } from './support/http.js';
import {
  type Envoy,
  egressSidecar,
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
const PORT = 8080;
const PREVIEW = 'b-pr-42-7f3a2c1';

const RESOURCES = `apiVersion: switchyard.dev/v1alpha1
kind: TrafficPolicy
metadata: {name: a, namespace: ${ns}}
spec:
  service: a
  port: ${PORT}
  hosts: [a.test]
  gateways: [istio-system/ingress]
  stable: v1
---
apiVersion: switchyard.dev/v1alpha1
kind: TrafficPolicy
metadata: {name: b, namespace: ${ns}}
spec:
  service: b
  port: ${PORT}
  stable: v1
  previews: {repository: acme/b}
---
apiVersion: switchyard.dev/v1alpha1
kind: Preview
metadata: {name: ${PREVIEW}, namespace: ${ns}}
spec: {policy: b, repository: acme/b, pullRequest: 42, commit: 7f3a2c1d9e8b7a6f5e4d3c2b1a0f9e8d7c6b5a49}
`;

describe.skipIf(!gate)('intercepts across two hops (A → B) through real Envoy', () => {
  const { envtest, assets } = gate as NonNullable<typeof gate>;
  let env: Envtest;
  let admin: Kube;
  let istiod: Istiod;
  let ingress: Envoy;
  let sidecarA: Envoy;
  let hosts: TestNetns;
  let ingressPort: number;
  const processes: NetnsUpstream[] = [];
  const apply = (o: object) => admin.apply(o as KubernetesObject, 'mesh-test', true);

  const service = (
    name: string,
    selector: Record<string, string>,
    labels: Record<string, string>,
    host: NetnsUpstream,
  ) => serviceWithEndpoints(apply, { namespace: ns, name, port: PORT, selector }, [{ labels, host }]);

  const callA = (headers: Record<string, string> = {}, path = '/') =>
    send(`http://127.0.0.1:${ingressPort}`, { host: 'a.test', path, headers });

  beforeAll(async () => {
    env = await startEnvtestWithCrds(envtest);
    admin = adminKube(env);
    for (const n of ['istio-system', ns]) await createNamespace(admin, n);
    hosts = await createTestNetns();
    // A's sidecar listens on the host end of the test namespace's veth: A (inside) reaches it there.
    const sidecarUrl = `http://${hosts.hostAddress}:${PORT}`;
    const b = await hosts.startUpstream('b/v1');
    const preview = await hosts.startUpstream('b/pr-42-7f3a2c1');
    const a = await hosts.startUpstream('a/v1', undefined, {
      script: 'netns-calling-service.mjs',
      args: [sidecarUrl, `b.${ns}.svc.cluster.local`],
    });
    processes.push(a, b, preview);
    await service('a', { app: 'a' }, { app: 'a', version: 'v1' }, a);
    await service('b', { app: 'b' }, { app: 'b', version: 'v1' }, b);
    await service(
      PREVIEW,
      { 'switchyard.dev/preview': PREVIEW },
      { 'switchyard.dev/preview': PREVIEW },
      preview,
    );
    ingressPort = await unusedPort();
    await ingressGateway(apply, 'ingress', ingressPort, ['*/a.test']);
    await egressSidecar(apply, {
      name: 'a',
      namespace: ns,
      port: PORT,
      bind: hosts.hostAddress,
      hosts: [`${ns}/*`],
    });
    const dir = tempFiles({ 'resources.yaml': RESOURCES });
    const rendered = await cli('render', '-f', join(dir, 'resources.yaml'));
    expect(rendered.stderr).toBe('');
    for (const d of parseAllDocuments(rendered.stdout)) await apply(d.toJSON());
    istiod = await startIstiod(assets, env.adminKubeconfig);
    ingress = await startEnvoy(assets, istiod, {
      role: 'router',
      name: 'ingress',
      namespace: 'istio-system',
      labels: { istio: 'ingressgateway' },
    });
    sidecarA = await startEnvoy(assets, istiod, {
      role: 'sidecar',
      name: 'a',
      namespace: ns,
      labels: { app: 'a', version: 'v1' },
    });
    const until = Date.now() + 30_000;
    for (;;) {
      const r = await callA().catch(() => undefined);
      if (r?.status === 200 && r.body === 'b/v1') break;
      if (Date.now() > until)
        throw new Error(
          `A → B never answered (last ${r?.status} ${r?.body})\n${ingress.log()}\n${sidecarA.log()}`,
        );
      await new Promise((r) => setTimeout(r, 100));
    }
  }, 120_000);

  afterAll(async () => {
    await sidecarA?.stop();
    await ingress?.stop();
    await istiod?.stop();
    await Promise.all(processes.map((p) => p.close()));
    await hosts?.close();
    await env?.stop();
  });

  it('the preview header sent to A reaches B’s preview because A forwards it', async () => {
    const r = await callA({ 'x-switchyard-preview': 'pr-42' });
    expect(header(r, 'x-switchyard-upstream')).toBe('a/v1'); // the first hop: A has no preview
    expect(header(r, 'x-next-upstream')).toBe('b/pr-42-7f3a2c1');
    expect(r.body).toBe('b/pr-42-7f3a2c1'); // B's preview test host answered
  });

  it('so does the W3C baggage member', async () => {
    const r = await callA({ baggage: 'user=7,switchyard-preview=pr-42' });
    expect(r.body).toBe('b/pr-42-7f3a2c1');
  });

  it('without forwarding, or without the header, B’s stable version answers', async () => {
    expect((await callA({ 'x-switchyard-preview': 'pr-42' }, '/no-propagation')).body).toBe('b/v1');
    expect((await callA()).body).toBe('b/v1');
    expect((await callA({ 'x-switchyard-preview': 'pr-43' })).body).toBe('b/v1');
    expect(await ingress.rejected()).toBe(0);
    expect(await sidecarA.rejected()).toBe(0);
  });
});
