/**
 * One conformance row sent through a real Envoy, as the mesh conformance tests do for each
 * backend: enough requests that a destination of 10 % or more is missed with a chance under one
 * in a million, each answered by the test host the table allows (the body names it), sticky
 * cookies as the row says, and a mirrored row's copies within 6 standard deviations of the
 * examples' mirror percentage.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { KubernetesObject } from '@kubernetes/client-node';
import { expect } from 'vitest';
import { parse } from 'yaml';
import type { Kube } from '../../kube/client.js';
import { EXAMPLES } from './cli.js';
import { type ConformanceRow, cookieProblem } from './conformance-table.js';
import { header, send } from './http.js';
import { serviceWithEndpoints } from './mesh.js';
import type { NetnsUpstream, TestNetns } from './netns.js';

/** The examples' mirror percentage (deploy/examples/mirror.yaml), which Envoy applies at random. */
export const MIRROR_PERCENT = (
  parse(readFileSync(join(EXAMPLES, 'mirror.yaml'), 'utf8')) as { spec: { mirror: { percent: number } } }
).spec.mirror.percent;

/** Sends `row` to `base` and checks every answer; `mirrorCopies` reads the shadow's request count. */
export async function checkRowThroughEnvoy(
  row: ConformanceRow,
  base: string,
  mirrorCopies: () => Promise<number>,
): Promise<void> {
  const allowed = Object.keys(row.expect);
  const smallest = Math.min(...allowed.map((k) => row.expect[k] ?? 0).filter((w) => w >= 10)) / 100;
  // A mirrored row copies `percent` of its requests at random: 400 of them give a count whose
  // bounds (6 standard deviations) exclude none and all.
  const n =
    row.mirrored !== undefined
      ? 400
      : allowed.length > 1
        ? Math.ceil(Math.log(1e-6) / Math.log(1 - smallest))
        : 1;
  const copiesBefore = row.mirrored === undefined ? 0 : await mirrorCopies();
  const seen = new Set<string>();
  for (let i = 0; i < n; i++) {
    const r = await send(base, { host: row.host, method: row.method ?? 'GET', headers: row.headers ?? {} });
    if (allowed.length === 0) {
      expect(r.status).toBe(404);
      continue;
    }
    const upstream = header(r, 'x-switchyard-upstream') as string;
    expect({ status: r.status, upstream }).toEqual({ status: 200, upstream: expect.toBeOneOf(allowed) });
    expect(r.body).toBe(upstream); // the test host the header names answered
    expect(cookieProblem(row, upstream, r.headers['set-cookie'])).toBeUndefined();
    seen.add(upstream);
  }
  if (allowed.length > 1)
    expect([...seen].sort()).toEqual(allowed.filter((k) => (row.expect[k] ?? 0) >= 10).sort());
  if (row.mirrored === undefined) return;
  const mean = (n * MIRROR_PERCENT) / 100;
  const spread = 6 * Math.sqrt(mean * (1 - MIRROR_PERCENT / 100));
  const [low, high] = row.mirrored ? [Math.max(1, mean - spread), mean + spread] : [0, 0];
  // Copies go out after the primaries: wait until the count is within bounds and settles.
  const until = Date.now() + 5000;
  let copies = (await mirrorCopies()) - copiesBefore;
  while (Date.now() < until && copies < low) {
    await new Promise((r) => setTimeout(r, 50));
    copies = (await mirrorCopies()) - copiesBefore;
  }
  expect(copies).toBeGreaterThanOrEqual(low);
  expect(copies).toBeLessThanOrEqual(high);
}

