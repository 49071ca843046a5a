/**
 * The TrafficPolicy reconciler (mesh mode) against a real kube-apiserver with Istio's CRDs: it writes
 * the Istio objects with owner references, reports conditions, changes only weights when the canary
 * moves, reverts a foreign edit, never touches a foreign VirtualService (Conflict), routes a preview
 * once it is Ready, and removes a subset only once no VirtualService has named it for a grace
 * period; and the release engineer's `switchyard canary set/status` against it.
 */
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SUBSET_GRACE_MS } from '../controllers/backends/istio.js';
import { reconcileTrafficPolicy } from '../controllers/traffic-policy.js';
import { clientNodeKube, type Kube, kubeConfigFrom } from '../kube/client.js';
import { cli, tempFiles } from './support/cli.js';
import { type Envtest, sharedEnvtest } from './support/envtest.js';

const shared = await sharedEnvtest({ istio: true });

type Obj = import('@kubernetes/client-node').KubernetesObject & {
  apiVersion: string;
  kind: string;
  metadata: { name: string; uid?: string; labels?: Record<string, string> };
  spec: Spec;
  status?: {
    conditions?: { type: string; status: string; reason: string; message: string }[];
    written?: unknown[];
  };
};
type Spec = {
  hosts: string[];
  http: { name: string; route: { weight: number }[] }[];
  subsets: { name: string }[];
  [field: string]: unknown;
};

