/**
 * RoutePlan → Istio objects, in a fixed order per policy: DestinationRule first (subsets exist
 * before a VirtualService refers to them), then VirtualServices, then EnvoyFilters.
 */

import type { RoutePlan } from '../compiler/plan.js';
import { type Problem, problem } from '../core/errors.js';
import { renderDestinationRule } from './destination-rule.js';
import { renderEnvoyFilters } from './envoy-filter.js';
import type { KubeObject } from './objects.js';
import { renderVirtualServices } from './virtual-service.js';

export interface RenderOptions {
  /** Namespaces labelled `istio.io/dataplane-mode=ambient`, where EnvoyFilters are ignored. */
  ambientNamespaces?: ReadonlySet<string>;
}

export interface RenderResult {
  objects: KubeObject[];
  problems: Problem[];
}

export function renderIstio(plan: RoutePlan, options: RenderOptions = {}): RenderResult {
  const objects: KubeObject[] = [];
  const problems: Problem[] = [];
  for (const policy of plan.policies) {
    objects.push(renderDestinationRule(policy), ...renderVirtualServices(policy));
    if (policy.rateLimits.length === 0) continue;
    if (options.ambientNamespaces?.has(policy.namespace)) {
      problems.push(
        problem(
          'SY_AMBIENT_UNSUPPORTED',
          `TrafficPolicy ${policy.namespace}/${policy.name} has rate limits, but namespace ${policy.namespace} is in ambient mode, where EnvoyFilters are silently ignored; use the Switchyard gateway for these limits or move the namespace to sidecar mode`,
          undefined,
          'spec.rateLimits',
        ),
      );
      continue;
    }
    objects.push(...renderEnvoyFilters(policy));
  }
  return { objects, problems };
}
