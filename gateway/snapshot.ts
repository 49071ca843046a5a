/**
 * What the gateway serves at one moment: a RoutePlan, its host index and the upstream URL of every
 * destination. Built in one go from resources and swapped whole, so each request reads one
 * consistent snapshot (envoyproxy/ratelimit's GetCurrentConfig).
 */

import { type Problem, problem } from '../core/common/errors.js';
import { compile } from '../core/compiler/compile.js';
import { indexPlan, type PlanIndex } from '../core/compiler/evaluate.js';
import { namespacedUpstreamKey } from '../core/compiler/names.js';
import type { RoutePlan } from '../core/compiler/plan.js';
import type { Resources } from '../core/resources/validate.js';

export interface Snapshot {
  plan: RoutePlan;
  index: PlanIndex;
  /**
   * Upstream key → base URLs, balanced round-robin. From files the key is `checkout/v2` (one URL);
   * from Kubernetes it is `<namespace>/checkout/v2` (one URL per ready endpoint, possibly none).
   */
  upstreams: ReadonlyMap<string, readonly URL[]>;
  /** Round-robin positions, per snapshot. */
  cursor: Map<string, number>;
  /** Where it came from (file paths, `kubernetes`), and when. */
  source: string;
  loadedAt: string;
  generation: number;
}

export type BuildResult =
  | {
      ok: true;
      snapshot: Snapshot;
      /** With `isolate`: what was left out of the plan, and why (one tenant's mistake). */
      leftOut?: Problem[];
    }
  | { ok: false; problems: Problem[] };

/** Compiles resources and checks that every destination and mirror has an upstream URL. */
export function buildSnapshot(
  resources: Resources,
  upstreams: ReadonlyMap<string, readonly URL[]>,
  meta: {
    source: string;
    generation: number;
    now: Date;
    requireUpstreams?: boolean;
    /** Problem codes that do not refuse the plan. */
    ignore?: ReadonlySet<string>;
    /**
     * Leave out each policy (with its previews) or preview a problem names, and serve the rest,
     * instead of refusing the whole plan: for a cluster, where every team's objects share one
     * gateway. Files are refused whole (a person is there to fix them).
     */
    isolate?: boolean;
  },
): BuildResult {
  let current = resources;
  const leftOut: Problem[] = [];
  let compiled = compile(current, { sources: current.sources });
  let problems = compiled.problems.filter((p) => !meta.ignore?.has(p.code));
  // Each round leaves out at least one resource, so this ends.
  while (meta.isolate && problems.length > 0) {
    const without = leaveOut(current, problems);
    if (!without) break;
    leftOut.push(...problems);
    current = without;
    compiled = compile(current, { sources: current.sources });
    problems = compiled.problems.filter((p) => !meta.ignore?.has(p.code));
  }
  // From files a missing URL is a mistake in the file; from Kubernetes, a version whose pods are
  // not ready yet (answered 503 until they are).
  for (const policy of meta.requireUpstreams === false ? [] : compiled.plan.policies) {
    for (const route of policy.routes) {
      const keys = route.destinations.filter((d) => d.weight > 0).map((d) => d.upstream);
      if (route.mirror) keys.push(route.mirror.destination.upstream);
      for (const key of keys) {
        if (!upstreams.has(key)) {
          problems.push(
            problem(
              'SY_GW_NO_UPSTREAM',
              `route ${route.name} of ${policy.namespace}/${policy.name} goes to ${key}, which has no URL in GatewayConfig spec.upstreams`,
            ),
          );
        }
      }
    }
  }
  const unique = [...new Map(problems.map((p) => [`${p.code}${p.message}`, p])).values()];
  if (unique.length > 0) return { ok: false, problems: unique };
  return {
    ok: true,
    ...(leftOut.length > 0 ? { leftOut } : {}),
    snapshot: {
      plan: compiled.plan,
      index: indexPlan(compiled.plan),
      upstreams,
      cursor: new Map(),
      source: meta.source,
      loadedAt: meta.now.toISOString(),
      generation: meta.generation,
    },
  };
}

/**
 * `resources` without the policies and previews that `problems` name (a policy takes its previews
 * with it); undefined when no problem names one, so nothing can be left out.
 */
function leaveOut(resources: Resources, problems: readonly Problem[]): Resources | undefined {
  const named = new Set(problems.flatMap((p) => (p.source ? [`${p.source.file}#${p.source.document}`] : [])));
  const isNamed = (r: object) => {
    const source = resources.sources.get(r);
    return source !== undefined && named.has(`${source.file}#${source.document}`);
  };
  const policies = resources.policies.filter((p) => !isNamed(p));
  const gone = new Set(
    resources.policies.filter(isNamed).map((p) => `${p.metadata.namespace}/${p.metadata.name}`),
  );
  const previews = resources.previews.filter(
    (p) => !isNamed(p) && !gone.has(`${p.metadata.namespace}/${p.spec.policy}`),
  );
  if (policies.length === resources.policies.length && previews.length === resources.previews.length)
    return undefined;
  return { ...resources, policies, previews };
}

/** GatewayConfig documents → upstream map; later documents override earlier keys. */
export function upstreamsOf(resources: Resources): Map<string, URL[]> {
  const out = new Map<string, URL[]>();
  for (const gc of resources.gatewayConfigs) {
    for (const [key, url] of Object.entries(gc.spec.upstreams)) out.set(key, [new URL(url)]);
  }
  return out;
}

/**
 * The URL for the next request to an upstream of a policy in `namespace`: the namespaced key
 * (Kubernetes) or the plain one (files); round-robin over the endpoints. `[]` when the upstream is
 * known but has no ready endpoint, undefined when it is not known at all.
 */
export function pickUpstream(snapshot: Snapshot, namespace: string, key: string): URL | [] | undefined {
  // Files: one URL under the plain key, no string built per request.
  const plain = snapshot.upstreams.get(key);
  if (plain && plain.length === 1) return plain[0];
  const namespaced = namespacedUpstreamKey(namespace, key);
  const list = snapshot.upstreams.get(namespaced) ?? plain;
  if (!list) return undefined;
  if (list.length <= 1) return list[0] ?? [];
  const i = snapshot.cursor.get(namespaced) ?? 0;
  snapshot.cursor.set(namespaced, (i + 1) % list.length);
  return list[i % list.length];
}
