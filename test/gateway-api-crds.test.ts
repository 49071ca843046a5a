/**
 * What the Gateway API renderer writes is accepted by a real API server with the Gateway API v1.6.3
 * CRDs of each channel (and Envoy Gateway v1.9.1's, for the BackendTrafficPolicies of rate limits) (server-side apply, dryRun=All: the OpenAPI schemas and CEL rules), for
 * every example and a fixed-seed sample of random policies; and the channel matters: retries
 * rendered for the experimental channel are refused by the standard one.
 */
import { KubeConfig, type KubernetesObject, KubernetesObjectApi } from '@kubernetes/client-node';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadAndCompile } from '../cli/input.js';
import { compile } from '../core/compiler/compile.js';
import type { KubeObject } from '../core/compiler/objects.js';
import { renderEnvoyGatewayTokenVerification } from '../core/gateway-api/envoy-gateway-tokens.js';
import type { GatewayApiChannel } from '../core/gateway-api/http-route.js';
import { renderGatewayApi } from '../core/gateway-api/render.js';
import { EXAMPLES } from './support/cli.js';
import { adminKube, createNamespace } from './support/cluster.js';
import { ENVOY_GATEWAY_SKIP_REASON, envoyGatewayAssets, envoyGatewayCrds } from './support/envoy-gateway.js';
import {
  ENVTEST_SKIP_REASON,
  type Envtest,
  envtestAssets,
  installCrds,
  startEnvtest,
} from './support/envtest.js';
import { GATEWAY_API_SKIP_REASON, gatewayApiCrdFolder, gatewayApiCrds } from './support/gateway-api-crds.js';
import { load, worldArb } from './support/random-policies.js';
import { testTokenKeys } from './support/tokens.js';

const assets = envtestAssets();
const crds = gatewayApiCrdFolder();
const egAssets = assets && crds ? envoyGatewayAssets() : undefined;
const missing = !assets
  ? ENVTEST_SKIP_REASON
  : !crds
    ? GATEWAY_API_SKIP_REASON
    : !egAssets
      ? ENVOY_GATEWAY_SKIP_REASON
      : undefined;
if (missing && process.env.CI) throw new Error(`CI=true, but ${missing}`);
if (missing) console.warn(missing);

/** Examples and 40 random worlds (fixed seed), rendered for `channel`. */
async function rendered(channel: GatewayApiChannel): Promise<KubeObject[]> {
  const examples = await loadAndCompile([EXAMPLES]);
  const worlds = fc.sample(worldArb, { numRuns: 40, seed: 20261206 });
  const grpc = load([
    {
      apiVersion: 'switchyard.dev/v1alpha1',
      kind: 'TrafficPolicy',
      metadata: { name: 'grpc', namespace: 'shop' },
      spec: {
        service: 'grpc',
        port: 9000,
        stable: 'v1',
        upstreamProtocol: 'http2',
        canary: { version: 'v2', weight: 10 },
        intercepts: [{ name: 'alice', match: { header: 'x-user', exact: 'alice' }, to: { version: 'v3' } }],
        mirror: { to: { version: 'v2' }, percent: 5 },
      },
    },
    {
      apiVersion: 'switchyard.dev/v1alpha1',
      kind: 'TrafficPolicy',
      metadata: { name: 'limited', namespace: 'shop' },
      spec: {
        service: 'limited',
        port: 80,
        stable: 'v1',
        hosts: ['limited.example.com'],
        gateways: ['istio-system/public'],
        previews: { repository: 'acme/limited', domain: 'preview.example.com' },
        rateLimits: [
          { name: 'per-key', key: { header: 'x-api-key' }, limit: 100, window: '1m' },
          { name: 'per-ip', key: { clientIp: {} }, limit: 5, window: '1s', appliesTo: 'previews' },
          { name: 'route', key: { route: {} }, limit: 100000, window: '24h' },
        ],
      },
    },
    {
      apiVersion: 'switchyard.dev/v1alpha1',
      kind: 'Preview',
      metadata: { name: 'limited-pr-7-abcdef0', namespace: 'shop' },
      spec: { policy: 'limited', repository: 'acme/limited', pullRequest: 7, commit: 'abcdef0' },
    },
  ]).resources;
  const plans = [
    examples.plan,
    compile(grpc).plan,
    ...worlds.map((world) => compile(load(world.flatMap((w) => [w.policy, ...w.previews])).resources).plan),
  ];
  const keys = await testTokenKeys();
  return [
    // What verifies tokens on Envoy Gateway, for a Gateway of the examples.
    ...renderEnvoyGatewayTokenVerification(keys.jwks, 'istio-system/public'),
    ...plans.flatMap(
      (plan) => renderGatewayApi(plan, { channel, tokensVerified: true, envoyGatewayPolicies: true }).objects,
    ),
  ];
}

