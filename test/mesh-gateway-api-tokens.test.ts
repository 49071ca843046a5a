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
import { renderTokenVerification } from '../core/istio/request-authentication.js';
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
  startEnvoy,
  startIstiod,
} from './support/mesh.js';
import { createTestNetns, type NetnsUpstream, type TestNetns } from './support/netns.js';
import {
  forgedClaimCases,
  forgedClaimHeaders,
  TOKEN_CASE_ANSWERS,
  tokenAnswer,
  tokenCases,
  tokenPolicyDocs,
  tokenWorld,
} from './support/token-cases.js';
import { mint, type TestTokenKeys, testTokenKeys } from './support/tokens.js';
import { unusedPort } from './support/upstreams.js';

const gate = meshTestGate();
const ns = 'tokens';
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

    beforeAll(async () => {
      keys = await testTokenKeys();
      env = await startEnvtestWithCrds(envtest);
      admin = adminKube(env);
      for (const n of ['istio-system', ns]) await createNamespace(admin, n);
      hosts = await createTestNetns();
      // What the controller writes: the routes and per-version Services, and the EnvoyFilter and
      // RequestAuthentication on the gateway's pods.
      Object.assign(upstreams, await tokenWorld(apply, hosts, ns));
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
        `${tokenPolicyDocs(ns)
          .map((d) => stringify(d))
          .join('---\n')}${gatewayConfig({
          'web/v1': (upstreams.v1 as NetnsUpstream).url,
          'web/v3': (upstreams.v3 as NetnsUpstream).url,
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
      const cases = await forgedClaimCases(keys, ns);
      for (const [name, headers] of cases) {
        const r = await send(base(), { host: 'web.test', headers });
        expect({ name, status: r.status, upstream: header(r, 'x-switchyard-upstream') }).toEqual({
          name,
          status: 200,
          upstream: 'web/v1',
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
      const forged = forgedClaimHeaders(`${ns}/web`, 'x-switchyard-preview', 'pr-42');
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
