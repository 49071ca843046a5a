/**
 * A progressive run survives its controller (issue 15, acceptance 2): the controller process is
 * killed (SIGKILL) in the middle of a run and started again; the run continues from its step, with
 * no step entered twice or skipped and each step held its full pause (checked from the status seen
 * along the way and from the Events), because the whole state is in `status.canary`. A run that
 * a controller without Prometheus cannot judge is Failed at weight 0.
 */
import { join } from 'node:path';
import type { KubernetesObject } from '@kubernetes/client-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { CanaryRun } from '../core/canary/progression.js';
import type { Kube } from '../kube/client.js';
import { cli, tempFiles } from './support/cli.js';
import {
  adminKube,
  applyRbac,
  CONTROLLER_USER,
  createNamespace,
  stableWorkload,
  writeEndpoints,
} from './support/cluster.js';
import { type Envtest, sharedEnvtest } from './support/envtest.js';
import { eventually } from './support/gateway.js';
import { type Started, startProcess } from './support/process.js';
import { unusedPort } from './support/upstreams.js';

const shared = await sharedEnvtest({ istio: false });
const ns = 'canary-restart';
const API = 'switchyard.dev/v1alpha1';
const PAUSE_S = 3;

type Policy = KubernetesObject & { spec: { stable: string }; status?: { canary?: CanaryRun } };