describe.skipIf(!shared)('TrafficPolicy reconciler on a real API server', () => {
  let env: Envtest;
  let kube: Kube;
  const ns = 'shop';
  const get = (apiVersion: string, kind: string, name: string) =>
    kube.get<Obj>({ apiVersion, kind, namespace: ns, name }) as Promise<Obj | undefined>;
  const vs = (name = 'checkout') => get('networking.istio.io/v1', 'VirtualService', name);
  const dr = () => get('networking.istio.io/v1', 'DestinationRule', 'checkout');
  const policy = () => get('switchyard.dev/v1alpha1', 'TrafficPolicy', 'checkout');
  const cond = async (type: string) =>
    (await policy())?.status?.conditions?.find((c: { type: string }) => c.type === type);
  const applyPolicy = (spec: Record<string, unknown>) =>
    kube.apply(
      {
        apiVersion: 'switchyard.dev/v1alpha1',
        kind: 'TrafficPolicy',
        metadata: { name: 'checkout', namespace: ns },
        spec,
      } as never,
      'test-author',
      true,
    );
  const baseSpec = {
    service: 'checkout',
    port: 8080,
    hosts: ['shop.example.com'],
    gateways: ['istio-system/public'],
    stable: 'v1',
    canary: { version: 'v2', weight: 20 },
    intercepts: [{ name: 'alice', match: { header: 'x-user', exact: 'alice' }, to: { version: 'v3' } }],
    mirror: { to: { version: 'v2' }, percent: 10, methods: ['GET'] },
    rateLimits: [{ name: 'per-key', key: { header: 'x-api-key' }, limit: 100, window: '1m' }],
    previews: { repository: 'acme/shop', domain: 'preview.example.com', gateway: 'istio-system/previews' },
  };

  beforeAll(async () => {
    env = shared as Envtest;
    kube = clientNodeKube(kubeConfigFrom(env.adminKubeconfig));
    await kube.apply(
      { apiVersion: 'v1', kind: 'Namespace', metadata: { name: ns } } as never,
      'test-author',
      true,
    );
  }, 180_000);
  afterAll(async () => {
    await env?.stop();
  });

  it('writes DestinationRule, VirtualService and EnvoyFilter, owned by the policy, and reports Ready', async () => {
    const p = (await applyPolicy(baseSpec)) as unknown as Obj;
    const result = await reconcileTrafficPolicy(kube, ns, 'checkout');
    expect(result?.conditions.filter((c) => c.status === 'True' && c.type !== 'Ready')).toEqual([]);
    expect(result?.writes).toEqual([
      'apply DestinationRule shop/checkout',
      'apply VirtualService shop/checkout',
      'apply EnvoyFilter shop/checkout-ratelimit-all',
    ]);
    for (const o of [
      await vs(),
      await dr(),
      await get('networking.istio.io/v1alpha3', 'EnvoyFilter', 'checkout-ratelimit-all'),
    ]) {
      expect(o?.metadata.ownerReferences).toEqual([
        expect.objectContaining({ uid: p.metadata.uid, controller: true }),
      ]);
      expect(o?.metadata.labels?.['app.kubernetes.io/managed-by']).toBe('switchyard');
    }
    expect((await dr())?.spec.subsets.map((s: { name: string }) => s.name)).toEqual(['v1', 'v2', 'v3']);
    expect(await cond('Ready')).toMatchObject({
      status: 'True',
      reason: 'Reconciled',
      observedGeneration: 1,
    });
    expect(await cond('Conflict')).toMatchObject({ status: 'False' });
    expect((await policy())?.status?.written).toHaveLength(3);
  });

  it('a canary move changes only the weights', async () => {
    const before = (await vs())?.spec;
    await applyPolicy({ ...baseSpec, canary: { version: 'v2', weight: 30 } });
    await reconcileTrafficPolicy(kube, ns, 'checkout');
    const after = (await vs())?.spec;
    const weights = (spec?: Spec) => spec?.http.map((r) => r.route.map((d) => d.weight)) ?? [];
    expect(weights(after)).toEqual(weights(before).map((w: number[]) => (w.length === 2 ? [70, 30] : w)));
    const stripWeights = (spec?: Spec) =>
      JSON.parse(JSON.stringify(spec, (k, v) => (k === 'weight' ? undefined : v)));
    expect(stripWeights(after)).toEqual(stripWeights(before));
  });

  it('reverts a foreign edit to a VirtualService it owns', async () => {
    const owned = (await vs()) as Obj;
    const split = owned.spec.http.at(-1)?.route as [{ weight: number }, { weight: number }];
    split[0].weight = 0;
    split[1].weight = 100;
    await kube.apply(
      {
        apiVersion: owned.apiVersion,
        kind: owned.kind,
        metadata: { name: 'checkout', namespace: ns },
        spec: { hosts: owned.spec.hosts, http: owned.spec.http },
      } as never,
      'kubectl-edit',
      true,
    );
    expect((await vs())?.spec.http.at(-1)?.route[1]?.weight).toBe(100);
    const result = await reconcileTrafficPolicy(kube, ns, 'checkout');
    expect((await vs())?.spec.http.at(-1)?.route[1]?.weight).toBe(30);
    // Told apart from a change of the policy's own, so it can be counted and reported.
    expect(result?.reverted).toEqual(['VirtualService shop/checkout']);
    expect(result?.writes).toEqual(['apply VirtualService shop/checkout']);
  });

  it('writes nothing when nothing changed', async () => {
    const before = (await vs())?.metadata.resourceVersion;
    const result = await reconcileTrafficPolicy(kube, ns, 'checkout');
    expect(result?.writes).toEqual([]);
    expect(result?.reverted).toEqual([]);
    expect((await vs())?.metadata.resourceVersion).toBe(before);
  });

  it('routes a preview once it is Ready, with its own VirtualService for the preview URL', async () => {
    const commit = '7f3a2c1e9b0d4c2a8f6e5d4c3b2a1f0e9d8c7b6a';
    await kube.apply(
      {
        apiVersion: 'switchyard.dev/v1alpha1',
        kind: 'Preview',
        metadata: { name: 'checkout-pr-42-7f3a2c1', namespace: ns },
        spec: { policy: 'checkout', repository: 'acme/shop', pullRequest: 42, commit },
      } as never,
      'test-author',
      true,
    );
    await reconcileTrafficPolicy(kube, ns, 'checkout');
    expect((await vs())?.spec.http.some((r: { name: string }) => r.name === 'preview-pr-42')).toBe(false); // Pending: no route
    const preview = (await get('switchyard.dev/v1alpha1', 'Preview', 'checkout-pr-42-7f3a2c1')) as Obj;
    await kube.replaceStatus('switchyard.dev', 'v1alpha1', 'previews', {
      ...preview,
      status: { phase: 'Ready' },
    } as never);
    await reconcileTrafficPolicy(kube, ns, 'checkout');
    expect((await vs())?.spec.http.map((r: { name: string }) => r.name)).toContain('preview-pr-42');
    expect((await vs('checkout-previews'))?.spec.hosts).toEqual([
      'pr-42-7f3a2c1--checkout.preview.example.com',
      'pr-42--checkout.preview.example.com',
    ]);
  });

  it('keeps a subset no VirtualService names for the grace period, then removes it; prunes what is no longer wanted', async () => {
    const { canary: _c, mirror: _m, rateLimits: _r, ...rest } = baseSpec;
    await applyPolicy({ ...rest, intercepts: [] });
    const t0 = Date.parse('2026-11-30T12:00:00Z');
    const at = (ms: number) => ({ now: () => new Date(t0 + ms) });
    const names = async () => (await dr())?.spec.subsets.map((s: { name: string }) => s.name);
    const first = await reconcileTrafficPolicy(kube, ns, 'checkout', at(0));
    expect(first?.writes).toEqual([
      'apply DestinationRule shop/checkout (subsets wanted and in force)',
      'apply VirtualService shop/checkout',
      // checkout-previews did not change: it is not written again
      'delete EnvoyFilter shop/checkout-ratelimit-all',
    ]);
    // The routes name v1 only; v2 and v3 stay while proxies may still hold the old routes.
    expect(JSON.stringify((await vs())?.spec.http)).toMatch(/"subset":"v1"/);
    expect(JSON.stringify((await vs())?.spec.http)).not.toMatch(/"subset":"v[23]"/);
    expect(await names()).toEqual(['v1', 'v2', 'v3']);
    expect(first?.requeueAfterMs).toBe(SUBSET_GRACE_MS);
    // A reconcile within the grace period changes nothing and knows how long is left.
    const during = await reconcileTrafficPolicy(kube, ns, 'checkout', at(SUBSET_GRACE_MS - 1_000));
    expect(during?.writes).toEqual([]);
    expect(during?.requeueAfterMs).toBe(1_000);
    const after = await reconcileTrafficPolicy(kube, ns, 'checkout', at(SUBSET_GRACE_MS));
    expect(after?.writes).toEqual(['apply DestinationRule shop/checkout (subsets no longer used removed)']);
    expect(after?.requeueAfterMs).toBeUndefined();
    expect(await names()).toEqual(['v1']);
    expect((await dr())?.metadata.annotations?.['switchyard.dev/retired-subsets']).toBeUndefined();
  });

  it('leaves a foreign VirtualService on the same host alone and reports Conflict', async () => {
    const foreign = {
      apiVersion: 'networking.istio.io/v1',
      kind: 'VirtualService',
      metadata: { name: 'legacy', namespace: ns },
      spec: { hosts: ['shop.example.com'], http: [{ route: [{ destination: { host: 'legacy' } }] }] },
    };
    await kube.apply(foreign as never, 'someone-else', true);
    const before = await vs('legacy');
    const result = await reconcileTrafficPolicy(kube, ns, 'checkout');
    expect(result?.writes).toEqual([]);
    expect(await cond('Conflict')).toMatchObject({ status: 'True', reason: 'Conflict' });
    expect((await cond('Conflict'))?.message).toMatch(
      /VirtualService shop\/legacy \(not managed by Switchyard\) already serves shop\.example\.com/,
    );
    expect(await cond('Ready')).toMatchObject({ status: 'False', reason: 'Conflict' });
    expect((await vs('legacy'))?.metadata).toEqual(before?.metadata);
  });

  it('a policy that loses a host serves none of its hosts, so it holds none from a later policy (rule 7, as the gateway judges)', async () => {
    const claimsNs = 'claims';
    await kube.apply(
      { apiVersion: 'v1', kind: 'Namespace', metadata: { name: claimsNs } } as never,
      'test-author',
      true,
    );
    // Created a second apart: the claim order is the creation order.
    for (const [name, hosts] of [
      ['a', ['x.example.com']],
      ['b', ['x.example.com', 'y.example.com']],
      ['c', ['y.example.com']],
    ] as const) {
      await kube.apply(
        {
          apiVersion: 'switchyard.dev/v1alpha1',
          kind: 'TrafficPolicy',
          metadata: { name, namespace: claimsNs },
          spec: { service: name, port: 8080, hosts, stable: 'v1' },
        } as never,
        'test-author',
        true,
      );
      await new Promise((r) => setTimeout(r, 1100));
    }
    const ready = async (name: string) => {
      await reconcileTrafficPolicy(kube, claimsNs, name);
      const p = await kube.get<Obj>({
        apiVersion: 'switchyard.dev/v1alpha1',
        kind: 'TrafficPolicy',
        namespace: claimsNs,
        name,
      });
      return p?.status?.conditions?.find((c) => c.type === 'Ready');
    };
    expect(await ready('a')).toMatchObject({ status: 'True' });
    expect(await ready('b')).toMatchObject({ status: 'False', reason: 'Conflict' });
    expect((await ready('b'))?.message).toBe('nothing was written because of the Conflict condition');
    // b serves nothing, so y.example.com is c's: written, not a Conflict with b.
    expect(await ready('c')).toMatchObject({ status: 'True', reason: 'Reconciled' });
    // The compiler (the gateway) judges the same three policies alike.
    const { compile } = await import('../core/compiler/compile.js');
    const policies = await kube.list<Obj>('switchyard.dev/v1alpha1', 'TrafficPolicy', claimsNs);
    const problems = compile({
      policies: JSON.parse(JSON.stringify(policies)),
      previews: [],
    }).problems.filter((p) => p.code === 'SY_HOST_CONFLICT');
    expect(problems.map((p) => p.message)).toEqual([
      expect.stringMatching(
        /^host x\.example\.com overlaps x\.example\.com, which TrafficPolicy claims\/a already serves/,
      ),
    ]);
  });

  it('switchyard canary set/status: changes only the weight, shows target and weight in force, refuses bad input', async () => {
    const kubeconfig = join(tempFiles({ 'kubeconfig.yaml': env.adminKubeconfig }), 'kubeconfig.yaml');
    const k = ['-n', ns, '--kubeconfig', kubeconfig];
    await kube.apply(
      {
        apiVersion: 'switchyard.dev/v1alpha1',
        kind: 'TrafficPolicy',
        metadata: { name: 'payments', namespace: ns },
        spec: {
          service: 'payments',
          port: 80,
          hosts: ['payments.example.com'],
          stable: 'v1',
          canary: { version: 'v2', weight: 10 },
        },
      } as never,
      'gitops',
      true,
    );
    await reconcileTrafficPolicy(kube, ns, 'payments');
    expect((await cli('canary', 'set', 'payments', '140', ...k)).stderr).toMatch(
      /weight: expected an integer from 0 to 100 \(got "140"\) \[SY_BAD_REQUEST\]/,
    );
    const missing = await cli('canary', 'set', 'nope', '10', ...k);
    expect(missing.code).toBe(2);
    expect(missing.stderr).toMatch(/no TrafficPolicy shop\/nope/);

    const set = await cli('canary', 'set', 'payments', '50', ...k);
    expect(set.code).toBe(0);
    expect(set.stdout).toBe('shop/payments: canary v2 weight 10 -> 50\n');
    const before = JSON.parse((await cli('canary', 'status', 'payments', ...k, '-o', 'json')).stdout);
    expect(before).toMatchObject({ targetWeight: 50, observedWeight: 10, canary: 'v2', stable: 'v1' });
    await reconcileTrafficPolicy(kube, ns, 'payments');
    const after = JSON.parse((await cli('canary', 'status', 'payments', ...k, '-o', 'json')).stdout);
    expect(after).toMatchObject({ targetWeight: 50, observedWeight: 50 });
    expect(after.ready).toMatch(/^True \(Reconciled\)/);
    const live = await get('switchyard.dev/v1alpha1', 'TrafficPolicy', 'payments');
    expect(live?.spec).toMatchObject({
      service: 'payments',
      hosts: ['payments.example.com'],
      canary: { version: 'v2', weight: 50 },
    });
  });
});
