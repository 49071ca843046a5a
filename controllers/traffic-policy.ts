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
import { formatProblem, type Problem } from '../core/common/errors.js';
import { CLUSTER_TOLERATED, clusterPreviews } from '../core/compiler/cluster.js';
import { compile, policyHosts } from '../core/compiler/compile.js';
import { claimOrder, hostConflicts } from '../core/compiler/hosts.js';
import type { KubeObject } from '../core/compiler/objects.js';
import type { PolicyPlan } from '../core/compiler/plan.js';
import {
  CONDITION,
  type ConditionValue,
  mergeConditions,
  REASON,
  type Reason,
} from '../core/resources/conditions.js';
import { MANAGED_BY, MANAGED_BY_VALUE, POLICY_LABEL } from '../core/resources/labels.js';
import { DEFAULTS, type Preview, RESOURCE, type TrafficPolicy } from '../core/resources/schema.js';
import { readLiveResource } from '../core/resources/validate.js';
import { type ApplyOutcome, applyOwned, NameTakenError, ownedLike, takenNames } from '../kube/apply.js';
import { apiErrorMessage, isRejected, type Kube } from '../kube/client.js';
import type { EventRecorder } from '../kube/events.js';
import { type Backend, backendFor, type ControllerMode, type DesiredContext } from './backends/index.js';
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
  /** What the backend is told about the installation (where tokens are verified). */
  installation?: DesiredContext;
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

type LivePolicy = TrafficPolicy & KubernetesObject;
type At = { namespace: string; name: string };
type Options = ReconcileOptions & Required<ReconcileContext>;

export const reconcileTrafficPolicy: Reconciler<ReconcileOptions, ReconcileResult> = reconcilerOf(
  RESOURCE.TrafficPolicy,
  reconcilePolicy,
);

/**
 * One reconcile of one policy, step by step; a step that finds the policy cannot be written ends
 * it there, with the conditions that say why (`finish`, the one way out).
 */
async function reconcilePolicy(
  kube: Kube,
  live: LivePolicy,
  at: At,
  options: Options,
): Promise<ReconcileResult> {
  const backend = options.backend ?? backendFor(options.mode ?? 'istio');
  const record = new ReconcileRecord(live.metadata?.generation);
  // Each ending below records its conditions on `record` first, then finishes with it.
  const finish = (ended: ReconcileRecord, written: KubeObject[] = []) =>
    finishReconcile(kube, live, ended, backend, options, written);

  const read = await readAndCompile(kube, live, at);
  if (!read.ok) return finish(record.invalid(read.problems));
  const wanted = await desire(kube, backend, read.plan, live, at.namespace, options.installation ?? {});
  if (!wanted.ok) return finish(record.notReady(wanted.reason, wanted.message));
  const conflict = await checkClaims(kube, backend, read.policy, wanted.objects, at);
  if (conflict) return finish(record.conflicted(conflict.reason, conflict.message));
  const refused = await writeDesired(kube, backend, wanted.objects, live, record, options);
  if (refused) return finish(refused);
  await pruneUnwanted(kube, backend, wanted.objects, live, at, record);
  await recordChanges(live, record, options.events);
  return finish(record.reconciled(wanted.problems, read.missingPreviews, wanted.objects), wanted.objects);
}

/** What one reconcile did and will say: its writes, the Events it owes, the conditions gathered. */
class ReconcileRecord {
  readonly writes: string[] = [];
  readonly reverted: string[] = [];
  /** One Event per kind of change and reconcile (Events are writes too), naming every object. */
  readonly changes = { Created: [] as string[], Updated: [] as string[], Deleted: [] as string[] };
  readonly conditions: Omit<ConditionValue, 'lastTransitionTime'>[] = [];
  requeueAfterMs: number | undefined;

  constructor(private readonly generation: number | undefined) {}

  condition(type: string, status: 'True' | 'False', reason: ConditionValue['reason'], message: string): this {
    this.conditions.push({
      type,
      status,
      reason,
      message,
      ...(this.generation !== undefined ? { observedGeneration: this.generation } : {}),
    });
    return this;
  }

