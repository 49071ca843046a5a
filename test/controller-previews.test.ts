/**
 * A Preview's life on a real API server: deletion is
 * ordered by a finalizer (routes first, then the workload), the TTL counts from the last spec change,
 * only the newest previews of a pull request stay, and each change is recorded as an Event.
 */
import type { KubernetesObject } from '@kubernetes/client-node';
import { beforeAll, describe, expect, it } from 'vitest';
import { reconcilePreview } from '../controllers/preview.js';
import { reconcileTrafficPolicy } from '../controllers/traffic-policy.js';
import { createLogger } from '../core/common/logger.js';
import { PREVIEW_FINALIZER } from '../core/resources/labels.js';
import type { Kube } from '../kube/client.js';
import { kubeEventRecorder } from '../kube/events.js';
import { adminKube, applyRbac, createNamespace, markAvailable, stableWorkload } from './support/cluster.js';
import { type Envtest, sharedEnvtest } from './support/envtest.js';

const shared = await sharedEnvtest({ istio: true });
const ns = 'preview-life';
const API = 'switchyard.dev/v1alpha1';

type LivePreview = KubernetesObject & {
  spec: Record<string, unknown>;
  status?: { phase?: string; updatedAt?: string; expiresAt?: string };
};
type Vs = KubernetesObject & { spec: { http: { name: string }[] } };

