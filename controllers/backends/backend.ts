/**
 * What differs between the two ways Switchyard carries a policy out, behind one interface (as
 * Flagger's `pkg/router` has one router per mesh): which objects to write, which kinds it owns,
 * what else in the cluster may already serve the policy's hosts, in what order to write, and what
 * split is in force now. The policy reconciler (../traffic-policy.ts) is the same pipeline for
 * both; `backendFor` is the one place that picks.
 */
import type { Kube } from '../../kube/client.js';
import type { PolicyPlan } from '../../src/compiler/plan.js';
import type { Problem } from '../../src/core/errors.js';
import type { KubeObject } from '../../src/istio/objects.js';
import type { Reason } from '../../src/resources/conditions.js';
import type { TrafficPolicy } from '../../src/resources/schema.js';

export type ControllerMode = 'istio' | 'gateway';

export type Desired =
  /** `problems`: what this backend cannot carry and left out (reported; the rest is written). */
  | { ok: true; objects: KubeObject[]; problems: Problem[] }
  /** Nothing can be written yet, and why (a condition's reason and sentence). */
  | { ok: false; reason: Reason; message: string };

/** Applies objects together (server-side apply, owned); `note` is added to what is reported. */
export type ApplyObjects = (objects: KubeObject[], note?: string) => Promise<void>;

/** A TrafficPolicy as read from the API server (its status loosely typed). */
export type LivePolicy = Omit<TrafficPolicy, 'status'> & {
  status?: { conditions?: { type: string; status: string; message: string }[] };
};

export interface SplitInForce {
  /** The canary's share of the split route now, or null when none is in force. */
  canaryWeight: number | null;
  /** Why there is none, or what a person should know about it. */
  note?: string;
}

export interface Backend {
  readonly mode: ControllerMode;
  /** The kinds it writes and prunes, in pruning order (routes before what they refer to). */
  readonly ownedKinds: readonly { apiVersion: string; kind: string }[];
  /** What to write for one compiled policy (the reconciler adds owner references). */
  desired(kube: Kube, plan: PolicyPlan, namespace: string): Promise<Desired>;
  /** Objects outside Switchyard that already serve what `objects` would: one sentence each. */
  foreignConflicts(kube: Kube, objects: readonly KubeObject[], namespace: string): Promise<string[]>;
  /**
   * Writes `objects` in the order this backend needs; `requeueAfterMs` when something is left to
   * do later (a subset kept until the proxies no longer route to it).
   */
  write(
    kube: Kube,
    objects: readonly KubeObject[],
    apply: ApplyObjects,
    now: Date,
  ): Promise<{ requeueAfterMs?: number }>;
  /** The split carried out now for `policy`, read back from what serves it. */
  splitInForce(kube: Kube, policy: LivePolicy): Promise<SplitInForce>;
}