  invalid(problems: Problem[]): this {
    return this.condition(
      CONDITION.Invalid,
      'True',
      REASON.InvalidSpec,
      problems.map(formatProblem).join('; ') || 'the policy did not validate',
    ).condition(
      CONDITION.Ready,
      'False',
      REASON.InvalidSpec,
      'nothing was written: fix the spec (see the Invalid condition)',
    );
  }

  notReady(reason: Reason, message: string): this {
    return this.condition(CONDITION.Ready, 'False', reason, message).condition(
      CONDITION.Invalid,
      'False',
      REASON.Valid,
      'the spec is valid',
    );
  }

  /** Nothing is written while something else holds what this policy wants; it says what. */
  conflicted(reason: Reason, message: string): this {
    return this.condition(CONDITION.Conflict, 'True', reason, message)
      .condition(CONDITION.Ready, 'False', reason, 'nothing was written because of the Conflict condition')
      .condition(CONDITION.Invalid, 'False', REASON.Valid, 'the spec is valid');
  }

  rejected(message: string): this {
    return this.condition(
      CONDITION.Invalid,
      'True',
      REASON.Rejected,
      `the API server refused a write: ${message}`,
    ).condition(
      CONDITION.Ready,
      'False',
      REASON.Rejected,
      'not every object was written: see the Invalid condition',
    );
  }

  /**
   * Written: what the backend left out (and why), what the implementation refused of what was
   * written, and the previews still awaited are said.
   */
  reconciled(problems: Problem[], missingPreviews: Problem[], desired: KubeObject[]): this {
    const refused = problems.filter((p) => p.code === 'SY_ROUTE_NOT_ACCEPTED');
    const leftOut = problems.filter((p) => p.code !== 'SY_ROUTE_NOT_ACCEPTED');
    this.condition(CONDITION.Conflict, 'False', REASON.NoConflict, 'nothing else serves these hosts');
    this.condition(
      CONDITION.Invalid,
      leftOut.length > 0 ? 'True' : 'False',
      leftOut.length === 0
        ? REASON.Valid
        : leftOut.some((p) => p.code === 'SY_AMBIENT_UNSUPPORTED')
          ? REASON.AmbientUnsupported
          : REASON.InvalidSpec,
      leftOut.length > 0 ? leftOut.map((p) => p.message).join('; ') : 'the spec is valid',
    );
    if (refused.length > 0)
      return this.condition(
        CONDITION.Ready,
        'False',
        REASON.RouteNotAccepted,
        `written, but not carried out: ${refused.map((p) => p.message).join('; ')}`,
      );
    if (missingPreviews.length > 0)
      return this.condition(
        CONDITION.Ready,
        'False',
        REASON.PreviewNotReady,
        `routes were written without: ${missingPreviews.map((p) => p.message.replace(/ \(expected.*$/, '')).join('; ')}; they are added when the preview is Ready`,
      );
    return this.condition(
      CONDITION.Ready,
      'True',
      REASON.Reconciled,
      `wrote ${desired.map(describe).join(', ')}`,
    );
  }
}

/** The one way out: the conditions gathered onto the status, and what was done. */
async function finishReconcile(
  kube: Kube,
  live: LivePolicy,
  record: ReconcileRecord,
  backend: Backend,
  options: Options,
  written: KubeObject[],
): Promise<ReconcileResult> {
  const previous = (live as { status?: { conditions?: ConditionValue[] } }).status?.conditions;
  const conditions = mergeConditions(previous, record.conditions, options.now());
  await writeStatus(kube, live, conditions, written, options.events, backend);
  return {
    writes: record.writes,
    reverted: record.reverted,
    conditions,
    ...(record.requeueAfterMs !== undefined ? { requeueAfterMs: record.requeueAfterMs } : {}),
  };
}

type Read =
  | { ok: false; problems: Problem[] }
  | { ok: true; policy: TrafficPolicy; plan: PolicyPlan; missingPreviews: Problem[] };

