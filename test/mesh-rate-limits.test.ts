/**
 * Rate limits where Istio carries them out: the EnvoyFilters `switchyard render` writes patch the
 * *receiving* (inbound) sidecar of the policy's workload. Here a real Envoy is that sidecar, in
 * front of the workload (a test server on loopback), configured by a real istiod: an enforced limit
 * per header value answers 429 once its bucket is empty, each value has a bucket of its own, and a
 * dry-run limit (`enforce: false`) only counts in Envoy's stats.
 */
import { randomInt } from 'node:crypto';
import { join } from 'node:path';
import type { KubernetesObject } from '@kubernetes/client-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseAllDocuments } from 'yaml';
import type { Kube } from '../kube/client.js';
import { cli, tempFiles } from './support/cli.js';
import { adminKube, createNamespace } from './support/cluster.js';
import { type Envtest, startEnvtestWithCrds } from './support/envtest.js';
import { header, send } from './support/http.js';
import { type Envoy, type Istiod, meshTestGate, startEnvoy, startIstiod } from './support/mesh.js';
import { startUpstream, type TestUpstream } from './support/upstreams.js';

const gate = meshTestGate();
const ns = 'shop';
const PORT = 8080;

const POLICY = `apiVersion: switchyard.dev/v1alpha1
kind: TrafficPolicy
metadata: {name: api, namespace: ${ns}}
spec:
  service: api
  port: ${PORT}
  stable: v1
  rateLimits:
    - name: per-api-key
      key: {header: x-api-key}
      limit: 3
      window: 1m
    - name: per-probe
      key: {header: x-probe}
      limit: 2
      window: 2s
    - name: whole-route
      key: {route: {}}
      limit: 2
      window: 1m
      enforce: false
`;

describe.skipIf(!gate)('rate limits in a real inbound sidecar', () => {
  const { envtest, assets } = gate as NonNullable<typeof gate>;
  let env: Envtest;
  let admin: Kube;
  let istiod: Istiod;
  let sidecar: Envoy;
  let workload: TestUpstream;
  /** The sidecar's inbound listener, on a loopback address of its own. */
  const bind = `127.${randomInt(1, 255)}.${randomInt(1, 255)}.${randomInt(2, 255)}`;
  const apply = (o: object) => admin.apply(o as KubernetesObject, 'mesh-test', true);
  const call = (headers: Record<string, string> = {}) =>
    send(`http://${bind}:${PORT}`, { host: `api.${ns}.svc.cluster.local`, headers });

  beforeAll(async () => {
    env = await startEnvtestWithCrds(envtest);
    admin = adminKube(env);
    for (const n of ['istio-system', ns]) await createNamespace(admin, n);
    workload = await startUpstream('api/v1');
    // No istio-agent serves certificates here: inbound listeners take plain text only (with the
    // default PERMISSIVE mode they would wait for a certificate forever).
    await apply({
      apiVersion: 'security.istio.io/v1',
      kind: 'PeerAuthentication',
      metadata: { name: 'default', namespace: 'istio-system' },
      spec: { mtls: { mode: 'DISABLE' } },
    });
    await apply({
      apiVersion: 'v1',
      kind: 'Service',
      metadata: { name: 'api', namespace: ns },
      spec: { selector: { app: 'api' }, ports: [{ name: 'http', port: PORT, targetPort: PORT }] },
    });
    // No iptables: the sidecar's inbound listener is bound where the test sends, and forwards to
    // the workload's port on loopback.
    await apply({
      apiVersion: 'networking.istio.io/v1',
      kind: 'Sidecar',
      metadata: { name: 'api', namespace: ns },
      spec: {
        workloadSelector: { labels: { app: 'api' } },
        ingress: [
          {
            port: { number: PORT, protocol: 'HTTP', name: 'http' },
            bind,
            captureMode: 'NONE',
            defaultEndpoint: `127.0.0.1:${workload.port}`,
          },
        ],
        egress: [
          {
            hosts: ['istio-system/*'],
            captureMode: 'NONE',
            bind: '127.0.0.1',
            port: { number: 1, protocol: 'HTTP', name: 'none' },
          },
        ],
      },
    });
    const dir = tempFiles({ 'policy.yaml': POLICY });
    const rendered = await cli('render', '-f', join(dir, 'policy.yaml'));
    expect(rendered.stderr).toBe('');
    for (const d of parseAllDocuments(rendered.stdout)) await apply(d.toJSON());
    istiod = await startIstiod(assets, env.adminKubeconfig);
    sidecar = await startEnvoy(assets, istiod, {
      role: 'sidecar',
      name: 'api-v1',
      namespace: ns,
      labels: { app: 'api', version: 'v1' },
    });
    const until = Date.now() + 30_000;
    for (;;) {
      const r = await call({ 'x-api-key': 'warm-up' }).catch(() => undefined);
      if (r?.status === 200) break;
      if (Date.now() > until)
        throw new Error(`the inbound listener never answered (${r?.status})\n${sidecar.log()}`);
      await new Promise((r) => setTimeout(r, 100));
    }
  }, 120_000);

  afterAll(async () => {
    await sidecar?.stop();
    await istiod?.stop();
    await workload?.close();
    await env?.stop();
  });

  it('refuses the 4th request of one key with 429 and retry-after, and keeps another key apart', async () => {
    const statuses: number[] = [];
    for (let i = 0; i < 4; i++) statuses.push((await call({ 'x-api-key': 'alice' })).status);
    expect(statuses).toEqual([200, 200, 200, 429]);
    const refused = await call({ 'x-api-key': 'alice' });
    expect(refused.status).toBe(429);
    // One token comes back every window/limit: 60 s / 3, the slowest of the filter's limits.
    expect(header(refused, 'retry-after')).toBe('20');
    expect((await call({ 'x-api-key': 'bob' })).status).toBe(200);
    expect(workload.received.filter((r) => r.headers['x-api-key'] === 'alice')).toHaveLength(3);
  });

  it('sends no meaningless headers: none from the catch-all bucket, none from a dry run', async () => {
    const allowed = await call({});
    expect(allowed.status).toBe(200);
    expect(
      Object.keys(allowed.headers).filter((h) => h.includes('ratelimit') || h === 'retry-after'),
    ).toEqual([]);
  });

  it('refills the bucket gradually: one token every window/limit, not all at the end of the window', async () => {
    const probe = async () => (await call({ 'x-probe': 'p' })).status;
    expect([await probe(), await probe(), await probe()]).toEqual([200, 200, 429]);
    await new Promise((r) => setTimeout(r, 1100)); // 2 per 2 s: a token a second
    expect(await probe()).toBe(200);
    expect(await probe()).toBe(429);
  });

  it('counts the dry-run limit without refusing', async () => {
    const prefix = `switchyard_${ns}_api_ratelimit_all_shadow`;
    const before = await sidecar.stat(`${prefix}.http_local_rate_limit.rate_limited`);
    for (let i = 0; i < 5; i++) expect((await call({ 'x-api-key': `k${i}` })).status).toBe(200);
    expect(await sidecar.stat(`${prefix}.http_local_rate_limit.rate_limited`)).toBeGreaterThan(before);
    expect(await sidecar.rejected()).toBe(0);
  });

  it('uses the supported form: Envoy warns of nothing it will stop reading', () => {
    // Envoy 1.40 warned for every filter whose descriptors were fed by the route's rate_limits.
    const warnings = sidecar
      .log()
      .split('\n')
      .filter((l) => /\]\[warning\]|deprecated/i.test(l));
    expect(warnings.filter((l) => /descriptor|rate_limit|ratelimit/i.test(l))).toEqual([]);
  });
});
