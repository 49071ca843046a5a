/**
 * `npm run bench:mesh`: the render bench's typical mix (1,000 TrafficPolicies with 5,000 Previews,
 * bound to one Istio Gateway) applied to a real API server and pushed by a real istiod to one
 * gateway Envoy (test/support/mesh.ts). Measures the time from the last object applied to Envoy
 * serving the last policy's route, Envoy's configuration size and the RSS of Envoy and istiod, and
 * fails on any NACK. Needs the envtest and mesh binaries (npm run envtest, npm run mesh).
 */
import { readFileSync } from 'node:fs';
import { performance } from 'node:perf_hooks';
import type { KubernetesObject } from '@kubernetes/client-node';
import { compile } from '../core/compiler/compile.js';
import { renderIstio } from '../core/istio/render.js';
import { readResources } from '../core/resources/validate.js';
import { adminKube, createNamespace } from '../test/support/cluster.js';
import { envtestGate, startEnvtestWithCrds } from '../test/support/envtest.js';
import { ingressGateway, meshAssets, startEnvoy, startIstiod } from '../test/support/mesh.js';
import { unusedPort } from '../test/support/upstreams.js';
import { benchDocuments, POLICIES } from './mix.js';

const rssMb = (pid: number) =>
  Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? 0) / 1024;

const gate = envtestGate({ istio: true });
const assets = meshAssets();
if (!gate || !assets) {
  console.error(
    'bench:mesh needs the envtest and mesh binaries and ISTIO_CRDS (npm run envtest; npm run mesh)',
  );
  process.exit(2);
}

const { resources, problems } = readResources(
  benchDocuments(false).map((value, i) => ({ source: { file: 'bench', document: i + 1 }, value })),
);
if (problems.length > 0) throw new Error(problems[0]?.message);
const { objects } = renderIstio(compile(resources).plan);
const env = await startEnvtestWithCrds(gate);
const admin = adminKube(env);
try {
  const namespaces = new Set(['istio-system', ...objects.map((o) => o.metadata.namespace)]);
  for (const ns of namespaces) await createNamespace(admin, ns);
  const port = await unusedPort();
  const apply = (o: object) => admin.apply(o as KubernetesObject, 'bench', true);
  await ingressGateway(apply, 'public', port, ['*/*.example.com']);
  await ingressGateway(apply, 'previews', port, ['*/*.preview.example.com']);
  const istiod = await startIstiod(assets, env.adminKubeconfig);
  const envoy = await startEnvoy(assets, istiod, {
    role: 'router',
    name: 'ingress',
    namespace: 'istio-system',
    labels: { istio: 'ingressgateway' },
  });
  const idle = { envoy: rssMb(envoy.pid), istiod: rssMb(istiod.pid) };

  // Applied 16 at a time; the last policy's VirtualService goes last.
  const last = objects.filter(
    (o) => o.kind === 'VirtualService' && o.metadata.name === `svc-${POLICIES - 1}`,
  );
  const rest = objects.filter((o) => !last.includes(o));
  const routesHold = async (text: string) =>
    (await (await fetch(`${envoy.adminUrl}/config_dump?resource=dynamic_route_configs`)).text()).includes(
      text,
    );
  // Envoy's admin runs on its main thread, as xDS does: polling an 80 MiB route dump would delay the
  // very update measured. The light RDS counter is watched; the dump is read once it moved.
  const rdsUpdates = async () =>
    (
      await (
        await fetch(`${envoy.adminUrl}/stats?filter=${encodeURIComponent('rds\\..*update_success$')}`)
      ).text()
    )
      .split('\n')
      .filter(Boolean)
      .reduce((n, line) => n + Number(line.split(': ')[1]), 0);
  /** Waits until Envoy's routes hold `text`, reading the dump only after an RDS update. */
  const untilRoutesHold = async (text: string, since: number, limitMs: number): Promise<number> => {
    let seen = since;
    for (;;) {
      const now = await rdsUpdates();
      if (now > seen) {
        const at = performance.now();
        if (await routesHold(text)) return at;
        seen = now;
      } else await new Promise((r) => setTimeout(r, 10));
      if (performance.now() - start > limitMs) throw new Error(`Envoy never got ${text}`);
    }
  };
  let start = performance.now();

  const before = await rdsUpdates();
  const applyStart = performance.now();
  for (let i = 0; i < rest.length; i += 16)
    await Promise.all(rest.slice(i, i + 16).map((o) => admin.apply(o as KubernetesObject, 'bench', true)));
  for (const o of last) await admin.apply(o as KubernetesObject, 'bench', true);
  const applied = performance.now();
  start = applied;
  const pushed = await untilRoutesHold(`"svc-${POLICIES - 1}.example.com"`, before, 300_000);

  // One change once istiod is idle: an intercept added to one policy, as `switchyard intercept add`.
  await new Promise((r) => setTimeout(r, 15_000));
  const marker = `bench-${Date.now()}`;
  const changed = structuredClone(resources.policies[2]) as (typeof resources.policies)[number];
  changed.spec.intercepts = [
    ...(changed.spec.intercepts ?? []),
    { name: 'bench', match: { header: 'x-bench', exact: marker }, to: { version: 'v3' } },
  ];
  const vs = renderIstio(
    compile({
      policies: [changed],
      previews: resources.previews.filter((p) => p.spec.policy === changed.metadata.name),
    }).plan,
  ).objects.find((o) => o.kind === 'VirtualService' && o.metadata.name === changed.metadata.name);
  const idleUpdates = await rdsUpdates();
  const changeStart = performance.now();
  start = changeStart;
  await admin.apply(vs as KubernetesObject, 'bench', true);
  const changeAt = await untilRoutesHold(marker, idleUpdates, 120_000);
  const changeMs = changeAt - changeStart;
  const dump = await (await fetch(`${envoy.adminUrl}/config_dump`)).text();
  const rejected = await envoy.rejected();
  console.log(
    `mesh push: ${objects.length} objects of ${POLICIES} policies through a real istiod to one gateway Envoy`,
  );
  console.log(`  apply to the API server: ${((applied - applyStart) / 1000).toFixed(1)} s`);
  console.log(`  last object applied -> Envoy serving it: ${((pushed - applied) / 1000).toFixed(2)} s`);
  console.log(
    `  then one policy changed (an intercept added), istiod idle -> Envoy serving it: ${changeMs.toFixed(0)} ms`,
  );
  console.log(`  Envoy config_dump: ${(dump.length / 1024 / 1024).toFixed(1)} MiB`);
  console.log(
    `  RSS: Envoy ${idle.envoy.toFixed(0)} -> ${rssMb(envoy.pid).toFixed(0)} MiB, istiod ${idle.istiod.toFixed(0)} -> ${rssMb(istiod.pid).toFixed(0)} MiB`,
  );
  console.log(`  NACKs: ${rejected}`);
  await envoy.stop();
  await istiod.stop();
  if (rejected > 0) process.exitCode = 1;
} finally {
  await env.stop();
}
