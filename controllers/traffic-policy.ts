/**
 * TrafficPolicy → what its backend writes (backends/: Istio objects, or one Service per version
 * for the Node gateway), one reconcile of one policy, as one pipeline: read and compile; ask the
 * backend what it wants; stop at a host another policy holds, a foreign object serving the host,
 * or a name taken; write in the backend's order; prune what is no longer wanted; write the status
 * (the one way out, `finish`).
 * Writes are server-side apply with one field manager, forced, and only when the live object
 * differs (kube/apply.ts): a foreign edit to an object Switchyard owns is reverted on the next
 * reconcile, counted and reported as an Event. Server-side apply rather than update-with-retry:
 * it needs no read-modify-write loop, never loses a race to a stale resourceVersion, and leaves the
 * fields other managers own (labels a GitOps tool adds) alone. A VirtualService for one of the
 * policy's hosts that Switchyard does not own is never touched: the policy gets a Conflict
 * condition naming it.
 */

import type { KubernetesObject } from '@kubernetes/client-node';
import { type ApplyOutcome, applyOwned, NameTakenError, ownedLike, takenNames } from '../kube/apply.js';
import { apiErrorMessage, isRejected, type Kube } from '../kube/client.js';
import type { EventRecorder } from '../kube/events.js';
import { CLUSTER_TOLERATED, clusterPreviews } from '../src/compiler/cluster.js';
import { compile, policyHosts } from '../src/compiler/compile.js';
import { claimOrder, HostClaims } from '../src/compiler/hosts.js';
import type { PolicyPlan } from '../src/compiler/plan.js';
import { formatProblem, type Problem } from '../src/core/errors.js';
import type { KubeObject } from '../src/istio/objects.js';
import {
  CONDITION,
  type ConditionValue,
  mergeConditions,
  REASON,
  type Reason,
} from '../src/resources/conditions.js';
import { MANAGED_BY, MANAGED_BY_VALUE, POLICY_LABEL } from '../src/resources/labels.js';
import { DEFAULTS, type Preview, RESOURCE, type TrafficPolicy } from '../src/resources/schema.js';
import { readLiveResource } from '../src/resources/validate.js';
import { type Backend, backendFor, type ControllerMode } from './backends/index.js';
import { type ReconcileContext, type Reconciler, reconcilerOf } from './reconcile.js';

export type { ControllerMode } from './backends/index.js';

export interface ReconcileResult {
  /** What was changed, in order: "apply VirtualService shop/checkout", "delete …". */
  writes: string[];
  /** Owned objects someone else had edited, now reverted: "VirtualService shop/checkout". */
  reverted: string[];
  conditions: ConditionValue[];
  /** When to reconcile again though nothing changed (a subset waiting out its grace period). */
  requeueAfterMs?: number;
}

export interface ReconcileOptions extends ReconcileContext {
  mode?: ControllerMode;
  /** What carries the policy out; default: the backend of `mode`. */
  backend?: Backend;
}

type Live = KubernetesObject & { spec?: Record<string, unknown> };

function ownerReference(policy: TrafficPolicy & { metadata: { uid?: string } }) {
  return {
    apiVersion: RESOURCE.TrafficPolicy.apiVersion,
    kind: RESOURCE.TrafficPolicy.kind,
    name: policy.metadata.name,
    uid: policy.metadata.uid as string,
    controller: true,
    blockOwnerDeletion: true,
  };
}

function describe(o: { kind?: string; metadata?: { namespace?: string; name?: string } }): string {
  return `${o.kind} ${o.metadata?.namespace}/${o.metadata?.name}`;
}

