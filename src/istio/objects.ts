/** Metadata every object Switchyard writes carries, and the API versions it writes them as. */
import type { PolicyPlan } from '../compiler/plan.js';

export const NETWORKING_V1 = 'networking.istio.io/v1';
export const NETWORKING_V1ALPHA3 = 'networking.istio.io/v1alpha3';
export const MANAGED_BY = 'app.kubernetes.io/managed-by';
export const POLICY_LABEL = 'switchyard.dev/policy';
export { UPSTREAM_HEADER } from '../compiler/plan.js';

export interface KubeObject {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace: string; labels: Record<string, string> };
  spec: Record<string, unknown>;
}

export function objectMeta(policy: PolicyPlan, name: string): KubeObject['metadata'] {
  return {
    name,
    namespace: policy.namespace,
    labels: { [MANAGED_BY]: 'switchyard', [POLICY_LABEL]: policy.name },
  };
}
