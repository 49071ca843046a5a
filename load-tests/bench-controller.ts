/**
 * `npm run bench:controller`: the controller (the real process, mesh mode, as its ServiceAccount)
 * converges 1,000 TrafficPolicies and 2,000 Previews on an envtest kube-apiserver; beside it, the
 * floor measured in the same run: the same API server creating the same objects the controller
 * wrote (and the same status, finalizer and Event writes) directly, with the controller's concurrency
 * (two queues of BENCH_WORKERS workers, default 8: 16 requests in flight). Prints time to convergence, the floor, their ratio (target: within
 * 2x) and the controller's peak memory (VmHWM).
 *
 * Each policy has a canary, an intercept, a rate limit and preview URLs, and a stable Service and
 * Deployment to clone; each has two previews (pull requests 1 and 2). No kubelet runs, so previews
 * stay Deploying: converged means every policy has status for its generation with its
 * DestinationRule, VirtualService and EnvoyFilter written, and every preview has its finalizer,
 * its Deployment and Service, and status Deploying.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { KubernetesObject } from '@kubernetes/client-node';
import type { Kube } from '../kube/client.js';
import { adminKube, applyRbac, CONTROLLER_USER } from '../test/support/cluster.js';
import { envtestGate, startEnvtestWithCrds } from '../test/support/envtest.js';
import { startProcess } from '../test/support/process.js';
import { freePort, tempDir } from './tools.js';

const POLICIES = Number(process.env.BENCH_POLICIES ?? 1000);
const PREVIEWS_PER_POLICY = 2;
const NAMESPACES = 10;
/** Workers per queue; the controller has two queues (policies, previews). */
const WORKERS = Number(process.env.BENCH_WORKERS ?? 8);
const CONCURRENCY = 2 * WORKERS;
const API = 'switchyard.dev/v1alpha1';

async function pool<T>(
  items: readonly T[],
  workers: number,
  fn: (item: T) => Promise<unknown>,
): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: workers }, async () => {
      while (next < items.length) await fn(items[next++] as T);
    }),
  );
}

const seconds = (ms: number) => `${(ms / 1000).toFixed(1)} s`;
type Obj = KubernetesObject & { spec?: Record<string, unknown>; status?: Record<string, unknown> };

function workload(ns: string, i: number): KubernetesObject[] {
  const name = `svc-${i}`;
  const labels = { app: name, version: 'v1' };
  return [
    {
      apiVersion: 'v1',
      kind: 'Service',
      metadata: { name, namespace: ns },
      spec: { selector: { app: name }, ports: [{ name: 'http', port: 80, targetPort: 8080 }] },
    } as KubernetesObject,
    {
      apiVersion: 'apps/v1',
      kind: 'Deployment',
      metadata: { name: `${name}-v1`, namespace: ns },
      spec: {
        replicas: 2,
        selector: { matchLabels: labels },
        template: {
          metadata: { labels },
          spec: { containers: [{ name, image: `ghcr.io/acme/${name}:v1` }] },
        },
      },
    } as KubernetesObject,
  ];
}

function policyAndPreviews(ns: string, i: number): KubernetesObject[] {
  const name = `svc-${i}`;
  return [
    {
      apiVersion: API,
      kind: 'TrafficPolicy',
      metadata: { name, namespace: ns },
      spec: {
        service: name,
        port: 80,
        hosts: [`${name}.example.com`],
        gateways: ['istio-system/public'],
        stable: 'v1',
        canary: { version: 'v2', weight: (i * 7) % 101 },
        intercepts: [
          { name: 'debug', match: { header: 'x-debug-user', exact: 'alice' }, to: { version: 'v3' } },
        ],
        rateLimits: [{ name: 'per-ip', key: { clientIp: {} }, limit: 20, window: '1s' }],
        previews: {
          repository: 'acme/shop',
          image: `ghcr.io/acme/${name}:{sha7}`,
          domain: 'preview.example.com',
          gateway: 'istio-system/previews',
        },
      },
    } as KubernetesObject,
    ...Array.from(
      { length: PREVIEWS_PER_POLICY },
      (_, p) =>
        ({
          apiVersion: API,
          kind: 'Preview',
          metadata: { name: `${name}-pr-${p + 1}-abcdef${p}`, namespace: ns },
          spec: { policy: name, repository: 'acme/shop', pullRequest: p + 1, commit: `abcdef${p}123` },
        }) as KubernetesObject,
    ),
  ];
}

