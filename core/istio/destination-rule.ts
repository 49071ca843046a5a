/**
 * One DestinationRule per policy: a subset per version the VirtualService routes or mirrors to,
 * and HTTP/2 to the pods when the policy asks for it (`upstreamProtocol: http2`, for gRPC).
 */

import { type KubeObject, objectMeta } from '../compiler/objects.js';
import type { PolicyPlan } from '../compiler/plan.js';
import { NETWORKING_V1 } from './objects.js';

export function renderDestinationRule(policy: PolicyPlan): KubeObject {
  return {
    apiVersion: NETWORKING_V1,
    kind: 'DestinationRule',
    metadata: objectMeta(policy, policy.name),
    spec: {
      host: policy.serviceHost,
      subsets: policy.subsets.map((s) => ({ name: s.name, labels: { ...s.labels } })),
      ...(policy.upstreamProtocol === 'http2'
        ? { trafficPolicy: { connectionPool: { http: { h2UpgradePolicy: 'UPGRADE' } } } }
        : {}),
    },
  };
}
