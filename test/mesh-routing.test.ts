/**
 * What `switchyard render` writes, carried by a real istiod and a real Envoy (test/support/mesh.ts):
 * the objects go to an API server, istiod reads them and configures an ingress gateway Envoy, and
 * requests through that Envoy reach the test hosts (one per version, in a network namespace this
 * run made) that the policy says, with the `x-switchyard-upstream` header the Node gateway sends.
 * Envoy must accept every piece of configuration istiod sends it (no NACK).
 */
import { join } from 'node:path';
import type { KubernetesObject } from '@kubernetes/client-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseAllDocuments, stringify } from 'yaml';
import type { Kube } from '../kube/client.js';
import { cli, tempFiles } from './support/cli.js';
import { adminKube, applyRbac, CONTROLLER_USER, createNamespace, markAvailable } from './support/cluster.js';
import { type Envtest, startEnvtestWithCrds } from './support/envtest.js';
import { eventually, gatewayConfig, startTestGateway } from './support/gateway.js';
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
import { type Started, startProcess } from './support/process.js';
import { TOKEN_CASE_ANSWERS, tokenAnswer, tokenCases } from './support/token-cases.js';
import { type TestTokenKeys, testTokenKeys } from './support/tokens.js';
import { unusedPort } from './support/upstreams.js';

const gate = meshTestGate();

const ns = 'shop';
const VERSIONS = ['v1', 'v2', 'v3'] as const;
const PREVIEW = 'web-pr-42-7f3a2c1';
const COMMIT = '7f3a2c1d9e8b7a6f5e4d3c2b1a0f9e8d7c6b5a49';
/** The policy the controller runs in the tests below (each adds to it). */
const WEB_SPEC = {
  service: 'web',
  port: 80,
  hosts: ['web.test'],
  gateways: ['istio-system/ingress'],
  stable: 'v1',
  canary: { version: 'v2', weight: 0 },
  previews: { repository: 'acme/web', image: 'ghcr.io/acme/web:{sha}' },
};