/** Read: the policy validated and compiled with its previews (those not Ready yet are awaited). */
async function readAndCompile(kube: Kube, live: LivePolicy, { namespace, name }: At): Promise<Read> {
  const { resources, problems } = readLiveResource(live);
  const previews = (
    await kube.list<Preview & KubernetesObject>(RESOURCE.Preview.apiVersion, RESOURCE.Preview.kind, namespace)
  )
    .filter((p) => p.spec.policy === name)
    .map((p) => JSON.parse(JSON.stringify(p)) as Preview & KubernetesObject); // Dates → RFC 3339 strings
  const compiled = compile({ policies: resources.policies, previews: clusterPreviews(previews) });
  const all = [...problems, ...compiled.problems.filter((p) => !CLUSTER_TOLERATED.has(p.code))];
  const policy = resources.policies[0];
  if (all.length > 0 || !policy) return { ok: false, problems: all };
  return {
    ok: true,
    policy,
    plan: compiled.plan.policies[0] as PolicyPlan,
    missingPreviews: compiled.problems.filter((p) => p.code === 'SY_MISSING_PREVIEW'),
  };
}

/**
 * Desire: what the backend would write for the plan, each object owned by the policy. What the
 * backend cannot carry (rate limits in ambient mode, preview URLs without a Gateway) is left out
 * and returned as problems; the rest is written.
 */
async function desire(
  kube: Kube,
  backend: Backend,
  plan: PolicyPlan,
  live: LivePolicy,
  namespace: string,
  installation: DesiredContext,
) {
  const wanted = await backend.desired(kube, plan, namespace, installation);
  if (!wanted.ok) return wanted;
  const owner = ownerReference(live);
  const objects: KubeObject[] = wanted.objects.map((o) => ({
    ...o,
    metadata: { ...o.metadata, ownerReferences: [owner] },
  }));
  return { ok: true as const, objects, problems: wanted.problems };
}

/**
 * Check claims: a host another TrafficPolicy serves (rule 7, `hostConflicts`: any namespace), a
 * host served by an object Switchyard does not own, or an object of a wanted name that is not this
 * policy's (a team's own Service `checkout--v2`): nothing is written over any of them.
 */
async function checkClaims(
  kube: Kube,
  backend: Backend,
  policy: TrafficPolicy,
  desired: KubeObject[],
  at: At,
): Promise<{ reason: Reason; message: string } | undefined> {
  const held = await hostHeldByAnother(kube, policy, at);
  const conflicts = held ? [held] : [];
  conflicts.push(...(await backend.foreignConflicts(kube, desired, at.namespace)));
  if (conflicts.length > 0)
    return {
      reason: REASON.Conflict,
      message: `${conflicts.join('; ')}: remove it or take the host out of spec.hosts; Switchyard never overwrites it`,
    };
  const taken = await takenNames(kube, desired as KubernetesObject[]);
  return taken.length > 0 ? nameTaken(taken) : undefined;
}

const nameTaken = (taken: string[]) => ({
  reason: REASON.NameTaken,
  message: `${taken.join(', ')} already exists and was not written by Switchyard for this policy; it is left untouched: remove or rename it`,
});

/** The host of this policy that a policy before it in claim order serves, said for a person. */
async function hostHeldByAnother(kube: Kube, policy: TrafficPolicy, at: At): Promise<string | undefined> {
  // Only what the claim order and the hosts need (no deep copy of every policy per reconcile).
  const all = (
    await kube.list<LivePolicy>(RESOURCE.TrafficPolicy.apiVersion, RESOURCE.TrafficPolicy.kind)
  ).map((p) => {
    const self = p.metadata?.namespace === at.namespace && p.metadata?.name === at.name;
    const created = p.metadata?.creationTimestamp as unknown;
    return {
      ...(self ? policy : p),
      metadata: {
        name: p.metadata?.name as string,
        namespace: p.metadata?.namespace ?? DEFAULTS.namespace,
        creationTimestamp: created instanceof Date ? created.toISOString() : (created as string | undefined),
      },
    } as TrafficPolicy;
  });
  const ordered = all.sort(claimOrder);
  const conflicts = hostConflicts(
    ordered,
    (p) => ({
      hosts: policyHosts(p, DEFAULTS.clusterDomain),
      namespace: p.metadata.namespace ?? DEFAULTS.namespace,
    }),
    DEFAULTS.clusterDomain,
  );
  const self = ordered.find((p) => p.metadata.namespace === at.namespace && p.metadata.name === at.name);
  const held = self && conflicts.get(self);
  if (!held) return undefined;
  return `host ${held.mine} overlaps ${held.host}, which TrafficPolicy ${held.owner.metadata.namespace}/${held.owner.metadata.name} already serves (it is older, or first by name)`;
}

