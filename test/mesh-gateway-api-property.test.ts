/**
 * The mesh property sample (a fixed seed of the property test's random policies, as
 * test/mesh-property.test.ts sends through VirtualServices) rendered as Gateway API routes and sent
 * through real Envoy configured by istiod: every request built from each policy's own match values
 * (and its preview URLs), with the methods a mirror may be limited to, must reach what `explain`
 * says, although istiod orders the matches most specific first. With the gateway verifying intercept
 * tokens (the RequestAuthentication and EnvoyFilter the controller keeps), routes that require a
 * token are written too, matching three claim headers, so specificity would put them before the
 * one-header intercepts written ahead of them: requests with a token minted for each thing a token
 * stands for must still take the plan's route. Requests whose route the renderer left out (with a
 * problem: a route past one route's limits, an order it cannot keep) are counted, not compared. Envoy's `x-switchyard-upstream` comes from the rule it chose, so the Services need no
 * endpoints (503 "no healthy upstream" still names the destination). No NACK, no refused route.
 */
import type { KubernetesObject } from '@kubernetes/client-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { renderTokenVerification } from '../core/istio/request-authentication.js';
import type { Kube } from '../kube/client.js';
import { adminKube, createNamespace } from './support/cluster.js';
import { type Envtest, startEnvtestWithCrds } from './support/envtest.js';
import { gatewayApiCrdFolder } from './support/gateway-api-crds.js';
import { untilRouted } from './support/http.js';
import {
  type Envoy,
  type Istiod,
  kubernetesGateway,
  meshTestGate,
  startEnvoy,
  startIstiod,
} from './support/mesh.js';
import {
  compareWithExplain,
  renderSample,
  type SampleCase,
  sampleCases,
  tokenSampleCases,
} from './support/property-through-gateway-api.js';
import { MESH_SAMPLE_SEED, meshSample } from './support/random-policies.js';
import { mint, type TestTokenKeys, testTokenKeys } from './support/tokens.js';
import { unusedPort } from './support/upstreams.js';

const gate = meshTestGate();
const WORLDS = 12;
const SAMPLE = meshSample(WORLDS);

describe.skipIf(!gate || !gatewayApiCrdFolder())(
  'a sample of random policies as Gateway API routes through istiod and Envoy',
  () => {
    const { envtest, assets } = gate as NonNullable<typeof gate>;
    let env: Envtest;
    let admin: Kube;
    let istiod: Istiod;
    let gateway: Envoy;
    let port: number;
    const { plan, objects, leftOut } = renderSample(SAMPLE, true);
    let keys: TestTokenKeys;
    const apply = (o: object) => admin.apply(o as KubernetesObject, 'mesh-test', true);

    beforeAll(async () => {
      env = await startEnvtestWithCrds(envtest);
      admin = adminKube(env);
      await createNamespace(admin, 'istio-system');
      for (const ns of new Set(SAMPLE.map((w) => w.ns))) await createNamespace(admin, ns);
      port = await unusedPort();
      for (const name of ['public', 'previews']) await kubernetesGateway(apply, name, port);
      // The preview Services (the preview controller writes them in a cluster); no endpoints.
      const previews = new Map<string, { name: string; namespace: string; port: number }>();
      for (const p of plan.policies)
        for (const r of p.routes)
          for (const d of r.destinations.filter((x) => x.role === 'preview')) {
            const [name, namespace] = d.host.split('.') as [string, string];
            previews.set(d.host, { name, namespace, port: d.port });
          }
      for (const s of previews.values())
        await apply({
          apiVersion: 'v1',
          kind: 'Service',
          metadata: { name: s.name, namespace: s.namespace },
          spec: { ports: [{ name: 'http', port: s.port, protocol: 'TCP' }] },
        });
      keys = await testTokenKeys();
      for (const o of renderTokenVerification({
        jwks: keys.jwks,
        selector: { app: 'gw' },
        claimHeaders: true,
      }))
        await apply(o);
      for (const o of objects) await apply(o);
      istiod = await startIstiod(assets, env.adminKubeconfig, { gatewayApi: true });
      gateway = await startEnvoy(assets, istiod, {
        role: 'router',
        name: 'gw',
        namespace: 'istio-system',
        labels: { app: 'gw' },
      });
    }, 120_000);

    afterAll(async () => {
      await gateway?.stop();
      await istiod?.stop();
      await env?.stop();
    });

    it(`every request of ${WORLDS} random worlds whose route was written reaches what explain says`, async () => {
      const tokens = await tokenSampleCases(SAMPLE, ({ header, value, audience }) =>
        mint({ header, value, audience, key: keys.current }),
      );
      const cases = [...sampleCases(SAMPLE, plan), ...tokens];
      const base = `http://127.0.0.1:${port}`;
      await untilRouted(
        [{ base, request: cases[0] as SampleCase, upstream: '' }],
        () => `${gateway.log()}\n${istiod.log()}`,
      );
      const { wrong, compared, notWritten } = await compareWithExplain(plan, cases, leftOut, () => base);
      console.info(
        `gateway-api mesh property sample: ${compared} requests compared (${tokens.length} with a token), ${notWritten} to routes left out, over ${SAMPLE.length} random policies (seed ${MESH_SAMPLE_SEED})`,
      );
      expect(tokens.length).toBeGreaterThan(10);
      expect(wrong).toEqual([]);
      expect(compared).toBeGreaterThan(2 * notWritten);
      expect(await gateway.rejected()).toBe(0);
    }, 120_000);
  },
);
