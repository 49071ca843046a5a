/**
 * Intercept tokens in Gateway API mode, through istiod and a real gateway Envoy: the
 * RequestAuthentication the controller keeps (core/istio/request-authentication.ts) has the
 * gateway verify the token and copy its `aud` and intercept claims into fixed headers, and the
 * HTTPRoute's token rules match those headers. The 13 token cases get the answers the mesh's
 * VirtualServices and the Node gateway give; and a client that writes the claim headers itself,
 * without a token or beside a token for another policy, opens nothing (Istio removes them first).
 */
import type { KubernetesObject } from '@kubernetes/client-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { compile } from '../core/compiler/compile.js';
import { renderGatewayApi } from '../core/gateway-api/render.js';
import { renderTokenVerification } from '../core/istio/request-authentication.js';
import { TOKEN_CLAIM_HEADERS } from '../core/tokens/intercept-token.js';
import type { Kube } from '../kube/client.js';
import { adminKube, createNamespace } from './support/cluster.js';
import { type Envtest, startEnvtestWithCrds } from './support/envtest.js';
import { gatewayConfig, startTestGateway, type TestGateway } from './support/gateway.js';
import { gatewayApiCrdFolder } from './support/gateway-api-crds.js';
import { header, send, untilRouted } from './support/http.js';
import {
  type Envoy,
  type Istiod,
  kubernetesGateway,
  meshTestGate,
  serviceWithEndpoints,
  startEnvoy,
  startIstiod,
} from './support/mesh.js';
import { createTestNetns, type NetnsUpstream, type TestNetns } from './support/netns.js';
import { load } from './support/random-policies.js';
import { TOKEN_CASE_ANSWERS, tokenAnswer, tokenCases } from './support/token-cases.js';
import { mint, type TestTokenKeys, testTokenKeys } from './support/tokens.js';
import { unusedPort } from './support/upstreams.js';

const gate = meshTestGate();
const ns = 'tokens';
const PREVIEW = 'web-pr-42-7f3a2c1';
const COMMIT = '7f3a2c1d9e8b7a6f5e4d3c2b1a0f9e8d7c6b5a49';
const VERSIONS = ['v1', 'v3'] as const;

const POLICY = {
  apiVersion: 'switchyard.dev/v1alpha1',
  kind: 'TrafficPolicy',
  metadata: { name: 'web', namespace: ns },
  spec: {
    service: 'web',
    port: 80,
    hosts: ['web.test'],
    gateways: ['istio-system/public'],
    stable: 'v1',
    intercepts: [
      {
        name: 'debug',
        match: { header: 'x-debug', exact: 'alice' },
        to: { version: 'v3' },
        requireToken: true,
      },
    ],
    previews: { repository: 'acme/web', image: 'ghcr.io/acme/web:{sha}', requireToken: true },
  },
};
const PREVIEW_DOC = {
  apiVersion: 'switchyard.dev/v1alpha1',
  kind: 'Preview',
  metadata: { name: PREVIEW, namespace: ns },
  spec: { policy: 'web', repository: 'acme/web', pullRequest: 42, commit: COMMIT },
};