async function dryRunApply(api: KubernetesObjectApi, o: KubeObject): Promise<string | undefined> {
  try {
    await api.patch(
      o as KubernetesObject,
      undefined,
      'All',
      'switchyard-gateway-api-test',
      true,
      'application/apply-patch+yaml' as never,
    );
    return undefined;
  } catch (e) {
    return `${o.kind} ${o.metadata.namespace}/${o.metadata.name}: ${(e as { body?: string }).body ?? String(e)}`;
  }
}

describe.skipIf(missing)('Gateway API v1.6.3 CRDs on a real API server', () => {
  let env: Envtest;
  let api: KubernetesObjectApi;

  beforeAll(async () => {
    env = await startEnvtest(assets as string);
    await installCrds(env.adminKubeconfig, [
      ...gatewayApiCrds(crds as string, 'standard'),
      ...envoyGatewayCrds(egAssets as string, [
        'backendtrafficpolicies',
        'securitypolicies',
        'clienttrafficpolicies',
      ]),
    ]);
    for (const ns of ['shop', 'team-b', 'payments', 'istio-system'])
      await createNamespace(adminKube(env), ns);
    const kc = new KubeConfig();
    kc.loadFromString(env.adminKubeconfig);
    api = KubernetesObjectApi.makeApiClient(kc);
  }, 60_000);
  afterAll(() => env?.stop());

  // The tests run in order: standard CRDs first, then the experimental ones over them.
  it('standard channel: every route and Service rendered for it is accepted', async () => {
    const objects = await rendered('standard');
    expect(objects.filter((o) => o.kind === 'HTTPRoute').length).toBeGreaterThan(40);
    // Rate limits as Envoy Gateway's BackendTrafficPolicy: the policy-wide one and the previews' one.
    expect(objects.filter((o) => o.kind === 'BackendTrafficPolicy').map((o) => o.metadata.name)).toEqual(
      expect.arrayContaining(['limited-ratelimit', 'limited-ratelimit-previews']),
    );
    expect(objects.some((o) => o.kind === 'GRPCRoute')).toBe(true);
    const refused = (await Promise.all(objects.map((o) => dryRunApply(api, o)))).filter(Boolean);
    expect(refused).toEqual([]);
  }, 60_000);

  it('standard channel: a route with retries (rendered for the experimental channel) is refused', async () => {
    const retrying = (await rendered('experimental')).find((o) =>
      ((o.spec.rules as { retry?: unknown }[] | undefined) ?? []).some((r) => r.retry),
    ) as KubeObject;
    expect(retrying).toBeDefined();
    expect(await dryRunApply(api, retrying)).toMatch(/retry/);
  }, 60_000);

  it('experimental channel: every route and Service rendered for it is accepted, retries included', async () => {
    await installCrds(env.adminKubeconfig, gatewayApiCrds(crds as string, 'experimental'));
    const objects = await rendered('experimental');
    expect(
      objects.some((o) => ((o.spec.rules as { retry?: unknown }[] | undefined) ?? []).some((r) => r.retry)),
    ).toBe(true);
    const refused = (await Promise.all(objects.map((o) => dryRunApply(api, o)))).filter(Boolean);
    expect(refused).toEqual([]);
  }, 60_000);
});