/** The examples' namespace, Service port, versions and Ready previews. */
export const EXAMPLES_NAMESPACE = 'shop';
export const EXAMPLES_PORT = 8080;
const VERSIONS: Record<string, string[]> = {
  cart: ['v1', 'v2', 'v3'],
  search: ['v1', 'v2'],
  payments: ['v1', 'v2'],
  catalog: ['v1', 'v2'],
  recommendations: ['v1', 'v2'],
  api: ['v1', 'v2'],
  checkout: ['v1', 'v2'],
};
const PREVIEWS = ['checkout-pr-42-7f3a2c1', 'checkout-pr-42-1b2c3d4', 'checkout-pr-7-0a1b2c3'];

type Apply = (o: object) => Promise<unknown>;

/**
 * A test host for every version and preview of the examples, each answering with its upstream key
 * (`cart/v2`, `checkout/pr-42-7f3a2c1`): behind the policy's Service, behind its own per-version
 * Service `<service>--<version>` (EndpointSlices only: the Gateway API backends write the Service),
 * and the previews behind theirs.
 */
export async function examplesBackends(apply: Apply, hosts: TestNetns): Promise<NetnsUpstream[]> {
  const namespace = EXAMPLES_NAMESPACE;
  const upstreams: NetnsUpstream[] = [];
  const slice = (service: string, host: NetnsUpstream) =>
    apply({
      apiVersion: 'discovery.k8s.io/v1',
      kind: 'EndpointSlice',
      metadata: { name: `${service}-0`, namespace, labels: { 'kubernetes.io/service-name': service } },
      addressType: 'IPv4',
      ports: [{ name: 'http', port: host.port, protocol: 'TCP' }],
      endpoints: [{ addresses: [host.address], conditions: { ready: true } }],
    });
  for (const [svc, versions] of Object.entries(VERSIONS)) {
    const pods = [];
    for (const v of versions) {
      const host = await hosts.startUpstream(`${svc}/${v}`);
      upstreams.push(host);
      pods.push({ labels: { app: svc, version: v }, host });
      await slice(`${svc}--${v}`, host);
    }
    await serviceWithEndpoints(
      apply,
      { namespace, name: svc, port: EXAMPLES_PORT, selector: { app: svc } },
      pods,
    );
  }
  for (const name of PREVIEWS) {
    const host = await hosts.startUpstream(`checkout/${name.slice('checkout-'.length)}`);
    upstreams.push(host);
    const selector = { 'switchyard.dev/preview': name };
    await serviceWithEndpoints(apply, { namespace, name, port: EXAMPLES_PORT, selector }, [
      { labels: selector, host },
    ]);
  }
  return upstreams;
}

type RouteStatus = {
  status?: {
    parents?: {
      parentRef: { name: string };
      conditions?: { type: string; status: string; reason?: string; message?: string }[];
    }[];
  };
};

/**
 * What the implementation says of each of `routes` (Gateway API objects as written): a line per
 * parent condition that is not True, and a line per route with no Accepted and ResolvedRefs at all.
 */
export async function routesNotAccepted(
  kube: Kube,
  routes: readonly { apiVersion?: string; kind?: string; metadata?: { name?: string; namespace?: string } }[],
): Promise<string[]> {
  const problems: string[] = [];
  for (const o of routes) {
    const name = `${o.kind} ${o.metadata?.name}`;
    const live = await kube.get<KubernetesObject & RouteStatus>({
      apiVersion: o.apiVersion as string,
      kind: o.kind as string,
      namespace: o.metadata?.namespace as string,
      name: o.metadata?.name as string,
    });
    const parents = live?.status?.parents ?? [];
    const conditions = parents.flatMap((p) =>
      (p.conditions ?? []).map((c) => ({ ...c, parent: p.parentRef.name })),
    );
    for (const c of conditions.filter((x) => x.status !== 'True'))
      problems.push(`${name} on ${c.parent}: ${c.type}=${c.status} ${c.reason ?? ''} ${c.message ?? ''}`);
    for (const type of ['Accepted', 'ResolvedRefs'])
      if (!conditions.some((c) => c.type === type)) problems.push(`${name}: no ${type} condition`);
  }
  return problems;
}
