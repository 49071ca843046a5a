/**
 * RoutePlan → Istio objects, in a fixed order per policy: DestinationRule first (subsets exist
 * before a VirtualService refers to them), then VirtualServices, then EnvoyFilters.
 */

import { type Problem, problem, type Source } from '../common/errors.js';
import type { KubeObject } from '../compiler/objects.js';
import type { RoutePlan } from '../compiler/plan.js';
import { renderDestinationRule } from './destination-rule.js';
import { renderEnvoyFilters } from './envoy-filter.js';
import { renderVirtualServices } from './virtual-service.js';

export interface RenderOptions {
  /** Namespaces labelled `istio.io/dataplane-mode=ambient`, where EnvoyFilters are ignored. */
  ambientNamespaces?: ReadonlySet<string>;
  /** Where a policy was read from, so a problem names its file. */
  sourceOf?: (policy: { namespace: string; name: string }) => Source | undefined;
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
    // Preview URLs reach a mesh only through an Istio Gateway (the Node gateway needs none).
    if (policy.previewHosts.length > 0 && !policy.previewGateway)
      problems.push(
        problem(
          'SY_INVALID_VALUE',
          `TrafficPolicy ${policy.namespace}/${policy.name}: preview URLs need an Istio Gateway in a mesh: set spec.previews.gateway or spec.gateways (the preview URLs were not rendered)`,
          options.sourceOf?.(policy),
          'spec.previews.domain',
        ),
      );
    if (policy.rateLimits.length === 0) continue;
    if (options.ambientNamespaces?.has(policy.namespace)) {
      problems.push(
        problem(
          'SY_AMBIENT_UNSUPPORTED',
          `TrafficPolicy ${policy.namespace}/${policy.name} has rate limits, but namespace ${policy.namespace} is in ambient mode, where EnvoyFilters are silently ignored; use the Switchyard gateway for these limits or move the namespace to sidecar mode`,
          options.sourceOf?.(policy),
          'spec.rateLimits',
        ),
      );
      continue;
    }
    objects.push(...renderEnvoyFilters(policy));
  }
  return { objects, problems };
}
