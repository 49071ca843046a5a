/**
 * The real controller process under failure, on an API server of its own (this file stops and
 * restarts it): two replicas with leader election, where only the leader writes and a killed leader
 * is replaced within the lease duration; a kube-apiserver stopped and restarted mid-run (same etcd),
 * after which the controller re-lists and converges without creating anything twice; and a
 * restarted controller that finds everything in place and writes nothing.
 */
import { join } from 'node:path';
import type { KubernetesObject } from '@kubernetes/client-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Kube } from '../kube/client.js';
import { tempFiles } from './support/cli.js';
import {
  adminKube,
  applyRbac,
  CONTROLLER_USER,
  createNamespace,
  markAvailable,
  stableWorkload,
} from './support/cluster.js';
import { type Envtest, envtestGate, startEnvtestWithCrds } from './support/envtest.js';
import { eventually } from './support/gateway.js';
import { type Started, startProcess } from './support/process.js';
import { unusedPort } from './support/upstreams.js';

const gate = envtestGate({ istio: true });
const ns = 'resilience';
const LEASE_S = 3;
const API = 'switchyard.dev/v1alpha1';

type Vs = KubernetesObject & { spec: { http: { name: string; route: { weight: number }[] }[] } };

interface Replica {
  process: Started;
  metricsUrl: string;
}

