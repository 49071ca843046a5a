/**
 * A controller that cannot list what it must watch says why, where a person looks: /readyz (which
 * `kubectl describe pod` shows as the failed readiness probe) and its log, once, not a line a second.
 * Mesh mode on a cluster without Istio names the choice to make; a ServiceAccount without the RBAC
 * for a namespace names the refusal. Each run is the real binary against a real API server.
 */
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { tempFiles } from './support/cli.js';
import { type Envtest, envtestGate, startEnvtest, startEnvtestWithCrds } from './support/envtest.js';
import { eventually } from './support/gateway.js';
import { type Started, startProcess } from './support/process.js';
import { unusedPort } from './support/upstreams.js';

const gate = envtestGate({ istio: false });

describe.skipIf(!gate)('a controller that cannot watch what it needs says why', () => {
  let env: Envtest;
  const started: Started[] = [];

  beforeAll(async () => {
    // Switchyard's CRDs, and not Istio's: a cluster without a mesh.
    env = await startEnvtestWithCrds({ assets: (gate as NonNullable<typeof gate>).assets, istio: undefined });
  });
  afterAll(async () => {
    for (const s of started) s.child.kill('SIGKILL');
    await env?.stop();
  });

  /** A controller process as `user`, and its /readyz answer once it says each of `reasons`. */
  const notReady = async (user: string | undefined, args: string[], reasons: string[], on = env) => {
    const kubeconfig = user ? on.kubeconfigFor(user) : on.adminKubeconfig;
    const file = join(tempFiles({ kubeconfig }), 'kubeconfig');
    const port = await unusedPort();
    const run = startProcess([
      'controller',
      '--kubeconfig',
      file,
      '--port',
      String(port),
      '--no-leader-elect',
      ...args,
    ]);
    started.push(run);
    const answer = await eventually(async () => {
      const r = await fetch(`http://127.0.0.1:${port}/readyz`).catch(() => undefined);
      const body = r ? await r.text() : '';
      return reasons.every((reason) => body.includes(reason)) ? { status: r?.status, body } : undefined;
    }, 20_000).catch(async (e) => {
      const body = await fetch(`http://127.0.0.1:${port}/readyz`).then((r) => r.text(), String);
      throw new Error(`${e}: /readyz said ${body}\n${run.output()}`);
    });
    return { ...answer, output: run.output, url: `http://127.0.0.1:${port}/readyz` };
  };

  it('mesh mode without Istio: not ready, naming the missing kinds and --mode gateway, logged once each', async () => {
    const missing = (apiVersion: string, kind: string, plural: string) =>
      `/apis/${apiVersion}/${plural}: the cluster does not serve ${apiVersion} ${kind} (is its CustomResourceDefinition installed?): mesh mode (--mode istio) needs Istio on the cluster: install Istio, or run Switchyard without a mesh (--mode gateway)`;
    const r = await notReady(
      undefined,
      ['--mode', 'istio'],
      [
        missing('networking.istio.io/v1', 'VirtualService', 'virtualservices'),
        missing('networking.istio.io/v1', 'DestinationRule', 'destinationrules'),
        missing('networking.istio.io/v1alpha3', 'EnvoyFilter', 'envoyfilters'),
      ],
    );
    expect(r.status).toBe(503);
    // Retried every second for three seconds more, and logged once. Meanwhile every other kind
    // (Switchyard's, the cluster's) has been listed: only Istio's are still waited for.
    await new Promise((resolve) => setTimeout(resolve, 3000));
    const waiting = (await (await fetch(r.url)).text()).split('\n').filter((l) => l.startsWith('- '));
    expect(waiting.map((l) => l.slice(2, l.indexOf(':')))).toEqual([
      '/apis/networking.istio.io/v1/destinationrules',
      '/apis/networking.istio.io/v1alpha3/envoyfilters',
      '/apis/networking.istio.io/v1/virtualservices',
    ]);
    const logged = r
      .output()
      .split('\n')
      .filter((l) => l.includes('watch failed') && l.includes('/virtualservices'));
    expect(logged).toHaveLength(1);
    expect(logged[0]).toContain('--mode gateway');
  });

  it('a ServiceAccount without RBAC for what it watches: not ready, naming the refusal', async () => {
    const forbidden = (plural: string) =>
      `${plural}: forbidden to list and watch ${plural} in all namespaces: the ServiceAccount's RBAC does not allow it`;
    const r = await notReady(
      'envtest-limited',
      ['--mode', 'gateway'],
      ['trafficpolicies', 'previews', 'deployments', 'services'].map(forbidden),
    );
    expect(r.status).toBe(503);
  });

  it('Switchyard’s CRDs not installed: not ready, naming the command that installs them', async () => {
    const bare = await startEnvtest((gate as NonNullable<typeof gate>).assets);
    const missing = (kind: string) =>
      `the cluster does not serve switchyard.dev/v1alpha1 ${kind} (is its CustomResourceDefinition installed?): install Switchyard's CRDs (switchyard crds | kubectl apply --server-side -f -)`;
    try {
      const r = await notReady(
        undefined,
        ['--mode', 'gateway'],
        [missing('TrafficPolicy'), missing('Preview')],
        bare,
      );
      expect(r.status).toBe(503);
    } finally {
      await bare.stop();
    }
  });
});
