/**
 * One request against the snapshot: which policy, route and destination. No routing rules of its
 * own: everything comes from the plan (core/compiler/evaluate.ts).
 */
import type { IncomingHttpHeaders } from 'node:http';
import { matchRoute, pickDestination, type RequestView } from '../core/compiler/evaluate.js';
import {
  type PolicyPlan,
  type Route,
  UPSTREAM_HEADER,
  type WeightedDestination,
} from '../core/compiler/plan.js';
import { GatewayError } from './errors.js';
import { pickUpstream, type Snapshot } from './snapshot.js';

export interface Decision {
  policy: PolicyPlan;
  route: Route;
  destination: WeightedDestination;
  url: URL;
}

export function requestView(
  method: string,
  headers: IncomingHttpHeaders,
  claims?: Record<string, string>,
): RequestView {
  return new HeadersView(headers.host ?? '', method, headers, claims);
}

/** A request's head as the router reads it: a class, so a request allocates one object and no closures. */
class HeadersView implements RequestView {
  constructor(
    readonly authority: string,
    readonly method: string,
    private readonly headers: IncomingHttpHeaders,
    private readonly claims: Record<string, string> | undefined,
  ) {}

  header(name: string): string | undefined {
    const v = this.headers[name];
    return Array.isArray(v) ? v.join(', ') : v;
  }

  claim(name: string): string | undefined {
    return this.claims?.[name];
  }
}

/** `random` is uniform in [0, 1); handed in so tests can make the split deterministic. */
export function decide(snapshot: Snapshot, req: RequestView, random: () => number): Decision | GatewayError {
  const policy = snapshot.index.policyFor(req.authority);
  if (!policy)
    return new GatewayError(
      'SY_GW_NO_POLICY',
      `no TrafficPolicy serves host ${JSON.stringify(req.authority)}`,
    );
  const route = matchRoute(policy, req);
  if (!route)
    return new GatewayError('SY_GW_NO_ROUTE', `no route of ${policy.namespace}/${policy.name} matches`);
  const destination =
    route.destinations.length === 1
      ? (route.destinations[0] as WeightedDestination)
      : pickDestination(route, random() * 100);
  const url = pickUpstream(snapshot, policy.namespace, destination.upstream);
  if (!(url instanceof URL)) {
    return new GatewayError(
      'SY_GW_NO_UPSTREAM',
      url
        ? `upstream ${destination.upstream} has no ready endpoint`
        : `no URL for upstream ${destination.upstream}`,
      { [UPSTREAM_HEADER]: destination.upstream },
    );
  }
  return { policy, route, destination, url };
}