describe.skipIf(!gate)('controller process: leader election, API server restart, controller restart', () => {
  let env: Envtest;
  let admin: Kube;
  let kubeconfigFile: string;
  const replicas: Replica[] = [];

  const startReplica = async (leaseSeconds = LEASE_S): Promise<Replica> => {
    const port = await unusedPort();
    const replica = {
      process: startProcess(
        [
          'controller',
          '--kubeconfig',
          kubeconfigFile,
          '-n',
          ns,
          '--port',
          String(port),
          '--lease-duration',
          `${leaseSeconds}s`,
        ],
        { SWITCHYARD_LOG_LEVEL: process.env.SWITCHYARD_TEST_LOG ?? 'warn' },
      ),
      metricsUrl: `http://127.0.0.1:${port}/metrics`,
    };
    replicas.push(replica);
    await eventually(
      () =>
        fetch(`http://127.0.0.1:${port}/readyz`).then(
          (r) => r.ok,
          () => false,
        ),
      20_000,
    ).catch((e) => {
      throw new Error(`controller not ready: ${e.message}\n${replica.process.output()}`);
    });
    return replica;
  };
  const metric = async (r: Replica, name: string): Promise<number> => {
    const text = await (await fetch(r.metricsUrl)).text();
    return text
      .split('\n')
      .filter((l) => l.startsWith(name))
      .reduce((sum, l) => sum + Number(l.split(' ').at(-1)), 0);
  };
  const isLeader = async (r: Replica) => (await metric(r, 'switchyard_controller_leader')) === 1;
  const writes = (r: Replica) => metric(r, 'switchyard_controller_writes_total');
  const canaryWeight = async () =>
    (
      await admin.get<Vs>({
        apiVersion: 'networking.istio.io/v1',
        kind: 'VirtualService',
        namespace: ns,
        name: 'web',
      })
    )?.spec.http.find((r) => r.name === 'split')?.route[1]?.weight;
  const setWeight = (weight: number) =>
    admin.apply(
      {
        apiVersion: API,
        kind: 'TrafficPolicy',
        metadata: { name: 'web', namespace: ns },
        spec: {
          service: 'web',
          port: 80,
          stable: 'v1',
          canary: { version: 'v2', weight },
          previews: { repository: 'acme/web' },
        },
      } as KubernetesObject,
      'release-engineer',
      true,
    );
  /** Every object the controller owns here, by kind/name → uid. */
  const owned = async () => {
    const out: Record<string, string> = {};
    for (const [apiVersion, kind] of [
      ['networking.istio.io/v1', 'VirtualService'],
      ['networking.istio.io/v1', 'DestinationRule'],
      ['apps/v1', 'Deployment'],
      ['v1', 'Service'],
    ] as const)
      for (const o of await admin.list(apiVersion, kind, ns, 'app.kubernetes.io/managed-by=switchyard'))
        out[`${kind}/${o.metadata?.name}`] = o.metadata?.uid as string;
    return out;
  };

  beforeAll(async () => {
    env = await startEnvtestWithCrds(gate as NonNullable<typeof gate>);
    admin = adminKube(env);
    await applyRbac(admin);
    kubeconfigFile = join(tempFiles({ kubeconfig: env.kubeconfigFor(CONTROLLER_USER) }), 'kubeconfig');
    await createNamespace(admin, ns);
    await stableWorkload(admin, ns, 'web');
    await setWeight(10);
    await admin.apply(
      {
        apiVersion: API,
        kind: 'Preview',
        metadata: { name: 'web-pr-3-abcdef0', namespace: ns },
        spec: {
          policy: 'web',
          repository: 'acme/web',
          pullRequest: 3,
          commit: 'abcdef0123',
          image: 'ghcr.io/acme/web:pr-3',
        },
      } as KubernetesObject,
      'pr-bot',
      true,
    );
  }, 180_000);
  afterAll(async () => {
    for (const r of replicas) r.process.child.kill('SIGKILL');
    await env?.stop();
  });

  it('with two replicas only the leader writes', async () => {
    const [a, b] = [await startReplica(), await startReplica()];
    await eventually(async () => (await canaryWeight()) === 10, 15_000);
    await eventually(
      () => admin.get({ apiVersion: 'apps/v1', kind: 'Deployment', namespace: ns, name: 'web-pr-3-abcdef0' }),
      10_000,
    );
    await markAvailable(env, ns, 'web-pr-3-abcdef0');
    await eventually(async () => {
      const p = await admin.get<KubernetesObject & { status?: { phase?: string } }>({
        apiVersion: API,
        kind: 'Preview',
        namespace: ns,
        name: 'web-pr-3-abcdef0',
      });
      return p?.status?.phase === 'Ready';
    }, 10_000);
    const leaders = [await isLeader(a), await isLeader(b)];
    expect(leaders.filter(Boolean)).toHaveLength(1);
    const standby = leaders[0] ? b : a;
    expect(await writes(leaders[0] ? a : b)).toBeGreaterThan(0);
    expect(await writes(standby)).toBe(0);
  });

  it('hands over within the lease duration when the leader is killed', async () => {
    const [a, b] = replicas as [Replica, Replica];
    const [leader, standby] = (await isLeader(a)) ? [a, b] : [b, a];
    leader.process.child.kill('SIGKILL');
    const killedAt = Date.now();
    await eventually(() => isLeader(standby), 15_000);
    const handover = Date.now() - killedAt;
    // The Lease lapses at most LEASE_S after the kill (its last renewal came before it), and the
    // standby looks again the moment it lapses: the rest is one API round trip (and a loaded CI).
    expect(handover).toBeLessThanOrEqual(LEASE_S * 1000 + 300);
    await setWeight(25);
    await eventually(async () => (await canaryWeight()) === 25, 10_000);
    console.info(`leader handover after SIGKILL: ${handover} ms (lease ${LEASE_S} s)`);
  });

  it(
    'survives a kube-apiserver restart: re-lists, converges, and creates nothing twice',
    { timeout: 60_000 },
    async () => {
      const before = await owned();
      expect(Object.keys(before).length).toBeGreaterThanOrEqual(4);
      // A leader that cannot renew its Lease for 2/3 of its duration exits (and is restarted by
      // Kubernetes): give this one a Lease that outlasts the outage, so it is the one that re-lists.
      for (const r of replicas.splice(0)) {
        r.process.child.kill('SIGTERM');
        await r.process.exited;
      }
      const replica = await startReplica(30);
      await eventually(() => isLeader(replica), 10_000);
      await env.stopApiServer?.();
      await new Promise((r) => setTimeout(r, 1500)); // watches break, reconciles fail and back off
      await env.startApiServer?.();
      await setWeight(40);
      await eventually(async () => (await canaryWeight()) === 40, 30_000);
      expect(await owned()).toEqual(before);
      expect(replica.process.child.exitCode).toBeNull();
    },
  );

  it('a restarted controller finds everything in place and writes nothing', async () => {
    const before = await owned();
    for (const r of replicas.splice(0)) {
      r.process.child.kill('SIGTERM');
      await r.process.exited;
    }
    const fresh = await startReplica();
    await eventually(() => isLeader(fresh), 15_000);
    // Every key is reconciled once at start: wait until both queues have run.
    await eventually(
      async () => (await metric(fresh, 'switchyard_controller_reconciles_total')) >= 2,
      10_000,
    );
    await eventually(async () => (await metric(fresh, 'switchyard_controller_queue_depth')) === 0, 10_000);
    const written = (await (await fetch(fresh.metricsUrl)).text())
      .split('\n')
      .filter((l) => l.startsWith('switchyard_controller_writes_total'));
    expect(written).toEqual([]);
    expect(await owned()).toEqual(before);
  });
});