async function counts(kube: Kube, namespaces: string[]) {
  let policies = 0;
  let previews = 0;
  let istio = 0;
  let deployments = 0;
  let services = 0;
  for (const ns of namespaces) {
    policies += (await kube.list<Obj>(API, 'TrafficPolicy', ns)).filter(
      (p) => (p.status?.observedGeneration as number | undefined) === p.metadata?.generation,
    ).length;
    previews += (await kube.list<Obj>(API, 'Preview', ns)).filter(
      (p) => p.status?.phase === 'Deploying' && p.metadata?.finalizers?.length,
    ).length;
    for (const [v, k] of [
      ['networking.istio.io/v1', 'DestinationRule'],
      ['networking.istio.io/v1', 'VirtualService'],
      ['networking.istio.io/v1alpha3', 'EnvoyFilter'],
    ] as const)
      istio += (await kube.list(v, k, ns, 'app.kubernetes.io/managed-by=switchyard')).length;
    deployments += (await kube.list('apps/v1', 'Deployment', ns, 'switchyard.dev/preview')).length;
    services += (await kube.list('v1', 'Service', ns, 'switchyard.dev/preview')).length;
  }
  return { policies, previews, istio, deployments, services };
}

async function main() {
  const gate = envtestGate({ istio: true });
  if (!gate)
    throw new Error('bench:controller needs the envtest binaries and ISTIO_CRDS (see docs/development.md)');
  console.log(`starting envtest; ${POLICIES} policies, ${POLICIES * PREVIEWS_PER_POLICY} previews`);
  const env = await startEnvtestWithCrds(gate);
  const kube = adminKube(env);
  try {
    await applyRbac(kube);
    const bench = Array.from({ length: NAMESPACES }, (_, n) => `bench-${n}`);
    const floorNs = Array.from({ length: NAMESPACES }, (_, n) => `floor-${n}`);
    for (const ns of [...bench, ...floorNs])
      await kube.apply({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: ns } }, 'bench', true);
    const setup = Array.from({ length: POLICIES }, (_, i) => [
      ...workload(bench[i % NAMESPACES] as string, i),
      ...policyAndPreviews(bench[i % NAMESPACES] as string, i),
    ]).flat();
    let t = performance.now();
    await pool(setup, CONCURRENCY, (o) => kube.apply(o, 'bench', true));
    console.log(`set-up: ${setup.length} objects in ${seconds(performance.now() - t)}`);

    // The controller, as it runs in a cluster.
    const port = await freePort();
    const kubeconfig = join(tempDir('switchyard-bench-'), 'kubeconfig');
    writeFileSync(kubeconfig, env.kubeconfigFor(CONTROLLER_USER));
    t = performance.now();
    const controller = startProcess(
      [
        'controller',
        '--kubeconfig',
        kubeconfig,
        '--port',
        String(port),
        '--no-leader-elect',
        '--workers',
        String(WORKERS),
        ...bench.flatMap((n) => ['-n', n]),
      ],
      { SWITCHYARD_LOG_LEVEL: 'warn' },
      // BENCH_CPU_PROF=DIR: a V8 CPU profile of the controller, for Chrome DevTools.
      process.env.BENCH_CPU_PROF ? ['--cpu-prof', `--cpu-prof-dir=${process.env.BENCH_CPU_PROF}`] : [],
    );
    const want = { policies: POLICIES, previews: POLICIES * PREVIEWS_PER_POLICY, istio: 3 * POLICIES };
    const converged = (c: Awaited<ReturnType<typeof counts>>) =>
      c.policies >= want.policies &&
      c.previews >= want.previews &&
      c.istio >= want.istio &&
      c.deployments >= want.previews &&
      c.services >= want.previews;
    // Listing everything is heavy for the API server: watch the controller's own metrics (cheap)
    // until its queues are empty after the writes expected, then check the cluster once.
    const metric = (text: string, name: string) =>
      text
        .split('\n')
        .filter((l) => l.startsWith(name))
        .reduce((s, l) => s + Number(l.split(' ').at(-1)), 0);
    const expectedWrites = want.istio + 3 * want.previews; // + finalizer, Deployment, Service each
    let done = 0;
    let ready = 0;
    for (;;) {
      if (
        !ready &&
        (await fetch(`http://127.0.0.1:${port}/readyz`).then(
          (r) => r.ok,
          () => false,
        ))
      )
        ready = performance.now() - t;
      if (controller.child.exitCode !== null) throw new Error(`controller exited:\n${controller.output()}`);
      const text = await fetch(`http://127.0.0.1:${port}/metrics`).then(
        (r) => r.text(),
        () => '',
      );
      if (
        text &&
        metric(text, 'switchyard_controller_writes_total') >= expectedWrites &&
        metric(text, 'switchyard_controller_queue_depth') === 0
      ) {
        done ||= performance.now();
        if (converged(await counts(kube, bench))) break;
      } else done = 0;
      await new Promise((r) => setTimeout(r, done ? 1000 : 100));
    }
    const convergence = done - t;
    const hwm = readFileSync(`/proc/${controller.child.pid}/status`, 'utf8').match(/VmHWM:\s+(\d+) kB/)?.[1];
    const metrics = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
    const writes = metric(metrics, 'switchyard_controller_writes_total');
    const requests = metrics
      .split('\n')
      .filter((l) => l.startsWith('switchyard_controller_api_requests_total'));
    const requestCount = requests.reduce((sum, l) => sum + Number(l.split(' ').at(-1)), 0);
    if (process.env.BENCH_VERBOSE) console.log(requests.join('\n'));
    controller.child.kill('SIGTERM');
    await controller.exited;

    // The floor: the same writes, made directly.
    const written: KubernetesObject[] = [];
    for (const ns of bench) {
      for (const [v, k, sel] of [
        ['networking.istio.io/v1', 'DestinationRule', 'app.kubernetes.io/managed-by=switchyard'],
        ['networking.istio.io/v1', 'VirtualService', 'app.kubernetes.io/managed-by=switchyard'],
        ['networking.istio.io/v1alpha3', 'EnvoyFilter', 'app.kubernetes.io/managed-by=switchyard'],
        ['apps/v1', 'Deployment', 'switchyard.dev/preview'],
        ['v1', 'Service', 'switchyard.dev/preview'],
      ] as const) {
        for (const o of await kube.list<Obj>(v, k, ns, sel)) {
          const { status: _s, ...rest } = JSON.parse(JSON.stringify(o)) as Obj;
          const spec = { ...(rest.spec ?? {}) };
          if (k === 'Service') for (const f of ['clusterIP', 'clusterIPs']) delete spec[f];
          written.push({
            ...rest,
            apiVersion: v,
            kind: k,
            spec,
            metadata: {
              name: o.metadata?.name,
              namespace: ns.replace('bench', 'floor'),
              labels: o.metadata?.labels,
              annotations: o.metadata?.annotations,
            },
          } as KubernetesObject);
        }
      }
    }
    const copies = Array.from({ length: POLICIES }, (_, i) =>
      policyAndPreviews(floorNs[i % NAMESPACES] as string, i),
    ).flat();
    await pool(copies, CONCURRENCY, (o) => kube.apply(o, 'bench', true));
    const live = (
      await Promise.all(
        floorNs.flatMap((ns) => [
          kube.list<Obj>(API, 'TrafficPolicy', ns),
          kube.list<Obj>(API, 'Preview', ns),
        ]),
      )
    ).flat();
    t = performance.now();
    await pool(
      [
        ...written.map((o) => () => kube.apply(o, 'switchyard', true)),
        ...live
          .filter((o) => o.kind === 'Preview')
          .map(
            (o) => () =>
              kube.apply(
                {
                  apiVersion: API,
                  kind: 'Preview',
                  metadata: {
                    name: o.metadata?.name,
                    namespace: o.metadata?.namespace,
                    finalizers: ['switchyard.dev/preview-cleanup'],
                  },
                } as KubernetesObject,
                'switchyard',
                true,
              ),
          ),
      ],
      CONCURRENCY,
      (f) => f(),
    );
    const fresh = (
      await Promise.all(
        floorNs.flatMap((ns) => [
          kube.list<Obj>(API, 'TrafficPolicy', ns),
          kube.list<Obj>(API, 'Preview', ns),
        ]),
      )
    ).flat();
    await pool(fresh, CONCURRENCY, (o) =>
      kube.replaceStatus(
        'switchyard.dev',
        'v1alpha1',
        o.kind === 'Preview' ? 'previews' : 'trafficpolicies',
        {
          ...o,
          status: o.kind === 'Preview' ? { phase: 'Deploying' } : { observedGeneration: 1, conditions: [] },
        } as KubernetesObject,
      ),
    );
    // One Event per policy and per preview, as the controller records them.
    await pool(fresh, CONCURRENCY, (o) =>
      kube.create({
        apiVersion: 'v1',
        kind: 'Event',
        metadata: { name: `${o.metadata?.name}.floor`, namespace: o.metadata?.namespace },
        involvedObject: {
          apiVersion: API,
          kind: o.kind,
          name: o.metadata?.name,
          namespace: o.metadata?.namespace,
          uid: o.metadata?.uid,
        },
        type: 'Normal',
        reason: 'Created',
        message: 'floor',
        source: { component: 'switchyard-controller' },
        count: 1,
      } as KubernetesObject),
    );
    const floor = performance.now() - t;
    const floorWrites = written.length + POLICIES * PREVIEWS_PER_POLICY + 2 * fresh.length;

    const ratio = convergence / floor;
    console.log('');
    const rows = [
      ['', 'time', 'API requests'],
      ['---', '---', '---'],
      [
        'controller, to convergence (process start included)',
        seconds(convergence),
        `${requestCount} (${writes} objects written)`,
      ],
      ['of which start-up (process, informers listed)', seconds(ready), ''],
      [`floor: the same writes, directly, ${CONCURRENCY} at a time`, seconds(floor), String(floorWrites)],
      ['ratio', `${ratio.toFixed(2)}x (target <= 2x)`, ''],
      ['controller peak memory (VmHWM)', hwm ? `${Math.round(Number(hwm) / 1024)} MiB` : 'n/a', ''],
    ];
    for (const r of rows) console.log(`| ${r.join(' | ')} |`);
    if (ratio > 2) process.exitCode = 1;
  } finally {
    await env.stop();
  }
}

await main();