export const reconcileTrafficPolicy: Reconciler<ReconcileOptions, ReconcileResult> = reconcilerOf(
  RESOURCE.TrafficPolicy,
  async (
    kube,
    live: TrafficPolicy & KubernetesObject,
    { namespace, name },
    options: ReconcileOptions & Required<ReconcileContext>,
  ) => {
    const { now, events } = options;
    const backend = options.backend ?? backendFor(options.mode ?? 'istio');
    const writes: string[] = [];
    const reverted: string[] = [];
    let requeueAfterMs: number | undefined;
    const generation = live.metadata?.generation;
    const previous = (live as { status?: { conditions?: ConditionValue[] } }).status?.conditions;

    const { resources, problems: invalid } = readLiveResource(live);
    const problems: Problem[] = [...invalid];
    const previews = (
      await kube.list<Preview & KubernetesObject>(
        RESOURCE.Preview.apiVersion,
        RESOURCE.Preview.kind,
        namespace,
      )
    )
      .filter((p) => p.spec.policy === name)
      .map((p) => JSON.parse(JSON.stringify(p)) as Preview & KubernetesObject); // Dates → RFC 3339 strings
    const compiled = compile({ policies: resources.policies, previews: clusterPreviews(previews) });
    const missingPreviews = compiled.problems.filter((p) => p.code === 'SY_MISSING_PREVIEW');
    problems.push(...compiled.problems.filter((p) => !CLUSTER_TOLERATED.has(p.code)));
    const next: Omit<ConditionValue, 'lastTransitionTime'>[] = [];
    const cond = (
      type: string,
      status: 'True' | 'False',
      reason: ConditionValue['reason'],
      message: string,
    ) =>
      next.push({
        type,
        status,
        reason,
        message,
        ...(generation !== undefined ? { observedGeneration: generation } : {}),
      });

    /** The one way out: the conditions gathered so far onto the status, and what was done. */
    const finish = async (written: KubeObject[] = []): Promise<ReconcileResult> => {
      const conditions = mergeConditions(previous, next, now());
      await writeStatus(kube, live, conditions, written, events, backend);
      return { writes, reverted, conditions, ...(requeueAfterMs !== undefined ? { requeueAfterMs } : {}) };
    };

    if (problems.length > 0 || resources.policies.length === 0) {
      cond(
        CONDITION.Invalid,
        'True',
        REASON.InvalidSpec,
        problems.map(formatProblem).join('; ') || 'the policy did not validate',
      );
      cond(
        CONDITION.Ready,
        'False',
        REASON.InvalidSpec,
        'nothing was written: fix the spec (see the Invalid condition)',
      );
      return finish();
    }

    const owner = ownerReference(live);
    const plan = compiled.plan.policies[0] as PolicyPlan;
    const wanted = await backend.desired(kube, plan, namespace);
    if (!wanted.ok) {
      cond(CONDITION.Ready, 'False', wanted.reason, wanted.message);
      cond(CONDITION.Invalid, 'False', REASON.Valid, 'the spec is valid');
      return finish();
    }
    // What the backend cannot carry (rate limits in ambient mode, preview URLs without a Gateway) is
    // left out and reported; the rest is written.
    const renderProblems = wanted.problems;
    const desired: KubeObject[] = wanted.objects.map((o) => ({
      ...o,
      metadata: { ...o.metadata, ownerReferences: [owner] },
    }));
    // A host another TrafficPolicy claimed first (older, then by namespace/name; any namespace) is
    // that policy's: this one writes nothing and says so. The gateway's compiler decides the same way.
    const claims = new HostClaims<TrafficPolicy>(DEFAULTS.clusterDomain);
    // Only what the claim order and the hosts need (no deep copy of every policy per reconcile).
    const all = (
      await kube.list<TrafficPolicy & KubernetesObject>(
        RESOURCE.TrafficPolicy.apiVersion,
        RESOURCE.TrafficPolicy.kind,
      )
    )
      .map((p) => {
        const created = p.metadata?.creationTimestamp as unknown;
        return {
          ...p,
          metadata: {
            name: p.metadata?.name as string,
            namespace: p.metadata?.namespace ?? DEFAULTS.namespace,
            creationTimestamp:
              created instanceof Date ? created.toISOString() : (created as string | undefined),
          },
        } as TrafficPolicy;
      })
      .sort(claimOrder);
    for (const other of all) {
      if (other.metadata.namespace === namespace && other.metadata.name === name) break;
      claims.claim(
        other,
        policyHosts(other, DEFAULTS.clusterDomain),
        other.metadata.namespace ?? DEFAULTS.namespace,
      );
    }
    const held = claims.conflict(
      policyHosts(resources.policies[0] as TrafficPolicy, DEFAULTS.clusterDomain),
      namespace,
    );
    const conflicts: string[] = held
      ? [
          `host ${held.mine} overlaps ${held.host}, which TrafficPolicy ${held.owner.metadata.namespace}/${held.owner.metadata.name} already serves (it is older, or first by name)`,
        ]
      : [];
    // A host served by an object Switchyard does not own is left alone and reported.
    conflicts.push(...(await backend.foreignConflicts(kube, desired, namespace)));
    /** Nothing is written while something else holds what this policy wants; it says what. */
    const conflicted = (reason: Reason, message: string) => {
      cond(CONDITION.Conflict, 'True', reason, message);
      cond(CONDITION.Ready, 'False', reason, 'nothing was written because of the Conflict condition');
      cond(CONDITION.Invalid, 'False', REASON.Valid, 'the spec is valid');
      return finish();
    };
    if (conflicts.length > 0)
      return conflicted(
        REASON.Conflict,
        `${conflicts.join('; ')}: remove it or take the host out of spec.hosts; Switchyard never overwrites it`,
      );
    // An object of a wanted name that is not this policy's (a team's own Service `checkout--v2`, a
    // DestinationRule someone wrote) is never written over.
    const nameTaken = (taken: string[]) =>
      conflicted(
        REASON.NameTaken,
        `${taken.join(', ')} already exists and was not written by Switchyard for this policy; it is left untouched: remove or rename it`,
      );
    const taken = await takenNames(kube, desired as KubernetesObject[]);
    if (taken.length > 0) return nameTaken(taken);

    // One Event per kind of change and reconcile (Events are writes too), naming every object.
    const changes = { Created: [] as string[], Updated: [] as string[], Deleted: [] as string[] };
    const applyAll = async (objects: KubeObject[], note = '') => {
      // Written together (they do not depend on each other), reported in order.
      const outcomes = await Promise.all(
        objects.map((o) => applyOwned(kube, o as KubernetesObject, { exact: o.kind !== 'Service' })),
      );
      for (const [i, o] of objects.entries()) await report(o, outcomes[i] as ApplyOutcome, note);
    };
    const report = async (o: KubeObject | Live, outcome: ApplyOutcome, note: string) => {
      if (outcome === 'unchanged') return;
      writes.push(`apply ${describe(o)}${note}`);
      if (outcome === 'reverted') {
        reverted.push(describe(o));
        await events.record(
          live,
          'Warning',
          REASON.ForeignEditReverted,
          `${describe(o)} was edited outside Switchyard; the edit was reverted. Change the TrafficPolicy instead`,
        );
      } else {
        changes[outcome === 'created' ? 'Created' : 'Updated'].push(describe(o));
      }
    };
    try {
      ({ requeueAfterMs } = await backend.write(kube, desired, applyAll, now()));
    } catch (e) {
      // Created by someone else between the check above and the write.
      if (e instanceof NameTakenError) return nameTaken([e.object]);
      // Refused for good (422): shown on the policy instead of a retry loop that shows nothing.
      if (isRejected(e)) {
        cond(
          CONDITION.Invalid,
          'True',
          REASON.Rejected,
          `the API server refused a write: ${apiErrorMessage(e)}`,
        );
        cond(
          CONDITION.Ready,
          'False',
          REASON.Rejected,
          'not every object was written: see the Invalid condition',
        );
        return finish();
      }
      throw e;
    }
    // Prune what this policy owned and no longer wants (VirtualServices before what they refer to).
    const keep = new Set(desired.map((o) => `${o.kind}/${o.metadata.name}`));
    for (const { apiVersion, kind } of backend.ownedKinds) {
      for (const o of await kube.list<Live>(
        apiVersion,
        kind,
        namespace,
        `${MANAGED_BY}=${MANAGED_BY_VALUE},${POLICY_LABEL}=${name}`,
      )) {
        if (keep.has(`${kind}/${o.metadata?.name}`)) continue;
        // Labels can be copied; only what this policy controls is deleted.
        if (!ownedLike(o, { apiVersion, kind, metadata: { ownerReferences: [owner] } })) continue;
        await kube.delete({ apiVersion, kind, namespace, name: o.metadata?.name as string });
        writes.push(`delete ${kind} ${namespace}/${o.metadata?.name}`);
        changes.Deleted.push(`${kind} ${namespace}/${o.metadata?.name}`);
      }
    }
    for (const [reason, objects] of Object.entries(changes) as [keyof typeof changes, string[]][])
      if (objects.length > 0)
        await events.record(
          live,
          'Normal',
          REASON[reason],
          `${reason.toLowerCase()} ${objects.join(', ')}${reason === 'Deleted' ? ' (no longer wanted)' : ''}`,
        );

    cond(CONDITION.Conflict, 'False', REASON.NoConflict, 'no other VirtualService serves these hosts');
    cond(
      CONDITION.Invalid,
      renderProblems.length > 0 ? 'True' : 'False',
      renderProblems.length === 0
        ? REASON.Valid
        : renderProblems.some((p) => p.code === 'SY_AMBIENT_UNSUPPORTED')
          ? REASON.AmbientUnsupported
          : REASON.InvalidSpec,
      renderProblems.length > 0 ? renderProblems.map((p) => p.message).join('; ') : 'the spec is valid',
    );
    if (missingPreviews.length > 0) {
      cond(
        CONDITION.Ready,
        'False',
        REASON.PreviewNotReady,
        `routes were written without: ${missingPreviews.map((p) => p.message.replace(/ \(expected.*$/, '')).join('; ')}; they are added when the preview is Ready`,
      );
    } else {
      cond(CONDITION.Ready, 'True', REASON.Reconciled, `wrote ${desired.map(describe).join(', ')}`);
    }
    return finish(desired);
  },
);