describe.skipIf(!gate)('Istio for real: rendered objects through istiod and Envoy', () => {
  let env: Envtest;
  let admin: Kube;
  let istiod: Istiod;
  let ingress: Envoy;
  let hosts: TestNetns;
  let port: number;
  let controller: Started | undefined;
  const upstreams: Record<string, NetnsUpstream> = {};
  let keys: TestTokenKeys;

  const apply = (o: object) => admin.apply(o as KubernetesObject, 'mesh-test', true);
  /** What `renderAndApply` wrote, so the controller's test can start from a clean namespace. */
  const rendered: KubernetesObject[] = [];

  /** A Service `web` whose pods are the test hosts of its versions. */
  const workload = () =>
    serviceWithEndpoints(
      apply,
      { namespace: ns, name: 'web', port: 80, selector: { app: 'web' } },
      VERSIONS.map((v) => ({ labels: { app: 'web', version: v }, host: upstreams[v] as NetnsUpstream })),
    );

  /** `switchyard render` of `policy`, applied as a person (or GitOps) would apply its output. */
  async function renderAndApply(policy: string) {
    const dir = tempFiles({ 'policy.yaml': policy });
    const output = await cli('render', '-f', join(dir, 'policy.yaml'));
    expect(output.stderr).toBe('');
    const objects = parseAllDocuments(output.stdout).map((d) => d.toJSON() as KubernetesObject);
    for (const o of objects) await apply(o);
    rendered.push(...objects);
    return objects;
  }

  const through = (headers: Record<string, string> = {}, host = 'web.test') =>
    send(`http://127.0.0.1:${port}`, { host, headers });

  /** The Node gateway with the same policy and Preview from files, the same test hosts and keys. */
  const nodeGatewayTwin = (spec: object) =>
    startTestGateway(
      `${stringify({ apiVersion: 'switchyard.dev/v1alpha1', kind: 'TrafficPolicy', metadata: { name: 'web', namespace: ns }, spec })}
---
apiVersion: switchyard.dev/v1alpha1
kind: Preview
metadata: {name: ${PREVIEW}, namespace: ${ns}}
spec: {policy: web, repository: acme/web, pullRequest: 42, commit: ${COMMIT}}
${gatewayConfig({
  ...Object.fromEntries(VERSIONS.map((v) => [`web/${v}`, (upstreams[v] as NetnsUpstream).url])),
  'web/pr-42-7f3a2c1': (upstreams.preview as NetnsUpstream).url,
})}`,
      { tokenJwks: keys.jwks },
    );

  /** Waits until Envoy routes `host` as expected (istiod pushes within milliseconds). */
  async function routed(expected: string, headers: Record<string, string> = {}) {
    const until = Date.now() + 20_000;
    for (;;) {
      const r = await through(headers).catch(() => undefined);
      if (r && header(r, 'x-switchyard-upstream') === expected) return r;
      if (Date.now() > until)
        throw new Error(`Envoy never routed to ${expected}; last: ${r?.status} ${r?.body}\n${ingress.log()}`);
      await new Promise((r) => setTimeout(r, 100));
    }
  }

  beforeAll(async () => {
    keys = await testTokenKeys();
    env = await startEnvtestWithCrds((gate as NonNullable<typeof gate>).envtest);
    admin = adminKube(env);
    await createNamespace(admin, 'istio-system');
    await createNamespace(admin, ns);
    hosts = await createTestNetns();
    for (const v of VERSIONS) upstreams[v] = await hosts.startUpstream(`web/${v}`);
    upstreams.preview = await hosts.startUpstream('web/pr-42-7f3a2c1');
    await workload();
    port = await unusedPort();
    await ingressGateway(apply, 'ingress', port, ['*/*']);
    istiod = await startIstiod((gate as NonNullable<typeof gate>).assets, env.adminKubeconfig);
    ingress = await startEnvoy((gate as NonNullable<typeof gate>).assets, istiod, {
      role: 'router',
      name: 'ingress',
      namespace: 'istio-system',
      labels: { istio: 'ingressgateway' },
    });
  }, 120_000);

  afterAll(async () => {
    if (controller && controller.child.exitCode === null) controller.child.kill('SIGTERM');
    await controller?.exited;
    await ingress?.stop();
    await istiod?.stop();
    await Promise.all(Object.values(upstreams).map((u) => u.close()));
    await hosts?.close();
    await env?.stop();
  });

  it('routes header and baggage intercepts and the split to the test hosts the policy names', async () => {
    await renderAndApply(`apiVersion: switchyard.dev/v1alpha1
kind: TrafficPolicy
metadata: {name: web, namespace: ${ns}}
spec:
  service: web
  port: 80
  hosts: [web.test]
  gateways: [istio-system/ingress]
  stable: v1
  canary: {version: v2, weight: 0}
  intercepts:
    - name: alice
      match: {header: x-user, exact: alice}
      to: {version: v3}
    - name: qa
      match: {header: x-user, prefix: qa-}
      to: {version: v2}
    - name: tenant
      match: {baggage: tenant, exact: acme}
      to: {version: v3}
`);
    const r = await routed('web/v1');
    expect(r.body).toBe('web/v1'); // the v1 test host itself answered
    const cases: [Record<string, string>, string][] = [
      [{ 'x-user': 'alice' }, 'web/v3'],
      [{ 'x-user': 'alice2' }, 'web/v1'],
      [{ 'x-user': 'qa-bob' }, 'web/v2'],
      [{ baggage: 'k=1, tenant = acme;p=2' }, 'web/v3'],
      [{ baggage: 'tenant=acme-2' }, 'web/v1'],
    ];
    for (const [headers, expected] of cases) {
      const reply = await through(headers);
      expect({ headers, upstream: header(reply, 'x-switchyard-upstream'), body: reply.body }).toEqual({
        headers,
        upstream: expected,
        body: expected,
      });
    }
  });

  it('moves the split when the canary weight changes, and Envoy accepted every update', async () => {
    await renderAndApply(`apiVersion: switchyard.dev/v1alpha1
kind: TrafficPolicy
metadata: {name: web, namespace: ${ns}}
spec:
  service: web
  port: 80
  hosts: [web.test]
  gateways: [istio-system/ingress]
  stable: v1
  canary: {version: v2, weight: 100}
`);
    await routed('web/v2');
    expect((await through({ 'x-user': 'alice' })).body).toBe('web/v2'); // the intercept is gone
    expect(await ingress.rejected()).toBe(0);
    expect(istiod.log()).not.toMatch(/ACK ERROR/);
  });

  it('the controller in mesh mode: `canary set` moves the split Envoy serves; a Ready Preview is reachable by its header', async () => {
    // Start clean: the objects rendered above are not the controller's (no controller reference).
    for (const o of rendered)
      await admin.delete({
        apiVersion: o.apiVersion as string,
        kind: o.kind as string,
        namespace: ns,
        name: o.metadata?.name as string,
      });
    await applyRbac(admin);
    // The stable Deployment a preview is cloned from (no kubelet runs it: the test hosts answer).
    await apply({
      apiVersion: 'apps/v1',
      kind: 'Deployment',
      metadata: { name: 'web-v1', namespace: ns },
      spec: {
        selector: { matchLabels: { app: 'web', version: 'v1' } },
        template: {
          metadata: { labels: { app: 'web', version: 'v1' } },
          spec: { containers: [{ name: 'web', image: 'ghcr.io/acme/web:v1' }] },
        },
      },
    });
    const kubeconfig = join(tempFiles({ kubeconfig: env.kubeconfigFor(CONTROLLER_USER) }), 'kubeconfig');
    const metricsPort = await unusedPort();
    controller = startProcess(
      [
        'controller',
        '--kubeconfig',
        kubeconfig,
        '--mode',
        'istio',
        '-n',
        ns,
        '--no-leader-elect',
        '--port',
        String(metricsPort),
        // The installation's token keys: the controller keeps the RequestAuthentication (last test).
        '--token-jwks',
        join(tempFiles({ 'jwks.json': JSON.stringify(keys.jwks) }), 'jwks.json'),
      ],
      { SWITCHYARD_LOG_LEVEL: process.env.SWITCHYARD_TEST_LOG ?? 'warn' },
    );
    await apply({
      apiVersion: 'switchyard.dev/v1alpha1',
      kind: 'TrafficPolicy',
      metadata: { name: 'web', namespace: ns },
      spec: WEB_SPEC,
    });
    await routed('web/v1').catch((e) => {
      throw new Error(`${e.message}\ncontroller:\n${controller?.output()}`);
    });
    // The controller's RequestAuthentication adds a filter to the gateway's listener, which Envoy
    // replaces by draining the old one (closing its idle connections): wait for that to be over
    // before sampling, as a client that does not retry would see a closed connection.
    const until = Date.now() + 20_000;
    while ((await through({ 'x-switchyard-token': 'not-a-token' }).catch(() => undefined))?.status !== 401) {
      if (Date.now() > until)
        throw new Error(`the RequestAuthentication never reached Envoy\n${controller?.output()}`);
      await new Promise((r) => setTimeout(r, 100));
    }
    while ((await ingress.stat('listener_manager.total_filter_chains_draining')) > 0)
      await new Promise((r) => setTimeout(r, 100));

    // The release engineer's command; then Envoy's split, sampled.
    const kubeconfigFile = join(tempFiles({ kubeconfig: env.adminKubeconfig }), 'kubeconfig');
    const set = await cli('canary', 'set', 'web', '30', '-n', ns, '--kubeconfig', kubeconfigFile);
    expect(set.code).toBe(0);
    const returned = performance.now();
    await routed('web/v2');
    const propagation = performance.now() - returned;
    const n = 1000;
    let canary = 0;
    for (let i = 0; i < n; i++) if (header(await through(), 'x-switchyard-upstream') === 'web/v2') canary++;
    // 30 % of 1,000 draws: 5 standard deviations (±7.2 points) make a false failure negligible.
    const sd = Math.sqrt((0.3 * 0.7) / n);
    expect(canary / n).toBeGreaterThan(0.3 - 5 * sd);
    expect(canary / n).toBeLessThan(0.3 + 5 * sd);
    console.info(
      `mesh: canary set 30 returned -> Envoy routing by it in ${propagation.toFixed(0)} ms (controller, API server, istiod, Envoy); ${canary} of ${n} requests on the canary`,
    );

    // A Preview: the controller deploys it; once its Deployment is available it is Ready and routed.
    await apply({
      apiVersion: 'switchyard.dev/v1alpha1',
      kind: 'Preview',
      metadata: { name: PREVIEW, namespace: ns },
      spec: { policy: 'web', repository: 'acme/web', pullRequest: 42, commit: COMMIT },
    });
    await eventually(
      () => admin.get({ apiVersion: 'apps/v1', kind: 'Deployment', namespace: ns, name: PREVIEW }),
      20_000,
    );
    await markAvailable(env, ns, PREVIEW);
    const preview = upstreams.preview as NetnsUpstream;
    await apply({
      apiVersion: 'discovery.k8s.io/v1',
      kind: 'EndpointSlice',
      metadata: { name: PREVIEW, namespace: ns, labels: { 'kubernetes.io/service-name': PREVIEW } },
      addressType: 'IPv4',
      ports: [{ name: 'http', port: preview.port, protocol: 'TCP' }],
      endpoints: [{ addresses: [preview.address], conditions: { ready: true } }],
    });
    const reply = await routed('web/pr-42-7f3a2c1', { 'x-switchyard-preview': 'pr-42' });
    expect(reply.body).toBe('web/pr-42-7f3a2c1'); // the preview's own test host answered
    expect(header(await through({ 'x-switchyard-preview': 'pr-43' }), 'x-switchyard-upstream')).toMatch(
      /^web\/v[12]$/,
    );
    expect(await ingress.rejected()).toBe(0);
  }, 90_000);

  it('requireToken through Envoy: the controller keeps the RequestAuthentication, and Envoy and the Node gateway give every token the same answer', async () => {
    expect(controller, 'the controller test ran first').toBeDefined();
    const ra = await eventually(
      () =>
        admin.get({
          apiVersion: 'security.istio.io/v1',
          kind: 'RequestAuthentication',
          namespace: 'istio-system',
          name: 'switchyard-intercept-tokens',
        }),
      20_000,
    );
    expect(ra.metadata?.labels?.['app.kubernetes.io/managed-by']).toBe('switchyard');
    const spec = {
      ...WEB_SPEC,
      intercepts: [
        {
          name: 'debug',
          match: { header: 'x-debug', exact: 'alice' },
          to: { version: 'v3' },
          requireToken: true,
        },
      ],
      previews: { ...WEB_SPEC.previews, requireToken: true },
    };
    await apply({
      apiVersion: 'switchyard.dev/v1alpha1',
      kind: 'TrafficPolicy',
      metadata: { name: 'web', namespace: ns },
      spec,
    });
    // The plain header no longer opens the preview once the token routes are in force.
    const until = Date.now() + 20_000;
    while (header(await through({ 'x-switchyard-preview': 'pr-42' }), 'x-switchyard-upstream') !== 'web/v1') {
      if (Date.now() > until) throw new Error(`the token routes never took effect\n${controller?.output()}`);
      await new Promise((r) => setTimeout(r, 100));
    }

    const node = await nodeGatewayTwin(spec);
    try {
      const envoy: Record<string, unknown> = {};
      const gateway: Record<string, unknown> = {};
      for (const [name, headers] of await tokenCases(keys, ns)) {
        envoy[name] = await tokenAnswer(`http://127.0.0.1:${port}`, 'web.test', headers);
        gateway[name] = await tokenAnswer(node.base, 'web.test', headers);
      }
      expect(envoy).toEqual(TOKEN_CASE_ANSWERS);
      expect(gateway).toEqual(envoy);
      expect(await ingress.rejected()).toBe(0);
    } finally {
      await node.close();
    }
  }, 60_000);

  it('timeouts and retries: Envoy and the Node gateway time out, retry and give up alike', async () => {
    expect(controller, 'the controller test ran first').toBeDefined();
    const base = WEB_SPEC;
    const outcome = async (base: string, headers: Record<string, string>, method = 'GET') => {
      const started = performance.now();
      const r = await send(base, {
        host: 'web.test',
        headers,
        method,
        ...(method === 'POST' ? { body: 'x' } : {}),
      });
      return {
        status: r.status,
        attempts: Number(header(r, 'x-upstream-attempt') ?? 0),
        ms: performance.now() - started,
      };
    };
    const configs: { name: string; spec: object; cases: [string, Record<string, string>, string?][] }[] = [
      {
        name: 'no timeout or retries set',
        spec: base,
        cases: [
          ['answers', {}],
          ['a 503 is not retried', { 'x-test-fail': '503-once/1/503' }],
        ],
      },
      {
        name: 'timeout 400ms, 2 retries on 5xx',
        spec: { ...base, timeout: '400ms', retries: { attempts: 2, on: ['5xx'] } },
        cases: [
          ['answers', {}],
          ['too slow: 504 at the timeout', { 'x-test-delay-ms': '1500' }],
          ['a 503 then success', { 'x-test-fail': '503-once/1/503' }],
          ['a 500 then success', { 'x-test-fail': '500-once/1/500' }],
          ['503 on every try: the third answer stands', { 'x-test-fail': 'always/9/503' }],
          ['a 404 is not retried', { 'x-test-fail': '404-once/1/404' }],
          ['a POST with a body, 503 once', { 'x-test-fail': 'post/1/503' }, 'POST'],
        ],
      },
    ];
    const differences: string[] = [];
    for (const config of configs) {
      await apply({
        apiVersion: 'switchyard.dev/v1alpha1',
        kind: 'TrafficPolicy',
        metadata: { name: 'web', namespace: ns },
        spec: config.spec,
      });
      const node = await nodeGatewayTwin(config.spec);
      try {
        // In force in Envoy once the route's timeout is what the config says.
        const want = (config.spec as { timeout?: string }).timeout;
        await eventually(async () => {
          const dump = await (
            await fetch(`${ingress.adminUrl}/config_dump?resource=dynamic_route_configs`)
          ).text();
          const timeouts = [...dump.matchAll(/"timeout": "([\d.]+s)"/g)].map((m) => m[1]);
          return want ? timeouts.includes('0.400s') : !timeouts.includes('0.400s');
        }, 20_000);
        for (const [name, headers, method] of config.cases) {
          const tagged = (who: string) =>
            headers['x-test-fail']
              ? { ...headers, 'x-test-fail': `${config.name}:${who}:${headers['x-test-fail']}` }
              : headers;
          const envoy = await outcome(`http://127.0.0.1:${port}`, tagged('envoy'), method);
          const gateway = await outcome(node.base, tagged('node'), method);
          const same = envoy.status === gateway.status && envoy.attempts === gateway.attempts;
          const timing = name.startsWith('too slow') && (envoy.ms > 1200 || gateway.ms > 1200);
          if (!same || timing)
            differences.push(
              `${config.name} / ${name}: Envoy ${envoy.status} after ${envoy.attempts} attempt(s) in ${envoy.ms.toFixed(0)} ms, gateway ${gateway.status} after ${gateway.attempts} in ${gateway.ms.toFixed(0)} ms`,
            );
        }
      } finally {
        await node.close();
      }
    }
    expect(differences).toEqual([]);
    expect(await ingress.rejected()).toBe(0);
  }, 90_000);
});