describe.skipIf(!shared)('a progressive run across a controller restart', () => {
  const env = shared as Envtest;
  let admin: Kube;
  const processes: Started[] = [];

  const startControllerProcess = async () => {
    const kubeconfig = join(tempFiles({ kubeconfig: env.kubeconfigFor(CONTROLLER_USER) }), 'kubeconfig');
    const p = startProcess(
      [
        'controller',
        '--kubeconfig',
        kubeconfig,
        '--mode',
        'gateway',
        '-n',
        ns,
        '--no-leader-elect',
        '--port',
        String(await unusedPort()),
      ],
      { SWITCHYARD_LOG_LEVEL: process.env.SWITCHYARD_TEST_LOG ?? 'warn' },
    );
    processes.push(p);
    return p;
  };
  const policy = () =>
    admin.get<Policy>({ apiVersion: API, kind: 'TrafficPolicy', namespace: ns, name: 'shop' });

  beforeAll(async () => {
    admin = adminKube(env);
    await applyRbac(admin);
    await createNamespace(admin, ns);
    await stableWorkload(admin, ns, 'shop');
    // A ready endpoint for v2's Service, as kube-controller-manager would write it: in gateway mode
    // the run gives v2 no share before the gateway would have somewhere to send it.
    await writeEndpoints(admin, ns, 'shop--v2', [{ address: '10.0.0.2', port: 8080 }]);
  });
  afterAll(async () => {
    for (const p of processes) if (p.child.exitCode === null) p.child.kill('SIGKILL');
    await Promise.all(processes.map((p) => p.exited));
  });

  it('killed during step 2 and started again, the run goes on from step 2: no step repeated or skipped', async () => {
    const first = await startControllerProcess();
    await admin.apply(
      {
        apiVersion: API,
        kind: 'TrafficPolicy',
        metadata: { name: 'shop', namespace: ns },
        spec: {
          service: 'shop',
          port: 80,
          hosts: ['restart.test'],
          stable: 'v1',
          canary: {
            version: 'v2',
            steps: [10, 40, 70].map((weight) => ({ weight, pause: `${PAUSE_S}s` })),
            autoPromote: true,
          },
        },
      } as KubernetesObject,
      'release-engineer',
      true,
    );
    // Every state of the run seen along the way, by its step's start.
    const seen = new Map<string, CanaryRun>();
    let watching = true;
    const watcher = (async () => {
      while (watching) {
        const run = (await policy())?.status?.canary;
        if (run) seen.set(`${run.step}@${run.stepStartedAt}`, run);
        await new Promise((r) => setTimeout(r, 100));
      }
    })();
    await eventually(async () => (await policy())?.status?.canary?.step === 1, 30_000);
    // Killed in step 2, once its Event is out (a kill between the status write and the Event loses
    // the Event: Events are best effort, the status is the record).
    await eventually(async () => {
      const events = await admin.list<KubernetesObject & { reason?: string }>('v1', 'Event', ns);
      return events.some((e) => e.reason === 'CanaryStepAdvanced');
    }, 10_000);
    first.child.kill('SIGKILL');
    await first.exited;
    const killedAt = Date.now();
    await new Promise((r) => setTimeout(r, 1000));
    await startControllerProcess();
    const promoted = await eventually(async () => {
      const p = await policy();
      return p?.spec.stable === 'v2' ? p : undefined;
    }, 60_000);
    watching = false;
    await watcher;

    const run = promoted.status?.canary as CanaryRun;
    expect(run).toMatchObject({ phase: 'Succeeded', weightsUsed: [10, 40, 70] });
    // Each step entered once, in order, and held its pause (the restart fell inside step 2).
    const steps = [
      ...new Map([...seen.values()].filter((r) => r.phase !== 'Succeeded').map((r) => [r.step, r])).values(),
    ];
    expect(steps.map((r) => [r.step, r.weight])).toEqual([
      [0, 10],
      [1, 40],
      [2, 70],
    ]);
    const starts = steps.map((r) => Date.parse(r.stepStartedAt));
    const stepTwo = steps[1] as CanaryRun;
    expect(Date.parse(stepTwo.stepStartedAt)).toBeLessThan(killedAt);
    for (let i = 1; i < starts.length; i++)
      expect((starts[i] as number) - (starts[i - 1] as number)).toBeGreaterThanOrEqual(PAUSE_S * 1000);
    const entries = [...seen.keys()].filter((k) => !k.startsWith('3@'));
    expect(new Set(entries.map((k) => k.split('@')[0])).size).toBe(entries.length); // one start per step
    // The Events agree: one start, two advances, one promotion.
    const events = (
      await admin.list<KubernetesObject & { reason?: string; count?: number }>('v1', 'Event', ns)
    ).filter((e) => e.reason?.startsWith('Canary'));
    const count = (reason: string) =>
      events.filter((e) => e.reason === reason).reduce((n, e) => n + (e.count ?? 1), 0);
    expect([count('CanaryStarted'), count('CanaryStepAdvanced'), count('CanaryPromoted')]).toEqual([1, 2, 1]);
  }, 120_000);

  it('a run with an analysis under a controller without --prometheus is Failed at weight 0, and `canary watch` exits 4', async () => {
    // The controller started above has no --prometheus.
    await admin.apply(
      {
        apiVersion: API,
        kind: 'TrafficPolicy',
        metadata: { name: 'judged', namespace: ns },
        spec: {
          service: 'judged',
          port: 80,
          hosts: ['judged.restart.test'],
          stable: 'v1',
          canary: {
            version: 'v2',
            steps: [{ weight: 10, pause: '1m' }],
            analysis: {
              interval: '10s',
              metrics: [{ name: 'request-success-rate', thresholdRange: { min: 99 } }],
            },
          },
        },
      } as KubernetesObject,
      'release-engineer',
      true,
    );
    const failed = await eventually(async () => {
      const run = (
        await admin.get<Policy>({ apiVersion: API, kind: 'TrafficPolicy', namespace: ns, name: 'judged' })
      )?.status?.canary;
      return run?.phase === 'Failed' ? run : undefined;
    }, 30_000);
    expect(failed).toMatchObject({ version: 'v2', weight: 0, weightsUsed: [] });
    expect(failed.message).toBe(
      'cannot be judged, so not started (weight 0): the canary has an analysis, but the controller has no --prometheus to read it from',
    );
    const kubeconfig = join(tempFiles({ kubeconfig: env.adminKubeconfig }), 'kubeconfig');
    const watch = await cli('canary', 'watch', 'judged', '-n', ns, '--kubeconfig', kubeconfig);
    expect(watch.code).toBe(4);
    expect(watch.stdout).toMatch(/Failed +\[\.{20}\] +0% {2}cannot be judged/);
    const events = await eventually(async () => {
      const found = (
        await admin.list<KubernetesObject & { reason?: string; type?: string; message?: string }>(
          'v1',
          'Event',
          ns,
        )
      ).filter((e) => e.reason === 'CanaryFailed');
      return found.length > 0 ? found : undefined;
    }, 10_000);
    expect(events).toEqual([expect.objectContaining({ type: 'Warning' })]);
  }, 60_000);
});