describe.skipIf(!shared)('Preview lifecycle on a real API server', () => {
  const env = shared as Envtest;
  let admin: Kube;
  let kube: Kube;
  const events = () => kubeEventRecorder(kube, createLogger({ level: 'silent' }));
  const preview = (name: string) =>
    kube.get<LivePreview>({ apiVersion: API, kind: 'Preview', namespace: ns, name });
  const exists = async (apiVersion: string, kind: string, name: string) =>
    (await kube.get({ apiVersion, kind, namespace: ns, name })) !== undefined;
  const routeNames = async () =>
    (
      await kube.get<Vs>({
        apiVersion: 'networking.istio.io/v1',
        kind: 'VirtualService',
        namespace: ns,
        name: 'cart',
      })
    )?.spec.http.map((r) => r.name) ?? [];
  const createPreview = (name: string, pullRequest: number, commit: string, extra = {}) =>
    admin.apply(
      {
        apiVersion: API,
        kind: 'Preview',
        metadata: { name, namespace: ns },
        spec: { policy: 'cart', repository: 'acme/cart', pullRequest, commit, ...extra },
      } as KubernetesObject,
      'pr-bot',
      true,
    );
  const reconcile = (name: string, now?: Date) =>
    reconcilePreview(kube, ns, name, {
      events: events(),
      rewriteRoutes: (n, p) => reconcileTrafficPolicy(kube, n, p, { events: events() }),
      ...(now ? { now: () => now } : {}),
    });

  beforeAll(async () => {
    admin = adminKube(env);
    // Reconcilers called directly read live, not through the controller's caches, so they run with
    // an admin client; the controller's own permissions are exercised where it runs whole
    // (controller-loop, controller-resilience and rbac tests).
    await applyRbac(admin);
    kube = admin;
    await createNamespace(admin, ns);
    await stableWorkload(admin, ns, 'cart');
    await admin.apply(
      {
        apiVersion: API,
        kind: 'TrafficPolicy',
        metadata: { name: 'cart', namespace: ns },
        spec: {
          service: 'cart',
          port: 80,
          stable: 'v1',
          previews: { repository: 'acme/cart', image: 'ghcr.io/acme/cart:{sha7}', maxPerPullRequest: 2 },
        },
      } as KubernetesObject,
      'test',
      true,
    );
  });

  it('removes a deleted preview in order: its routes, then its Deployment and Service, then the finalizer', async () => {
    const name = 'cart-pr-5-aaaaaaa';
    await createPreview(name, 5, 'aaaaaaa1111');
    await reconcile(name);
    expect((await preview(name))?.metadata?.finalizers).toEqual([PREVIEW_FINALIZER]);
    await markAvailable(env, ns, name);
    expect((await reconcile(name))?.phase).toBe('Ready');
    await reconcileTrafficPolicy(kube, ns, 'cart', { events: events() });
    expect(await routeNames()).toContain('preview-pr-5');

    await admin.delete({ apiVersion: API, kind: 'Preview', namespace: ns, name });
    expect((await preview(name))?.metadata?.deletionTimestamp).toBeTruthy(); // held by the finalizer
    const seenWhileRewriting: { routes: string[]; deployment: boolean }[] = [];
    const result = await reconcilePreview(kube, ns, name, {
      rewriteRoutes: async (n, p) => {
        await reconcileTrafficPolicy(kube, n, p);
        seenWhileRewriting.push({
          routes: await routeNames(),
          deployment: await exists('apps/v1', 'Deployment', name),
        });
      },
    });
    // The routes were gone while the workload still served.
    expect(seenWhileRewriting).toEqual([
      { routes: expect.not.arrayContaining(['preview-pr-5']), deployment: true },
    ]);
    expect(result?.writes).toEqual([
      `delete Deployment ${ns}/${name}`,
      `delete Service ${ns}/${name}`,
      `remove finalizer Preview ${ns}/${name}`,
    ]);
    expect(await preview(name)).toBeUndefined();
    expect(await exists('apps/v1', 'Deployment', name)).toBe(false);
    expect(await exists('v1', 'Service', name)).toBe(false);
  });

  it('expires a preview its TTL after the last change of its spec, and a change restarts the TTL', async () => {
    const name = 'cart-pr-6-bbbbbbb';
    await createPreview(name, 6, 'bbbbbbb2222', { ttl: '1h' });
    const t0 = new Date();
    const at = (minutes: number) => new Date(t0.getTime() + minutes * 60_000);
    const first = await reconcile(name, t0);
    expect(first?.requeueAfterMs).toBe(3_600_000);
    expect((await preview(name))?.status?.expiresAt).toBe(at(60).toISOString());
    expect((await reconcile(name, at(30)))?.requeueAfterMs).toBe(30 * 60_000);

    await createPreview(name, 6, 'bbbbbbb2222', { ttl: '1h', env: { FEATURE: 'on' } }); // generation 2
    await reconcile(name, at(50));
    expect((await preview(name))?.status).toMatchObject({
      updatedAt: at(50).toISOString(),
      expiresAt: at(110).toISOString(),
    });
    expect((await reconcile(name, at(70)))?.phase).not.toBe('Expired');

    const expired = await reconcile(name, at(111));
    expect(expired?.phase).toBe('Expired');
    expect(expired?.writes).toContain(`delete Preview ${ns}/${name} (expired)`);
    await reconcile(name); // the finalizer's turn
    expect(await preview(name)).toBeUndefined();
    expect(await exists('apps/v1', 'Deployment', name)).toBe(false);
  });

  it('keeps only the newest maxPerPullRequest previews of a pull request', async () => {
    const names = ['cart-pr-9-c000001', 'cart-pr-9-c000002', 'cart-pr-9-c000003'];
    for (const [i, name] of names.entries()) {
      await createPreview(name, 9, `c00000${i + 1}`);
      await new Promise((r) => setTimeout(r, 1100)); // creation times have one-second resolution
    }
    const result = await reconcile(names[2] as string);
    expect(result?.writes).toContain(`delete Preview ${ns}/${names[0]} (superseded)`);
    await reconcile(names[0] as string);
    expect(await preview(names[0] as string)).toBeUndefined();
    expect(await preview(names[1] as string)).toBeDefined();
    expect(await preview(names[2] as string)).toBeDefined();
  });

  it('records an Event for each change it made', async () => {
    // Its own previews, so it does not depend on what the tests before it did.
    const name = 'cart-pr-30-ddddddd';
    await createPreview(name, 30, 'ddddddd4444', { ttl: '1h' });
    const t0 = new Date();
    await reconcile(name, t0);
    await markAvailable(env, ns, name);
    await reconcile(name, t0);
    await reconcile(name, new Date(t0.getTime() + 61 * 60_000)); // expired
    await reconcile(name); // removed
    const superseded = ['cart-pr-31-e000001', 'cart-pr-31-e000002', 'cart-pr-31-e000003'];
    for (const [i, n] of superseded.entries()) {
      await createPreview(n, 31, `e00000${i + 1}`);
      await new Promise((r) => setTimeout(r, 1100)); // creation times have one-second resolution
    }
    await reconcile(superseded[2] as string);
    // A policy's first reconcile: one Created Event naming what it wrote.
    await admin.apply(
      {
        apiVersion: API,
        kind: 'TrafficPolicy',
        metadata: { name: 'cart-events', namespace: ns },
        spec: { service: 'cart', port: 80, hosts: ['events.cart.test'], stable: 'v1' },
      } as KubernetesObject,
      'test',
      true,
    );
    await reconcileTrafficPolicy(kube, ns, 'cart-events', { events: events() });
    const list = await admin.list<
      KubernetesObject & { reason: string; involvedObject: { kind: string; name: string } }
    >('v1', 'Event', ns);
    const reasons = (of: string) =>
      new Set(
        list.filter((e) => e.involvedObject.name === of).map((e) => `${e.involvedObject.kind}/${e.reason}`),
      );
    expect([...reasons(name)].sort()).toEqual(
      [
        'Preview/DeploymentAvailable',
        'Preview/DeploymentNotAvailable',
        'Preview/Expired',
        'Preview/Removed',
      ].sort(),
    );
    expect(reasons(superseded[0] as string)).toContain('Preview/Superseded');
    expect(reasons('cart-events')).toContain('TrafficPolicy/Created');
  });
});