async function writeStatus(
  kube: Kube,
  live: KubernetesObject,
  conditions: ConditionValue[],
  written: KubeObject[],
  events: EventRecorder,
  backend: Backend,
): Promise<void> {
  const before = (live as { status?: { conditions?: ConditionValue[] } }).status?.conditions ?? [];
  const liveCanary = (live as { status?: { canary?: unknown } }).status?.canary;
  const body = {
    ...live,
    status: {
      ...(live.metadata?.generation !== undefined ? { observedGeneration: live.metadata.generation } : {}),
      conditions,
      backend: backend.mode,
      written: written.map((o) => ({ apiVersion: o.apiVersion, kind: o.kind, name: o.metadata.name })),
      // A progressive run's state is the run controller's (canary-run.ts): kept as it is.
      ...(liveCanary ? { canary: liveCanary } : {}),
    },
  };
  if (JSON.stringify((live as { status?: unknown }).status) === JSON.stringify(body.status)) return;
  const { group, version, plural } = RESOURCE.TrafficPolicy;
  await kube.replaceStatus(group, version, plural, body as KubernetesObject);
  // One Event per condition that changed status, with its reason and sentence.
  for (const c of conditions) {
    const old = before.find((b) => b.type === c.type);
    if (old?.status === c.status && old.reason === c.reason) continue;
    const bad = (c.type === CONDITION.Ready) === (c.status !== 'True');
    if (!old && !bad) continue;
    await events.record(live, bad ? 'Warning' : 'Normal', c.reason, `${c.type}=${c.status}: ${c.message}`);
  }
}
