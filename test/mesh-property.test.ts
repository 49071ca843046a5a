/**
 * A fixed sample of the property test's random policies (test/support/random-policies.ts) through
 * real Envoy, beside `explain` and the Node gateway: what the renderer writes goes to an API
 * server, istiod configures an ingress gateway Envoy, and requests built from each policy's own
 * match values (and its preview URLs) must reach the destination explain names. Envoy's
 * `x-switchyard-upstream` comes from the route it chose, so its Services need no endpoints: an
 * answer of 503 "no healthy upstream" still says where the request was routed. Envoy must accept
 * everything (no NACK).
 */
import type { KubernetesObject } from '@kubernetes/client-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { compile } from '../core/compiler/compile.js';
import { explainRequest, requestFrom } from '../core/compiler/explain.js';
import type { RoutePlan } from '../core/compiler/plan.js';
import { renderIstio } from '../core/istio/render.js';
import type { Kube } from '../kube/client.js';
import { adminKube, createNamespace } from './support/cluster.js';
import { type Envtest, startEnvtestWithCrds } from './support/envtest.js';
import { gatewayConfig, startTestGateway, type TestGateway } from './support/gateway.js';
import { header, send } from './support/http.js';
import {
  type Envoy,
  type Istiod,
  ingressGateway,
  meshTestGate,
  startEnvoy,
  startIstiod,
} from './support/mesh.js';
import { load, MESH_SAMPLE_SEED, meshSample, requestsFor } from './support/random-policies.js';
import { startUpstream, type TestUpstream, unusedPort } from './support/upstreams.js';

const gate = meshTestGate();
const WORLDS = 12;
const SAMPLE = meshSample(WORLDS);

/** Every upstream key the plan may send to (each gets the one Node-gateway test upstream). */
function upstreamKeys(plan: RoutePlan): string[] {
  const keys = new Set<string>();
  for (const p of plan.policies)
    for (const r of p.routes) {
      for (const d of r.destinations) keys.add(d.upstream);
      if (r.mirror) keys.add(r.mirror.destination.upstream);
    }
  return [...keys];
}

describe.skipIf(!gate)('a sample of random policies through real Envoy, explain and the Node gateway', () => {
  const { envtest, assets } = gate as NonNullable<typeof gate>;
  let env: Envtest;
  let admin: Kube;
  let istiod: Istiod;
  let ingress: Envoy;
  let port: number;
  let node: TestGateway;
  let answer: TestUpstream;
  const docs = SAMPLE.flatMap((w) => [w.policy, ...w.previews]);
  const { resources, problems } = load(docs);
  const compiled = compile(resources);
  const rendered = renderIstio(compiled.plan);
  const apply = (o: object) => admin.apply(o as KubernetesObject, 'mesh-test', true);

  beforeAll(async () => {
    expect([...problems, ...compiled.problems, ...rendered.problems]).toEqual([]);
    env = await startEnvtestWithCrds(envtest);
    admin = adminKube(env);
    await createNamespace(admin, 'istio-system');
    for (const ns of new Set(SAMPLE.map((w) => w.ns))) await createNamespace(admin, ns);
    port = await unusedPort();
    await ingressGateway(apply, 'public', port, ['*/*.example.com']);
    await ingressGateway(apply, 'previews', port, ['*/*.preview.example.com']);
    // A Service (no endpoints) for every host and port a route or mirror names.
    const services = new Map<string, { name: string; namespace: string; ports: Set<number> }>();
    for (const p of compiled.plan.policies)
      for (const r of p.routes)
        for (const d of [...r.destinations, ...(r.mirror ? [r.mirror.destination] : [])]) {
          const [name, namespace] = d.host.split('.') as [string, string];
          const s = services.get(d.host) ?? { name, namespace, ports: new Set<number>() };
          s.ports.add(d.port);
          services.set(d.host, s);
        }
    for (const s of services.values())
      await apply({
        apiVersion: 'v1',
        kind: 'Service',
        metadata: { name: s.name, namespace: s.namespace },
        spec: { ports: [...s.ports].map((p) => ({ name: `http-${p}`, port: p, protocol: 'TCP' })) },
      });
    for (const o of rendered.objects) await apply(o);
    istiod = await startIstiod(assets, env.adminKubeconfig);
    ingress = await startEnvoy(assets, istiod, {
      role: 'router',
      name: 'ingress',
      namespace: 'istio-system',
      labels: { istio: 'ingressgateway' },
    });
    answer = await startUpstream('any');
    node = await startTestGateway(
      `${docs.map((d) => stringify(d)).join('---\n')}${gatewayConfig(
        Object.fromEntries(upstreamKeys(compiled.plan).map((k) => [k, answer.url])),
      )}`,
    );
  }, 120_000);

  afterAll(async () => {
    await node?.close();
    await answer?.close();
    await ingress?.stop();
    await istiod?.stop();
    await env?.stop();
  });

  it(`every request of ${WORLDS} random worlds reaches what explain says, through Envoy and the gateway`, async () => {
    const cases: { host: string; headers: Record<string, string> }[] = [];
    for (const w of SAMPLE) {
      for (const headers of requestsFor(w)) cases.push({ host: `${w.name}.example.com`, headers });
      // Each preview URL the plan serves, bare (requireToken makes it 404 without a token).
      const plan = compiled.plan.policies.find((p) => p.name === w.name && p.namespace === w.ns);
      for (const host of plan?.previewHosts ?? []) cases.push({ host, headers: {} });
    }
    const base = `http://127.0.0.1:${port}`;
    // Ready once Envoy routes the first policy's host as explain says.
    const first = cases[0] as (typeof cases)[number];
    const until = Date.now() + 30_000;
    while (
      header(
        await send(base, first).catch(() => ({ status: 0, headers: {}, body: '' })),
        'x-switchyard-upstream',
      ) === undefined
    ) {
      if (Date.now() > until) throw new Error(`Envoy never routed ${first.host}\n${ingress.log()}`);
      await new Promise((r) => setTimeout(r, 200));
    }
    const wrong: string[] = [];
    for (const c of cases) {
      const e = explainRequest(compiled.plan, requestFrom(c));
      const allowed = e.destinations.filter((d) => d.weight > 0).map((d) => d.upstream);
      for (const [who, url] of [
        ['Envoy', base],
        ['gateway', node.base],
      ] as const) {
        const r = await send(url, c);
        const got = header(r, 'x-switchyard-upstream');
        const ok =
          allowed.length === 0
            ? got === undefined && r.status === 404
            : got !== undefined && allowed.includes(got);
        if (!ok)
          wrong.push(
            `${who}: ${c.host} ${JSON.stringify(c.headers)} -> ${r.status} ${got ?? '(none)'}; explain: ${e.route ?? 'no route'} ${JSON.stringify(allowed)}`,
          );
      }
    }
    console.info(
      `mesh property sample: ${cases.length} requests over ${SAMPLE.length} random policies (seed ${MESH_SAMPLE_SEED})`,
    );
    expect(wrong).toEqual([]);
    expect(cases.length).toBeGreaterThan(WORLDS * 2);
    expect(await ingress.rejected()).toBe(0);
  }, 120_000);
});
