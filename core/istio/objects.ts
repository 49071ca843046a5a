/** Metadata every object Switchyard writes carries, and the API versions it writes them as. */
import type { PolicyPlan } from '../compiler/plan.js';
import { MANAGED_BY, MANAGED_BY_VALUE, POLICY_LABEL } from '../resources/labels.js';

export const NETWORKING_V1 = 'networking.istio.io/v1';
export const NETWORKING_V1ALPHA3 = 'networking.istio.io/v1alpha3';
export { UPSTREAM_HEADER } from '../compiler/plan.js';

export interface KubeObject {
  apiVersion: string;
  kind: string;
  metadata: {
    name: string;
    namespace: string;
    labels: Record<string, string>;
    annotations?: Record<string, string>;
  };
  spec: Record<string, unknown>;
}

export function objectMeta(policy: PolicyPlan, name: string): KubeObject['metadata'] {
  return {
    name,
    namespace: policy.namespace,
    labels: { [MANAGED_BY]: MANAGED_BY_VALUE, [POLICY_LABEL]: policy.name },
  };
}
