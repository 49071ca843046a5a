/**
 * The resources against a real kube-apiserver (envtest): `switchyard crds` is accepted as structural
 * CRDs, the examples' TrafficPolicies and Previews are stored, the API server's own schema rejects
 * a weight of 140, and every object `switchyard render` writes for the examples is accepted under
 * Istio's CRDs (server-side dry run).
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { KubeConfig, type KubernetesObject, KubernetesObjectApi, loadAllYaml } from '@kubernetes/client-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cli, EXAMPLE_FILES, EXAMPLES } from './support/cli.js';
import { type Envtest, sharedEnvtest } from './support/envtest.js';
import { istioCrdsPath } from './support/istio-schemas.js';

const shared = await sharedEnvtest({ istio: false });
/** The examples live in `shop`; this file's own namespace keeps them apart from other files'. */
const NS = 'examples';
const inNamespace = <T extends KubernetesObject>(o: T): T => ({
  ...o,
  metadata: { ...o.metadata, namespace: NS },
});

describe.skipIf(!shared)('resources on a real Kubernetes API server', () => {
  let env: Envtest;
  let api: KubernetesObjectApi;
  beforeAll(async () => {
    env = shared as Envtest;
    const kc = new KubeConfig();
    kc.loadFromString(env.adminKubeconfig);
    api = KubernetesObjectApi.makeApiClient(kc);
    await api.create({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: NS } });
  }, 180_000);
  afterAll(async () => {
    await env?.stop();
  });

  it('stores every TrafficPolicy and Preview of the examples', async () => {
    const docs = EXAMPLE_FILES.flatMap(
      (f) => loadAllYaml(readFileSync(join(EXAMPLES, `${f}.yaml`), 'utf8')) as KubernetesObject[],
    );
    const resources = docs.filter((d) => d.kind === 'TrafficPolicy' || d.kind === 'Preview');
    expect(resources).toHaveLength(11);
    for (const r of resources) {
      const { status: _ignored, ...spec } = r as KubernetesObject & { status?: unknown };
      const created = await api.create(inNamespace(spec as KubernetesObject));
      expect(created.metadata?.uid).toBeTruthy();
    }
    const live = (await api.read({
      apiVersion: 'switchyard.dev/v1alpha1',
      kind: 'TrafficPolicy',
      metadata: { name: 'catalog', namespace: NS },
    })) as KubernetesObject & { spec: { canary: { weight: number; sticky: { cookie: string } } } };
    expect(live.spec.canary).toMatchObject({ weight: 30, sticky: { cookie: 'switchyard-canary' } });
  });

  it("rejects a weight of 140 by the CRD's own schema (422)", async () => {
    const bad = {
      apiVersion: 'switchyard.dev/v1alpha1',
      kind: 'TrafficPolicy',
      metadata: { name: 'bad', namespace: NS },
      spec: { service: 'x', port: 80, stable: 'v1', canary: { version: 'v2', weight: 140 } },
    };
    const err = (await api.create(bad as KubernetesObject).catch((e) => e)) as {
      code?: number;
      body?: string;
    };
    expect(err.code).toBe(422);
    expect(String(err.body)).toMatch(/spec\.canary\.weight/);
  });

  it.runIf(istioCrdsPath() || process.env.CI)(
    "accepts every rendered Istio object under Istio's CRDs (server-side dry run)",
    async () => {
      const r = await cli('render', '-f', EXAMPLES);
      const objects = loadAllYaml(r.stdout) as KubernetesObject[];
      expect(objects.length).toBeGreaterThan(10);
      for (const o of objects) {
        const created = await api.create(inNamespace(o), undefined, 'All');
        expect(created.kind).toBe(o.kind);
      }
    },
  );
});
