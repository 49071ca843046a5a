/**
 * RoutePlan routes → Istio HTTPRoutes. One VirtualService serves the policy's hosts; when preview
 * URLs exist a second one serves exactly those hosts on the preview Gateway, so every host still
 * has exactly one VirtualService and neither set of hosts is exposed on the other's gateways.
 */
import { toProtoDuration } from '../core/duration.js';
import type { Destination, PolicyPlan, RequestMatch, Route, StringMatch, WeightedDestination } from '../compiler/plan.js';
import { type KubeObject, NETWORKING_V1, objectMeta, UPSTREAM_HEADER } from './objects.js';

function msToDuration(ms: number): string {
  return toProtoDuration(`${ms}ms`);
}

function stringMatch(m: StringMatch): Record<string, string> {
  return { ...m };
}

function renderMatch(m: RequestMatch): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  if (m.authority) out.authority = stringMatch(m.authority);
  if (m.method) out.method = stringMatch(m.method);
  const headers: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(m.headers ?? {})) headers[k] = stringMatch(v);
  // Istio reads verified JWT claims through this pseudo-header (gateways only).
  for (const [k, v] of Object.entries(m.claims ?? {})) headers[`@request.auth.claims.${k}`] = stringMatch(v);
  if (Object.keys(headers).length > 0) out.headers = headers;
  return out;
}

function destination(d: Destination): Record<string, unknown> {
  return { host: d.host, ...(d.subset ? { subset: d.subset } : {}), port: { number: d.port } };
}

function routeDestination(d: WeightedDestination): Record<string, unknown> {
  const response: Record<string, unknown> = { set: { [UPSTREAM_HEADER]: d.upstream } };
  if (d.setCookie) response.add = { 'set-cookie': d.setCookie };
  return { destination: destination(d), weight: d.weight, headers: { response } };
}

function renderRoute(policy: PolicyPlan, r: Route): Record<string, unknown> {
  const out: Record<string, unknown> = { name: r.name };
  if (r.matches.length > 0) out.match = r.matches.map(renderMatch);
  out.route = r.destinations.map(routeDestination);
  if (r.mirror) {
    out.mirror = destination(r.mirror.destination);
    out.mirrorPercentage = { value: r.mirror.percent };
  }
  if (policy.timeoutMs !== undefined) out.timeout = msToDuration(policy.timeoutMs);
  if (policy.retries) {
    const retries: Record<string, unknown> = { attempts: policy.retries.attempts };
    if (policy.retries.perTryTimeoutMs !== undefined) retries.perTryTimeout = msToDuration(policy.retries.perTryTimeoutMs);
    if (policy.retries.on.length > 0) retries.retryOn = policy.retries.on.join(',');
    out.retries = retries;
  }
  return out;
}

export function previewVirtualServiceName(policy: PolicyPlan): string {
  return `${policy.name}-previews`.slice(0, 63).replace(/-+$/, '');
}

export function renderVirtualServices(policy: PolicyPlan): KubeObject[] {
  const main: Record<string, unknown> = { hosts: [...policy.hosts] };
  if (policy.gateways.length > 0) main.gateways = [...policy.gateways];
  main.http = policy.routes.filter((r) => r.kind !== 'preview-host').map((r) => renderRoute(policy, r));
  const out: KubeObject[] = [
    { apiVersion: NETWORKING_V1, kind: 'VirtualService', metadata: objectMeta(policy, policy.name), spec: main },
  ];
  if (policy.previewHosts.length > 0 && policy.previewGateway) {
    out.push({
      apiVersion: NETWORKING_V1,
      kind: 'VirtualService',
      metadata: objectMeta(policy, previewVirtualServiceName(policy)),
      spec: {
        hosts: [...policy.previewHosts],
        gateways: [policy.previewGateway],
        http: policy.routes.filter((r) => r.kind === 'preview-host').map((r) => renderRoute(policy, r)),
      },
    });
  }
  return out;
}