/**
 * Write: in the backend's order, each object only when it differs; an owned object someone else
 * edited is reverted and reported. Returns the record to finish with when the write was refused.
 */
async function writeDesired(
  kube: Kube,
  backend: Backend,
  desired: KubeObject[],
  live: LivePolicy,
  record: ReconcileRecord,
  { events, now }: Options,
): Promise<ReconcileRecord | undefined> {
  const report = async (o: KubeObject, outcome: ApplyOutcome, note: string) => {
    if (outcome === 'unchanged') return;
    record.writes.push(`apply ${describe(o)}${note}`);
    if (outcome !== 'reverted') {
      record.changes[outcome === 'created' ? 'Created' : 'Updated'].push(describe(o));
      return;
    }
    record.reverted.push(describe(o));
    await events.record(
      live,
      'Warning',
      REASON.ForeignEditReverted,
      `${describe(o)} was edited outside Switchyard; the edit was reverted. Change the TrafficPolicy instead`,
    );
  };
  const applyAll = async (objects: KubeObject[], note = '') => {
    // Written together (they do not depend on each other), reported in order.
    const outcomes = await Promise.all(
      objects.map((o) => applyOwned(kube, o as KubernetesObject, { exact: o.kind !== 'Service' })),
    );
    for (const [i, o] of objects.entries()) await report(o, outcomes[i] as ApplyOutcome, note);
  };
  try {
    ({ requeueAfterMs: record.requeueAfterMs } = await backend.write(kube, desired, applyAll, now()));
    return undefined;
  } catch (e) {
    // Created by someone else between the check and the write.
    if (e instanceof NameTakenError) {
      const taken = nameTaken([e.object]);
      return record.conflicted(taken.reason, taken.message);
    }
    // Refused for good (422): shown on the policy instead of a retry loop that shows nothing.
    if (isRejected(e)) return record.rejected(apiErrorMessage(e));
    throw e;
  }
}

/** Prune: what this policy owned and no longer wants (VirtualServices before what they refer to). */
async function pruneUnwanted(
  kube: Kube,
  backend: Backend,
  desired: KubeObject[],
  live: LivePolicy,
  { namespace, name }: At,
  record: ReconcileRecord,
): Promise<void> {
  const owner = ownerReference(live);
  const keep = new Set(desired.map((o) => `${o.kind}/${o.metadata.name}`));
  for (const { apiVersion, kind, optional } of backend.ownedKinds) {
    const selector = `${MANAGED_BY}=${MANAGED_BY_VALUE},${POLICY_LABEL}=${name}`;
    const owned = await kube.list<Live>(apiVersion, kind, namespace, selector).catch((e: unknown) => {
      // A kind the cluster does not serve holds nothing to prune.
      if (optional && (e as { code?: number })?.code === 404) return [];
      throw e;
    });
    for (const o of owned) {
      if (keep.has(`${kind}/${o.metadata?.name}`)) continue;
      // Labels can be copied; only what this policy controls is deleted.
      if (!ownedLike(o, { apiVersion, kind, metadata: { ownerReferences: [owner] } })) continue;
      await kube.delete({ apiVersion, kind, namespace, name: o.metadata?.name as string });
      record.writes.push(`delete ${kind} ${namespace}/${o.metadata?.name}`);
      record.changes.Deleted.push(`${kind} ${namespace}/${o.metadata?.name}`);
    }
  }
}

/** One Event per kind of change this reconcile made, naming every object. */
async function recordChanges(
  live: LivePolicy,
  record: ReconcileRecord,
  events: EventRecorder,
): Promise<void> {
  for (const [reason, objects] of Object.entries(record.changes) as [
    keyof ReconcileRecord['changes'],
    string[],
  ][])
    if (objects.length > 0)
      await events.record(
        live,
        'Normal',
        REASON[reason],
        `${reason.toLowerCase()} ${objects.join(', ')}${reason === 'Deleted' ? ' (no longer wanted)' : ''}`,
      );
}

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
