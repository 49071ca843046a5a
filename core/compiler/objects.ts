/** The objects a renderer writes for a policy (any backend), and the metadata every one carries. */
import { MANAGED_BY, MANAGED_BY_VALUE, POLICY_LABEL } from '../resources/labels.js';
import type { PolicyPlan } from './plan.js';

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
