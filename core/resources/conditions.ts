/**
 * Condition types and machine reasons, in one place (sample-controller keeps its event reasons as
 * constants). Every condition also carries a sentence a person can act on.
 */
export const CONDITION = { Ready: 'Ready', Conflict: 'Conflict', Invalid: 'Invalid' } as const;

export const REASON = {
  Reconciled: 'Reconciled',
  Conflict: 'Conflict',
  NoConflict: 'NoConflict',
  InvalidSpec: 'InvalidSpec',
  Valid: 'Valid',
  PreviewNotReady: 'PreviewNotReady',
  AmbientUnsupported: 'AmbientUnsupported',
  PolicyNotFound: 'PolicyNotFound',
  NoImage: 'NoImage',
  StableNotFound: 'StableNotFound',
  DeploymentNotAvailable: 'DeploymentNotAvailable',
  DeploymentAvailable: 'DeploymentAvailable',
  Expired: 'Expired',
  /** An object Switchyard would write exists and is not Switchyard's for this owner. */
  NameTaken: 'NameTaken',
  /** A Preview's repository is not the one its policy takes previews of. */
  RepositoryMismatch: 'RepositoryMismatch',
  /** The API server refused a write for good (422): its message is in the condition. */
  Rejected: 'Rejected',
  /** Gateway API mode on a cluster without the Gateway API's CRDs. */
  GatewayApiMissing: 'GatewayApiMissing',
  /** A Gateway or mesh did not accept a route Switchyard wrote, or could not resolve its backends. */
  RouteNotAccepted: 'RouteNotAccepted',
  /** More pull requests want previews than the policy's previews.maxActive. */
  LimitReached: 'LimitReached',
  // Reasons of Events only (what happened, not a state):
  Created: 'Created',
  Updated: 'Updated',
  Deleted: 'Deleted',
  ForeignEditReverted: 'ForeignEditReverted',
  Superseded: 'Superseded',
  Removed: 'Removed',
  GitHubHoldExpired: 'GitHubHoldExpired',
  // A progressive canary run's transitions (core/canary/progression.ts):
  CanaryStarted: 'CanaryStarted',
  CanaryStepAdvanced: 'CanaryStepAdvanced',
  CanaryAnalysisFailed: 'CanaryAnalysisFailed',
  CanaryNoData: 'CanaryNoData',
  CanaryRolledBack: 'CanaryRolledBack',
  CanaryPromoted: 'CanaryPromoted',
  CanaryCompleted: 'CanaryCompleted',
  CanaryPaused: 'CanaryPaused',
  CanaryResumed: 'CanaryResumed',
  CanaryFailed: 'CanaryFailed',
  CanaryWaiting: 'CanaryWaiting',
} as const;

export type Reason = (typeof REASON)[keyof typeof REASON];

export interface ConditionValue {
  type: string;
  status: 'True' | 'False' | 'Unknown';
  reason: Reason;
  message: string;
  observedGeneration?: number;
  lastTransitionTime: string;
}

/** Keeps lastTransitionTime when the status of a condition did not change (as metav1.Condition wants). */
export function mergeConditions(
  previous: readonly ConditionValue[] | undefined,
  next: readonly Omit<ConditionValue, 'lastTransitionTime'>[],
  now: Date,
): ConditionValue[] {
  return next.map((c) => {
    const old = previous?.find((p) => p.type === c.type);
    return {
      ...c,
      lastTransitionTime: old && old.status === c.status ? old.lastTransitionTime : now.toISOString(),
    };
  });
}
