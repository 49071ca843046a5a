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
import { compile } from '../core/compiler/compile.js';
import { renderEnvoyGatewayTokenVerification } from '../core/gateway-api/envoy-gateway-tokens.js';
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
import { eventually } from './support/gateway.js';
import { gatewayApiCrdFolder } from './support/gateway-api-crds.js';
import { grpcAnswers, grpcWorld } from './support/grpc-echo.js';
import { header, send, untilRouted } from './support/http.js';
import { meshTestGate, serviceWithEndpoints } from './support/mesh.js';
import { createTestNetns, type NetnsUpstream, type TestNetns } from './support/netns.js';
import { load } from './support/random-policies.js';
import {
  forgedClaimCases,
  forgedClaimHeaders,
  TOKEN_CASE_ANSWERS,
  tokenAnswer,
  tokenCases,
  tokenWorld,
} from './support/token-cases.js';
import { mint, testTokenKeys } from './support/tokens.js';

const gate = meshTestGate();
const assets = gate && gatewayApiCrdFolder() ? envoyGatewayAssets() : undefined;
if (gate && !assets && process.env.CI) throw new Error(`CI=true, but ${ENVOY_GATEWAY_SKIP_REASON}`);
const ns = EXAMPLES_NAMESPACE;

/** The rows Envoy Gateway carries: every host outside the mesh. */
const ROWS = CONFORMANCE_TABLE.filter((row) => !row.host.endsWith('.svc.cluster.local'));

/** A policy behind the public Gateway with one rate limit: 3 requests a minute per API key. */
const LIMITED_POLICY = {
  apiVersion: 'switchyard.dev/v1alpha1',
  kind: 'TrafficPolicy',
  metadata: { name: 'limited', namespace: 'limits' },
  spec: {
    service: 'limited',
    port: 80,
    stable: 'v1',
    hosts: ['limited.example.com'],
    gateways: ['istio-system/public'],
    rateLimits: [{ name: 'per-key', key: { header: 'x-api-key' }, limit: 3, window: '1m' }],
  },
};