describe.skipIf(!gate || !gatewayApiCrdFolder())(
  'intercept tokens through istiod from Gateway API routes',
  () => {
    const { envtest, assets } = gate as NonNullable<typeof gate>;
    let env: Envtest;
    let admin: Kube;
    let istiod: Istiod;
    let gateway: Envoy;
    let node: TestGateway;
    let hosts: TestNetns;
    let port: number;
    let keys: TestTokenKeys;
    const upstreams: Record<string, NetnsUpstream> = {};
    const apply = (o: object) => admin.apply(o as KubernetesObject, 'mesh-test', true);
    const base = () => `http://127.0.0.1:${port}`;
    /** What the controller keeps in Istio's root namespace: the EnvoyFilter, the RequestAuthentication. */
    const verification = () =>
      renderTokenVerification({ jwks: keys.jwks, selector: { app: 'gw' }, claimHeaders: true });
    const claimHeaders = (aud: string, interceptHeader: string, value: string) => ({
      [TOKEN_CLAIM_HEADERS.aud]: aud,
      [TOKEN_CLAIM_HEADERS.intercept_header]: interceptHeader,
      [TOKEN_CLAIM_HEADERS.intercept_value]: value,
    });

    beforeAll(async () => {
      keys = await testTokenKeys();
      env = await startEnvtestWithCrds(envtest);
      admin = adminKube(env);
      for (const n of ['istio-system', ns]) await createNamespace(admin, n);
      hosts = await createTestNetns();
      for (const v of VERSIONS) upstreams[v] = await hosts.startUpstream(`web/${v}`);
      upstreams.preview = await hosts.startUpstream('web/pr-42-7f3a2c1');
      await serviceWithEndpoints(
        apply,
        { namespace: ns, name: 'web', port: 80, selector: { app: 'web' } },
        VERSIONS.map((v) => ({ labels: { app: 'web', version: v }, host: upstreams[v] as NetnsUpstream })),
      );
      const previewLabels = { 'switchyard.dev/preview': PREVIEW };
      await serviceWithEndpoints(apply, { namespace: ns, name: PREVIEW, port: 80, selector: previewLabels }, [
        { labels: previewLabels, host: upstreams.preview as NetnsUpstream },
      ]);
      // What the controller writes: the routes and per-version Services, and the RequestAuthentication
      // on the gateway's pods.
      const { resources, problems } = load([POLICY, PREVIEW_DOC]);
      expect(problems).toEqual([]);
      const rendered = renderGatewayApi(compile(resources).plan, {
        channel: 'experimental',
        tokensVerified: true,
      });
      expect(rendered.problems).toEqual([]);
      for (const o of rendered.objects) await apply(o);
      for (const v of VERSIONS)
        await apply({
          apiVersion: 'discovery.k8s.io/v1',
          kind: 'EndpointSlice',
          metadata: {
            name: `web--${v}-0`,
            namespace: ns,
            labels: { 'kubernetes.io/service-name': `web--${v}` },
          },
          addressType: 'IPv4',
          ports: [{ name: 'http', port: (upstreams[v] as NetnsUpstream).port, protocol: 'TCP' }],
          endpoints: [{ addresses: [(upstreams[v] as NetnsUpstream).address], conditions: { ready: true } }],
        });
      for (const o of verification()) await apply(o);
      port = await unusedPort();
      await kubernetesGateway(apply, 'public', port);
      istiod = await startIstiod(assets, env.adminKubeconfig, { gatewayApi: true });
      gateway = await startEnvoy(assets, istiod, {
        role: 'router',
        name: 'gw',
        namespace: 'istio-system',
        labels: { app: 'gw' },
      });
      await untilRouted([{ base: base(), request: { host: 'web.test' }, upstream: 'web/v1' }], () =>
        istiod.log(),
      );
      node = await startTestGateway(
        `${stringify(POLICY)}---\n${stringify(PREVIEW_DOC)}${gatewayConfig({
          ...Object.fromEntries(VERSIONS.map((v) => [`web/${v}`, (upstreams[v] as NetnsUpstream).url])),
          'web/pr-42-7f3a2c1': (upstreams.preview as NetnsUpstream).url,
        })}`,
        { tokenJwks: keys.jwks },
      );
    }, 180_000);

    afterAll(async () => {
      await node?.close();
      await gateway?.stop();
      await istiod?.stop();
      await Promise.all(Object.values(upstreams).map((u) => u.close()));
      await hosts?.close();
      await env?.stop();
    });

    it('the 13 token cases: Envoy by the HTTPRoute answers as the mesh and the Node gateway do', async () => {
      // The RequestAuthentication reaches the gateway after the routes: wait until a valid token opens the preview.
      const valid = await mint({ value: 'pr-42', audience: `${ns}/web`, key: keys.current });
      await untilRouted(
        [
          {
            base: base(),
            request: { host: 'web.test', headers: { 'x-switchyard-token': valid } },
            upstream: 'web/pr-42-7f3a2c1',
          },
        ],
        () => istiod.log(),
      );
      const envoy: Record<string, unknown> = {};
      const twin: Record<string, unknown> = {};
      for (const [name, headers] of await tokenCases(keys, ns)) {
        envoy[name] = await tokenAnswer(base(), 'web.test', headers);
        twin[name] = await tokenAnswer(node.base, 'web.test', headers);
      }
      expect(envoy).toEqual(TOKEN_CASE_ANSWERS);
      expect(twin).toEqual(envoy);
      expect(await gateway.rejected()).toBe(0);
    }, 60_000);

    it('claim headers a client writes itself open nothing: without a token, beside another policy’s token, or beside a valid one', async () => {
      const forOther = await mint({ value: 'pr-42', audience: `${ns}/other`, key: keys.current });
      const wrongValue = await mint({
        header: 'x-debug',
        value: 'bob',
        audience: `${ns}/web`,
        key: keys.current,
      });
      const cases: [string, Record<string, string>, string][] = [
        [
          'no token, the preview claims',
          claimHeaders(`${ns}/web`, 'x-switchyard-preview', 'pr-42'),
          'web/v1',
        ],
        ['no token, the intercept claims', claimHeaders(`${ns}/web`, 'x-debug', 'alice'), 'web/v1'],
        [
          'a token for another policy, this policy’s claims',
          { 'x-switchyard-token': forOther, ...claimHeaders(`${ns}/web`, 'x-switchyard-preview', 'pr-42') },
          'web/v1',
        ],
        [
          'a token for the wrong value, the right value’s claims',
          { 'x-switchyard-token': wrongValue, ...claimHeaders(`${ns}/web`, 'x-debug', 'alice') },
          'web/v1',
        ],
      ];
      for (const [name, headers, expected] of cases) {
        const r = await send(base(), { host: 'web.test', headers });
        expect({ name, status: r.status, upstream: header(r, 'x-switchyard-upstream') }).toEqual({
          name,
          status: 200,
          upstream: expected,
        });
      }
    });

    it('why the EnvoyFilter: without it, forged claim headers choose the route (Envoy drops them only after routing)', async () => {
      const [removal] = verification();
      const ref = {
        apiVersion: removal?.apiVersion,
        kind: removal?.kind,
        namespace: 'istio-system',
        name: removal?.metadata.name,
      };
      expect(ref.kind).toBe('EnvoyFilter');
      const forged = claimHeaders(`${ns}/web`, 'x-switchyard-preview', 'pr-42');
      try {
        await admin.delete(ref as never);
        await untilRouted(
          [{ base: base(), request: { host: 'web.test', headers: forged }, upstream: 'web/pr-42-7f3a2c1' }],
          () => istiod.log(),
        );
      } finally {
        await apply(removal as object);
      }
      await untilRouted(
        [{ base: base(), request: { host: 'web.test', headers: forged }, upstream: 'web/v1' }],
        () => istiod.log(),
      );
      expect(await gateway.rejected()).toBe(0);
    }, 60_000);
  },
);
