/**
 * Ownership on a real API server: Switchyard never writes over, or deletes, an object of a name it
 * wants that it did not create for that owner. The owner gets `NameTaken` naming the object, and
 * the object keeps its resourceVersion.
 */
import type { KubernetesObject } from '@kubernetes/client-node';
import { beforeAll, describe, expect, it } from 'vitest';
import { reconcilePreview } from '../controllers/preview.js';
import { reconcileTrafficPolicy } from '../controllers/traffic-policy.js';
import type { Kube } from '../kube/client.js';
import { adminKube, applyRbac, createNamespace, stableWorkload } from './support/cluster.js';
import { type Envtest, sharedEnvtest } from './support/envtest.js';

const shared = await sharedEnvtest({ istio: true });
const ns = 'trust-ownership';
const API = 'switchyard.dev/v1alpha1';

type Conditions = {
  status?: {
    phase?: string;
    conditions?: { type: string; status: string; reason: string; message: string }[];
  };
};

describe.skipIf(!shared)('Switchyard never takes over what it did not create', () => {
  const env = shared as Envtest;
  let kube: Kube;
  const get = (apiVersion: string, kind: string, name: string) =>
    kube.get<KubernetesObject & Conditions>({ apiVersion, kind, namespace: ns, name });
  const versionOf = async (apiVersion: string, kind: string, name: string) =>
    (await get(apiVersion, kind, name))?.metadata?.resourceVersion;
  const policy = (name: string, spec: Record<string, unknown>) =>
    kube.apply(
      {
        apiVersion: API,
        kind: 'TrafficPolicy',
        metadata: { name, namespace: ns },
        spec: { port: 80, stable: 'v1', ...spec },
      } as KubernetesObject,
      'test',
      true,
    );

  beforeAll(async () => {
    kube = adminKube(env);
    await applyRbac(kube);
    await createNamespace(kube, ns);
    await stableWorkload(kube, ns, 'checkout');
    await policy('shop', { service: 'checkout', previews: { repository: 'acme/shop', image: 'img:{sha7}' } });
  });

  it('a Preview named like a production Service fails with NameTaken and leaves the Service alone, also when deleted', async () => {
    // `checkout` is the team's Service; a Preview of that name would clone into Service `checkout`.
    const before = await versionOf('v1', 'Service', 'checkout');
    await kube.apply(
      {
        apiVersion: API,
        kind: 'Preview',
        metadata: { name: 'checkout', namespace: ns },
        spec: { policy: 'shop', repository: 'acme/shop', pullRequest: 1, commit: 'abcdef1234' },
      } as KubernetesObject,
      'tenant-b',
      true,
    );
    const result = await reconcilePreview(kube, ns, 'checkout');
    expect(result?.phase).toBe('Failed');
    expect(result?.reason).toBe('NameTaken');
    const status = (await get(API, 'Preview', 'checkout'))?.status;
    expect(status?.phase).toBe('Failed');
    expect(status?.conditions?.[0]?.message).toContain(`Service ${ns}/checkout`);
    expect(await versionOf('v1', 'Service', 'checkout')).toBe(before);
    expect(await get('apps/v1', 'Deployment', 'checkout')).toBeUndefined(); // nothing half-written

    await kube.delete({ apiVersion: API, kind: 'Preview', namespace: ns, name: 'checkout' });
    await reconcilePreview(kube, ns, 'checkout'); // the finalizer's turn
    expect(await get(API, 'Preview', 'checkout')).toBeUndefined();
    expect(await versionOf('v1', 'Service', 'checkout')).toBe(before);
  });

  it("a Preview of another repository than its policy's fails with RepositoryMismatch and deploys nothing", async () => {
    await kube.apply(
      {
        apiVersion: API,
        kind: 'Preview',
        metadata: { name: 'shop-pr-9-abcdef1', namespace: ns },
        spec: { policy: 'shop', repository: 'someone/fork', pullRequest: 9, commit: 'abcdef1234' },
      } as KubernetesObject,
      'tenant-b',
      true,
    );
    const result = await reconcilePreview(kube, ns, 'shop-pr-9-abcdef1');
    expect(result).toMatchObject({ phase: 'Failed', reason: 'RepositoryMismatch' });
    expect((await get(API, 'Preview', 'shop-pr-9-abcdef1'))?.status?.conditions?.[0]?.message).toContain(
      'spec.repository someone/fork is not the repository policy shop takes previews of (acme/shop)',
    );
    expect(await get('apps/v1', 'Deployment', 'shop-pr-9-abcdef1')).toBeUndefined();
  });

  it('a workload the API server refuses for good (422) fails the Preview with its message, instead of a silent retry loop', async () => {
    await kube.apply(
      {
        apiVersion: API,
        kind: 'Preview',
        metadata: { name: 'shop-pr-10-abcdef1', namespace: ns },
        spec: {
          policy: 'shop',
          repository: 'acme/shop',
          pullRequest: 10,
          commit: 'abcdef1234',
          env: { 'BAD=NAME': 'x' },
        },
      } as KubernetesObject,
      'tenant-b',
      true,
    );
    const result = await reconcilePreview(kube, ns, 'shop-pr-10-abcdef1'); // returns: nothing to retry
    expect(result).toMatchObject({ phase: 'Failed', reason: 'Rejected' });
    const message = (await get(API, 'Preview', 'shop-pr-10-abcdef1'))?.status?.conditions?.[0]?.message;
    expect(message).toMatch(
      /^the API server refused the preview's workload: Deployment\.apps "shop-pr-10-abcdef1" is invalid: .*env\[\d+\]\.name: Invalid value: "BAD=NAME"/,
    );
  });

  it("a policy can narrow what previews run with: another ServiceAccount, the stable pods' secrets removed from env", async () => {
    const labels = { app: 'pay', version: 'v1' };
    await kube.apply(
      {
        apiVersion: 'v1',
        kind: 'Service',
        metadata: { name: 'pay', namespace: ns },
        spec: { selector: { app: 'pay' }, ports: [{ port: 80 }] },
      } as KubernetesObject,
      'test',
      true,
    );
    await kube.apply(
      {
        apiVersion: 'apps/v1',
        kind: 'Deployment',
        metadata: { name: 'pay-v1', namespace: ns },
        spec: {
          selector: { matchLabels: labels },
          template: {
            metadata: { labels },
            spec: {
              serviceAccountName: 'pay-production',
              containers: [
                {
                  name: 'pay',
                  image: 'pay:v1',
                  env: [
                    { name: 'DB_PASSWORD', value: 'secret' },
                    { name: 'LOG', value: 'info' },
                  ],
                },
                { name: 'proxy', image: 'proxy:1', env: [{ name: 'DB_PASSWORD', value: 'secret' }] },
              ],
            },
          },
        },
      } as KubernetesObject,
      'test',
      true,
    );
    await policy('pay', {
      service: 'pay',
      previews: {
        repository: 'acme/pay',
        image: 'pay:{sha7}',
        serviceAccountName: 'preview-runner',
        removeEnv: ['DB_PASSWORD'],
      },
    });
    await kube.apply(
      {
        apiVersion: API,
        kind: 'Preview',
        metadata: { name: 'pay-pr-1-abcdef1', namespace: ns },
        spec: { policy: 'pay', repository: 'acme/pay', pullRequest: 1, commit: 'abcdef1234' },
      } as KubernetesObject,
      'pr-bot',
      true,
    );
    await reconcilePreview(kube, ns, 'pay-pr-1-abcdef1');
    const clone = await kube.get<
      KubernetesObject & {
        spec: {
          template: { spec: { serviceAccountName: string; containers: { env?: { name: string }[] }[] } };
        };
      }
    >({ apiVersion: 'apps/v1', kind: 'Deployment', namespace: ns, name: 'pay-pr-1-abcdef1' });
    expect(clone?.spec.template.spec.serviceAccountName).toBe('preview-runner');
    expect(clone?.spec.template.spec.containers.map((c) => (c.env ?? []).map((e) => e.name))).toEqual([
      ['LOG'],
      [],
    ]);
  });

  it('previews.maxActive: a pull request beyond the cap is refused (LimitReached) until one closes; others cannot fill it', async () => {
    await stableWorkload(kube, ns, 'cap');
    await policy('cap', {
      service: 'cap',
      previews: { repository: 'acme/cap', image: 'cap:{sha7}', maxActive: 1 },
    });
    const preview = (pr: number, repository = 'acme/cap') =>
      kube.apply(
        {
          apiVersion: API,
          kind: 'Preview',
          metadata: { name: `cap-pr-${pr}-abcdef1`, namespace: ns },
          spec: { policy: 'cap', repository, pullRequest: pr, commit: 'abcdef1234' },
        } as KubernetesObject,
        'pr-bot',
        true,
      );
    await preview(9, 'mallory/fork'); // another repository's Preview takes no place
    await preview(1);
    await preview(2);
    expect((await reconcilePreview(kube, ns, 'cap-pr-1-abcdef1'))?.phase).toBe('Deploying');
    const refused = await reconcilePreview(kube, ns, 'cap-pr-2-abcdef1');
    expect(refused).toMatchObject({ phase: 'Failed', reason: 'LimitReached' });
    expect((await get(API, 'Preview', 'cap-pr-2-abcdef1'))?.status?.conditions?.[0]?.message).toMatch(
      /at most 1 pull requests at once \(spec\.previews\.maxActive\)/,
    );
    expect(await get('apps/v1', 'Deployment', 'cap-pr-2-abcdef1')).toBeUndefined();
    await kube.delete({ apiVersion: API, kind: 'Preview', namespace: ns, name: 'cap-pr-1-abcdef1' });
    await reconcilePreview(kube, ns, 'cap-pr-1-abcdef1'); // its finalizer's turn
    expect((await reconcilePreview(kube, ns, 'cap-pr-2-abcdef1'))?.phase).toBe('Deploying');
  });

  it('gateway mode: a per-version Service name that a team already uses is NameTaken, not forced over', async () => {
    await kube.apply(
      {
        apiVersion: 'v1',
        kind: 'Service',
        metadata: { name: 'checkout--v2', namespace: ns },
        spec: { selector: { app: 'someone-else' }, ports: [{ port: 80 }] },
      } as KubernetesObject,
      'team-a',
      true,
    );
    const before = await versionOf('v1', 'Service', 'checkout--v2');
    await policy('shop', { service: 'checkout', canary: { version: 'v2', weight: 10 } });
    const result = await reconcileTrafficPolicy(kube, ns, 'shop', { mode: 'gateway' });
    expect(result?.writes).toEqual([]);
    const conflict = result?.conditions.find((c) => c.type === 'Conflict');
    expect(conflict).toMatchObject({ status: 'True', reason: 'NameTaken' });
    expect(conflict?.message).toContain(`Service ${ns}/checkout--v2`);
    expect(result?.conditions.find((c) => c.type === 'Ready')).toMatchObject({
      status: 'False',
      reason: 'NameTaken',
    });
    expect(await versionOf('v1', 'Service', 'checkout--v2')).toBe(before);
    // Not even v1's Service was written: a policy is written whole or not at all.
    expect(await get('v1', 'Service', 'checkout--v1')).toBeUndefined();

    // Once the name is free the policy writes, and then owns it.
    await kube.delete({ apiVersion: 'v1', kind: 'Service', namespace: ns, name: 'checkout--v2' });
    const next = await reconcileTrafficPolicy(kube, ns, 'shop', { mode: 'gateway' });
    expect(next?.conditions.find((c) => c.type === 'Ready')?.status).toBe('True');
    expect((await get('v1', 'Service', 'checkout--v2'))?.metadata?.ownerReferences?.[0]?.name).toBe('shop');
  });

  it('mesh mode: a DestinationRule of the policy name that Switchyard did not write is NameTaken', async () => {
    await kube.apply(
      {
        apiVersion: 'networking.istio.io/v1',
        kind: 'DestinationRule',
        metadata: { name: 'cart', namespace: ns },
        spec: { host: 'cart', trafficPolicy: { tls: { mode: 'ISTIO_MUTUAL' } } },
      } as KubernetesObject,
      'team-a',
      true,
    );
    const before = await versionOf('networking.istio.io/v1', 'DestinationRule', 'cart');
    await policy('cart', { service: 'checkout', hosts: ['cart.example.com'] });
    const result = await reconcileTrafficPolicy(kube, ns, 'cart', { mode: 'istio' });
    expect(result?.conditions.find((c) => c.type === 'Conflict')).toMatchObject({
      status: 'True',
      reason: 'NameTaken',
    });
    expect(result?.writes).toEqual([]);
    expect(await versionOf('networking.istio.io/v1', 'DestinationRule', 'cart')).toBe(before);
    expect(await get('networking.istio.io/v1', 'VirtualService', 'cart')).toBeUndefined();
  });

  it('mesh mode: a foreign VirtualService in another namespace that spells the host as name.namespace is a Conflict', async () => {
    await createNamespace(kube, 'trust-elsewhere');
    await kube.apply(
      {
        apiVersion: 'networking.istio.io/v1',
        kind: 'VirtualService',
        metadata: { name: 'sneaky', namespace: 'trust-elsewhere' },
        spec: { hosts: [`solo.${ns}`], http: [{ route: [{ destination: { host: 'elsewhere' } }] }] },
      } as KubernetesObject,
      'team-x',
      true,
    );
    await policy('solo', { service: 'solo' }); // serves solo's FQDN
    const result = await reconcileTrafficPolicy(kube, ns, 'solo', { mode: 'istio' });
    expect(result?.writes).toEqual([]);
    const conflict = result?.conditions.find((c) => c.type === 'Conflict');
    expect(conflict).toMatchObject({ status: 'True', reason: 'Conflict' });
    expect(conflict?.message).toContain(
      `VirtualService trust-elsewhere/sneaky (not managed by Switchyard) already serves solo.${ns}, which overlaps solo.${ns}.svc.cluster.local`,
    );
  });
});