describe.skipIf(!assets)('conformance through Envoy Gateway from Gateway API routes', () => {
  const { envtest } = gate as NonNullable<typeof gate>;
  let env: Envtest;
  let admin: Kube;
  let eg: EnvoyGateway;
  let hosts: TestNetns;
  const ports = { public: 0, previews: 0 };
  const upstreams: NetnsUpstream[] = [];
  let routes: KubernetesObject[];
  /** Objects the tests below applied beside the examples: the rate-limited policy's, the gRPC route. */
  let extra: KubernetesObject[];
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
    routes = renderGatewayApi(plan, { channel: 'experimental', envoyGatewayPolicies: true })
      .objects as KubernetesObject[];
    for (const o of routes) await apply(o);
    extra = await limitedPolicy();
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

  /**
   * A policy with rate limits on the public Gateway (the examples' rate limits are in-mesh), its
   * stable version a test host of its own: rendered with Envoy Gateway's policies and applied.
   */
  async function limitedPolicy(): Promise<KubernetesObject[]> {
    await createNamespace(admin, 'limits');
    const host = await hosts.startUpstream('limited/v1');
    upstreams.push(host);
    await serviceWithEndpoints(
      apply,
      { namespace: 'limits', name: 'limited', port: 80, selector: { app: 'limited' } },
      [{ labels: { app: 'limited', version: 'v1' }, host }],
    );
    await apply({
      apiVersion: 'discovery.k8s.io/v1',
      kind: 'EndpointSlice',
      metadata: {
        name: 'limited--v1-0',
        namespace: 'limits',
        labels: { 'kubernetes.io/service-name': 'limited--v1' },
      },
      addressType: 'IPv4',
      ports: [{ name: 'http', port: host.port, protocol: 'TCP' }],
      endpoints: [{ addresses: [host.address], conditions: { ready: true } }],
    });
    const { resources, problems } = load([LIMITED_POLICY]);
    expect(problems).toEqual([]);
    const out = renderGatewayApi(compile(resources).plan, {
      channel: 'experimental',
      envoyGatewayPolicies: true,
    });
    expect(out.problems).toEqual([]);
    for (const o of out.objects) await apply(o);
    return out.objects as KubernetesObject[];
  }

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

  it('rate limits as a BackendTrafficPolicy: a bucket per API key, 429 past the limit, with x-ratelimit headers', async () => {
    const base = `http://127.0.0.1:${ports.public}`;
    // Who answered: the test host (its body is its name) or Envoy itself. (Envoy's own 429 carries
    // the route's response headers too, x-switchyard-upstream among them, as its 401 does in Istio.)
    const answer = async (key: string) => {
      const r = await send(base, { host: 'limited.example.com', headers: { 'x-api-key': key } });
      return { status: r.status, answeredBy: r.body === 'limited/v1' ? 'limited/v1' : 'envoy' };
    };
    // The policy reaches Envoy after the route: wait until a fourth request of one key is refused.
    await untilRouted([{ base, request: { host: 'limited.example.com' }, upstream: 'limited/v1' }], () =>
      eg.log(),
    );
    const until = Date.now() + 30_000;
    let probe = 0;
    for (;;) {
      const key = `probe-${probe++}`;
      const answers = [];
      for (let i = 0; i < 4; i++) answers.push((await answer(key)).status);
      if (answers.join() === '200,200,200,429') break;
      if (Date.now() > until) throw new Error(`no limit took effect: ${answers.join()}\n${eg.log()}`);
      await new Promise((r) => setTimeout(r, 200));
    }
    // A fresh key has its own bucket of 3 a minute; the refused request says when to come back.
    const key = 'alice';
    const seen = [];
    for (let i = 0; i < 4; i++) seen.push(await answer(key));
    expect(seen).toEqual([
      { status: 200, answeredBy: 'limited/v1' },
      { status: 200, answeredBy: 'limited/v1' },
      { status: 200, answeredBy: 'limited/v1' },
      { status: 429, answeredBy: 'envoy' },
    ]);
    const refused = await send(base, { host: 'limited.example.com', headers: { 'x-api-key': key } });
    expect(refused.status).toBe(429);
    expect(header(refused, 'x-ratelimit-limit')).toBe('3');
    expect(Number(header(refused, 'x-ratelimit-reset'))).toBeGreaterThan(0);
    expect((await answer('bob')).status).toBe(200);
    // Envoy Gateway accepted the policy for the route (status.ancestors).
    const policy = await admin.get<
      KubernetesObject & { status?: { ancestors?: { conditions?: { type: string; status: string }[] }[] } }
    >({
      apiVersion: 'gateway.envoyproxy.io/v1alpha1',
      kind: 'BackendTrafficPolicy',
      namespace: 'limits',
      name: 'limited-ratelimit',
    });
    expect(
      policy?.status?.ancestors?.flatMap((a) => a.conditions ?? []).find((c) => c.type === 'Accepted')
        ?.status,
    ).toBe('True');
  }, 60_000);

  it('gRPC: a GRPCRoute reaches the gRPC test host of each version, by metadata', async () => {
    const world = await grpcWorld(apply, hosts);
    upstreams.push(...world.upstreams);
    extra.push(...(world.objects as KubernetesObject[]).filter((o) => o.kind === 'GRPCRoute'));
    expect(await grpcAnswers(`127.0.0.1:${ports.public}`, () => eg.log())).toEqual([
      'echo/v1',
      'echo/v3',
      'echo/v1',
    ]);
  }, 60_000);

  it('intercept tokens: a SecurityPolicy and a ClientTrafficPolicy on the Gateway; the 13 token cases answer as everywhere, and forged claim headers open nothing', async () => {
    const keys = await testTokenKeys();
    await createNamespace(admin, 'tokens');
    const world = await tokenWorld(apply, hosts, 'tokens');
    upstreams.push(...Object.values(world));
    const verification = renderEnvoyGatewayTokenVerification(keys.jwks, 'istio-system/public');
    for (const o of verification) await apply(o);
    // Both policies translated (Accepted), then a valid token opens the preview and forged claim
    // headers do not: Envoy Gateway pushes each policy's part as it comes.
    for (const o of verification)
      await eventually(async () => {
        const live = await admin.get<
          KubernetesObject & {
            status?: { ancestors?: { conditions?: { type: string; status: string }[] }[] };
          }
        >({ apiVersion: o.apiVersion, kind: o.kind, namespace: 'istio-system', name: o.metadata.name });
        return live?.status?.ancestors?.some((a) =>
          a.conditions?.some((c) => c.type === 'Accepted' && c.status === 'True'),
        );
      }, 30_000);
    const base = `http://127.0.0.1:${ports.public}`;
    const valid = await mint({ value: 'pr-42', audience: 'tokens/web', key: keys.current });
    await untilRouted(
      [
        {
          base,
          request: { host: 'web.test', headers: { 'x-switchyard-token': valid } },
          upstream: 'web/pr-42-7f3a2c1',
        },
        {
          base,
          request: {
            host: 'web.test',
            headers: forgedClaimHeaders('tokens/web', 'x-switchyard-preview', 'pr-42'),
          },
          upstream: 'web/v1',
        },
      ],
      () => eg.log(),
      60_000,
    );
    const answers: Record<string, unknown> = {};
    for (const [name, headers] of await tokenCases(keys, 'tokens'))
      answers[name] = await tokenAnswer(base, 'web.test', headers);
    expect(answers).toEqual(TOKEN_CASE_ANSWERS);
    const forged: Record<string, unknown> = {};
    for (const [name, headers] of await forgedClaimCases(keys, 'tokens')) {
      const r = await send(base, { host: 'web.test', headers });
      forged[name] = `${r.status} ${header(r, 'x-switchyard-upstream')}`;
    }
    expect(Object.values(forged)).toEqual(Object.values(forged).map(() => '200 web/v1'));
  }, 90_000);

  it('Envoy Gateway accepted every route it serves, and its Envoy every update', async () => {
    expect(await eg.rejected()).toBe(0);
    const served = [...routes, ...extra].filter(
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
