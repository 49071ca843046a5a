/**
 * Mesh mode: a progressive run gives its version the first share only once something can answer
 * for it. The subset selects the Service's pods carrying the version label; when a Deployment runs
 * them, the run waits for one of its pods to be available (before, Envoy answered 503 "no healthy
 * upstream" for the canary's share while its pods started, and those failures reached the
 * analysis); `canary status` says why. Pods run by something the controller cannot read (no
 * Deployment) start at once, as before. On a real API server; no kubelet runs, so the test reports the Deployment available.
 */
import { join } from 'node:path';
import type { KubernetesObject } from '@kubernetes/client-node';
import { describe, expect, it } from 'vitest';
import { canaryRunByHand } from './support/canary-run.js';
import { cli, tempFiles } from './support/cli.js';
import { adminKube, createNamespace, markAvailable, stableWorkload } from './support/cluster.js';
import { type Envtest, sharedEnvtest } from './support/envtest.js';

const shared = await sharedEnvtest({ istio: false });
const API = 'switchyard.dev/v1alpha1';

describe.skipIf(!shared)('mesh mode: a progressive run and its version’s pods', () => {
  const setUp = async (namespace: string, canaryVersion: string) => {
    const admin = adminKube(shared as Envtest);
    await createNamespace(admin, namespace);
    await stableWorkload(admin, namespace, 'shop');
    await admin.apply(
      {
        apiVersion: API,
        kind: 'TrafficPolicy',
        metadata: { name: 'shop', namespace },
        spec: {
          service: 'shop',
          port: 80,
          hosts: ['run.test'],
          stable: 'v1',
          canary: { version: canaryVersion, steps: [{ weight: 20, pause: '1h' }] },
        },
      } as KubernetesObject,
      'release-engineer',
      true,
    );
    return { admin, ...canaryRunByHand(admin, namespace, 'shop', 'istio') };
  };

  it('gives the canary no share until a pod of its Deployment is available', async () => {
    const namespace = 'mesh-run-wait';
    const { admin, run, status, told } = await setUp(namespace, 'v2');
    // The canary's Deployment (pods app=shop, version=v2), just applied: none of its pods is up.
    await stableWorkload(admin, namespace, 'shop', 'v2');
    expect(await run()).toMatchObject({ weightChanged: false, requeueAfterMs: 500 });
    expect(await run()).toMatchObject({ weightChanged: false, requeueAfterMs: 500 });
    expect(await status()).toBeUndefined();
    // The release engineer sees why: `canary status` shows the wait, from the controller's Event.
    const waitingFor = `v2 gets no traffic until Deployment ${namespace}/shop-v2 has an available pod (are its pods ready?)`;
    const kubeconfig = join(tempFiles({ kubeconfig: (shared as Envtest).adminKubeconfig }), 'kubeconfig');
    const shown = async (...output: string[]) =>
      (await cli('canary', 'status', 'shop', '-n', namespace, '--kubeconfig', kubeconfig, ...output)).stdout;
    expect(JSON.parse(await shown('-o', 'json'))).toMatchObject({
      canary: 'v2',
      targetWeight: 0,
      waiting: waitingFor,
    });
    expect(await shown()).toContain(`run:       not started: ${waitingFor}`);

    await markAvailable(shared as Envtest, namespace, 'shop-v2');
    const started = await run();
    expect(started.weightChanged).toBe(true);
    expect(await status()).toMatchObject({ weight: 20 });
    const after = JSON.parse(await shown('-o', 'json'));
    expect(after.waiting).toBeUndefined();
    expect(after.run).toMatchObject({ step: 1, weight: 20 });
    // Two looks while waiting, one Event saying why; then the run's own.
    expect(told).toEqual([`CanaryWaiting: ${waitingFor}`, expect.stringMatching(/^CanaryStarted: /)]);
  });

  it('starts at once when no Deployment runs the version (the controller cannot tell)', async () => {
    const { run, status, told } = await setUp('mesh-run-no-deployment', 'v3');
    expect((await run()).weightChanged).toBe(true);
    expect(await status()).toMatchObject({ weight: 20 });
    expect(told).toEqual([expect.stringMatching(/^CanaryStarted: /)]);
  });
});
