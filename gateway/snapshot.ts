/**
 * What the gateway serves at one moment: a RoutePlan, its host index and the upstream URL of every
 * destination. Built in one go from resources and swapped whole, so each request reads one
 * consistent snapshot (envoyproxy/ratelimit's GetCurrentConfig).
 */
import { compile } from '../src/compiler/compile.js';
import { indexPlan, type PlanIndex } from '../src/compiler/evaluate.js';
import type { RoutePlan } from '../src/compiler/plan.js';
import { type Problem, problem } from '../src/core/errors.js';
import type { Resources } from '../src/resources/validate.js';

export interface Snapshot {
  plan: RoutePlan;
  index: PlanIndex;
  /** Upstream key (`checkout/v2`) → base URL. */
  upstreams: ReadonlyMap<string, URL>;
  /** Where it came from (file paths, `kubernetes`), and when. */
  source: string;
  loadedAt: string;
  generation: number;
}

export type BuildResult = { ok: true; snapshot: Snapshot } | { ok: false; problems: Problem[] };

/** Compiles resources and checks that every destination and mirror has an upstream URL. */
export function buildSnapshot(
  resources: Resources,
  upstreams: ReadonlyMap<string, URL>,
  meta: { source: string; generation: number; now: Date },
): BuildResult {
  const compiled = compile(resources, { sources: resources.sources });
  const problems = [...compiled.problems];
  for (const policy of compiled.plan.policies) {
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
    snapshot: {
      plan: compiled.plan,
      index: indexPlan(compiled.plan),
      upstreams,
      source: meta.source,
      loadedAt: meta.now.toISOString(),
      generation: meta.generation,
    },
  };
}

/** GatewayConfig documents → upstream map; later documents override earlier keys. */
export function upstreamsOf(resources: Resources): Map<string, URL> {
  const out = new Map<string, URL>();
  for (const gc of resources.gatewayConfigs) {
    for (const [key, url] of Object.entries(gc.spec.upstreams)) out.set(key, new URL(url));
  }
  return out;
}
