/**
 * Preview → a running copy of the service at one commit: a Deployment cloned from the stable one
 * (found through the Service's selector and the version label) with the preview's image, and a
 * Service of its own, both named like the Preview and owned by it. The Deployment's readiness
 * becomes the Preview's phase; a Ready preview then gets routes from the TrafficPolicy reconciler.
 * Pods keep the Service's labels (so telemetry and `workloadLabels` still match) and get the
 * version label `pr-<N>-<sha7>` and `switchyard.dev/role: preview`; traffic reaches them only
 * through routes, which always name a subset or the preview's own Service.
 *
 * Lifecycle: a finalizer (`switchyard.dev/preview-cleanup`) makes deletion ordered: the policy's
 * routes are rewritten without the preview first, then its Deployment and Service are deleted,
 * then the finalizer is dropped (garbage collection alone could remove pods that routes still
 * name). A preview expires `ttl` after its spec last changed (status.updatedAt; the Preview's
 * spec.ttl, else the policy's previews.ttl, else 72h) and is deleted. Of the previews of one
 * pull request, only the newest `maxPerPullRequest` (default 2) stay; older ones are deleted.
 */

import type { KubernetesObject } from '@kubernetes/client-node';
import { parseDurationMs } from '../core/common/duration.js';
import { sameRepository } from '../core/compiler/compile.js';
import { latestRef, pinnedRef, previewHost, sha7 } from '../core/compiler/names.js';
import { compareAge } from '../core/compiler/preview-age.js';
import { copiedPort } from '../core/compiler/version-services.js';
import { type ConditionValue, mergeConditions, REASON, type Reason } from '../core/resources/conditions.js';
import {
  MANAGED_BY,
  MANAGED_BY_VALUE,
  PREVIEW_FINALIZER,
  PREVIEW_LABEL,
  PREVIEW_ROLE_LABEL,
} from '../core/resources/labels.js';
import {
  API_VERSION,
  DEFAULTS,
  type Preview,
  RESOURCE,
  type TrafficPolicy,
} from '../core/resources/schema.js';
import {
  type ApplyOutcome,
  applyOwned,
  FIELD_MANAGER,
  NameTakenError,
  ownedLike,
  takenNames,
} from '../kube/apply.js';
import { apiErrorMessage, isRejected, type Kube } from '../kube/client.js';
import { versionDeployments } from '../kube/version-workload.js';
import { type ReconcileContext, type Reconciler, reconcilerOf } from './reconcile.js';

/** setTimeout's limit: a requeue further out is re-armed by the resync. */
const MAX_REQUEUE_MS = 2 ** 31 - 1;

type Deployment = KubernetesObject & {
  spec: {
    replicas?: number;
    selector: { matchLabels?: Record<string, string> };
    template: {
      metadata?: { labels?: Record<string, string>; annotations?: Record<string, string> };
      spec: {
        containers: { name: string; image?: string; env?: { name: string; value?: string }[] }[];
      } & Record<string, unknown>;
    };
  };
  status?: { availableReplicas?: number; conditions?: { type: string; status: string; message?: string }[] };
};
type Service = KubernetesObject & {
  spec: {
    selector?: Record<string, string>;
    ports?: { name?: string; port: number; targetPort?: number | string; protocol?: string }[];
  };
};
type LivePreview = Preview & KubernetesObject;

export type PreviewPhase = 'Pending' | 'Deploying' | 'Ready' | 'Failed' | 'Expired';

export interface PreviewResult {
  phase?: PreviewPhase;
  reason?: Reason;
  writes: string[];
  /** Look again after this long (the TTL's end). */
  requeueAfterMs?: number;
}

export interface PreviewReconcileOptions extends ReconcileContext {
  /** Rewrites the routes of a policy; called before a preview's workload is removed. */
  rewriteRoutes?: (namespace: string, policy: string) => Promise<unknown>;
}

function selectorString(labels: Record<string, string>): string {
  return Object.entries(labels)
    .map(([k, v]) => `${k}=${v}`)
    .join(',');
}

/** The controller reference a preview's Deployment and Service carry. */
function previewOwner(name: string, uid = '') {
  return { apiVersion: API_VERSION, kind: 'Preview', name, uid, controller: true, blockOwnerDeletion: true };
}

/** The image: the Preview's own, else the policy's template with {sha} (full) or {sha7}. */
export function previewImage(preview: Preview, policy: TrafficPolicy): string | undefined {
  if (preview.spec.image) return preview.spec.image;
  const template = policy.spec.previews?.image;
  return template?.replaceAll('{sha7}', sha7(preview.spec.commit)).replaceAll('{sha}', preview.spec.commit);
}

type At = { namespace: string; name: string };
type Options = PreviewReconcileOptions & Required<ReconcileContext>;
/** Why a preview cannot run, for its status: a reason and a sentence to act on. */
type Refusal = { reason: Reason; message: string };

export const reconcilePreview: Reconciler<PreviewReconcileOptions, PreviewResult> = reconcilerOf(
  RESOURCE.Preview,
  reconcileOnePreview,
);

/**
 * One reconcile of one Preview, step by step: a step that finds the preview cannot run ends it
 * with the phase that says why (`finish`, the one way out but for removal).
 */
async function reconcileOnePreview(
  kube: Kube,
  found: LivePreview,
  at: At,
  options: Options,
): Promise<PreviewResult> {
  const writes: string[] = [];
  if (found.metadata?.deletionTimestamp) {
    await removePreview(kube, found, options, writes);
    return { writes };
  }
  const preview = await ensureFinalizer(kube, found, at, writes);
  const policy = await kube.get<TrafficPolicy & KubernetesObject>({
    apiVersion: API_VERSION,
    kind: 'TrafficPolicy',
    namespace: at.namespace,
    name: preview.spec.policy,
  });
  const life = lifetimeOf(preview, policy, options.now());
  const finish = (phase: PreviewPhase, reason: Reason, message: string, extra: Record<string, string> = {}) =>
    finishPreview(
      kube,
      preview,
      { phase, reason, message, extra: { ...life.status, ...extra } },
      writes,
      options,
      life,
    );

  if (life.leftMs <= 0) return expire(kube, at, life.ttl, finish, writes);
  if (await removeSuperseded(kube, preview, policy, at, writes, options)) return { writes };
  const refused = await admit(kube, preview, policy, at);
  if (refused) return finish('Failed', refused.reason, refused.message);
  const workload = await cloneStable(kube, preview, policy as TrafficPolicy, at);
  if (!workload.ok) return finish('Failed', workload.reason, workload.message);
  const writeRefused = await writeWorkload(kube, preview, workload.objects, at, writes, options);
  if (writeRefused) return finish('Failed', writeRefused.reason, writeRefused.message);
  return reportReadiness(kube, preview, policy as TrafficPolicy, workload.image, at, finish);
}

/** The finalizer that orders removal; the status written later carries the resourceVersion left. */
async function ensureFinalizer(kube: Kube, preview: LivePreview, { namespace, name }: At, writes: string[]) {
  if (preview.metadata?.finalizers?.includes(PREVIEW_FINALIZER)) return preview;
  const updated = await kube.apply<LivePreview>(
    {
      apiVersion: API_VERSION,
      kind: 'Preview',
      metadata: { name, namespace, finalizers: [PREVIEW_FINALIZER] },
    },
    FIELD_MANAGER,
    true,
  );
  writes.push(`add finalizer Preview ${namespace}/${name}`);
  return updated;
}

/** The TTL counts from the last spec change: a new generation restarts it. */
function lifetimeOf(preview: LivePreview, policy: TrafficPolicy | undefined, now: Date) {
  const status = preview.status as { observedGeneration?: number; updatedAt?: string } | undefined;
  const updatedAt =
    status?.updatedAt && status.observedGeneration === preview.metadata?.generation
      ? status.updatedAt
      : now.toISOString();
  const ttl = preview.spec.ttl ?? policy?.spec.previews?.ttl ?? DEFAULTS.previewTtl;
  const expiresAt = new Date(Date.parse(updatedAt) + parseDurationMs(ttl)).toISOString();
  return { ttl, leftMs: Date.parse(expiresAt) - now.getTime(), status: { updatedAt, expiresAt } };
}

/** The phase onto the status (an Event when it changes), and a look again at the TTL's end. */
async function finishPreview(
  kube: Kube,
  preview: LivePreview,
  state: { phase: PreviewPhase; reason: Reason; message: string; extra: Record<string, string> },
  writes: string[],
  { now, events }: Options,
  life: { leftMs: number },
): Promise<PreviewResult> {
  const { phase, reason, message, extra } = state;
  const previousPhase = (preview.status as { phase?: PreviewPhase } | undefined)?.phase;
  await writePreviewStatus(kube, preview, phase, reason, message, extra, now());
  if (phase !== previousPhase)
    await events.record(
      preview,
      phase === 'Failed' || phase === 'Expired' ? 'Warning' : 'Normal',
      reason,
      `${phase}: ${message}`,
    );
  const requeue = life.leftMs > 0 ? { requeueAfterMs: Math.min(life.leftMs, MAX_REQUEUE_MS) } : {};
  return { phase, reason, writes, ...requeue };
}

/** Expired: said on the status, then the Preview deleted (its finalizer removes the rest). */
async function expire(
  kube: Kube,
  { namespace, name }: At,
  ttl: string,
  finish: (phase: PreviewPhase, reason: Reason, message: string) => Promise<PreviewResult>,
  writes: string[],
): Promise<PreviewResult> {
  await finish('Expired', REASON.Expired, `no change for ${ttl} (the TTL): the preview is removed`);
  await kube.delete({ apiVersion: API_VERSION, kind: 'Preview', namespace, name });
  writes.push(`delete Preview ${namespace}/${name} (expired)`);
  return { phase: 'Expired', reason: REASON.Expired, writes };
}

/** Only the newest maxPerPullRequest previews of a pull request stay; true when this one went. */
async function removeSuperseded(
  kube: Kube,
  preview: LivePreview,
  policy: TrafficPolicy | undefined,
  { namespace, name }: At,
  writes: string[],
  { events }: Options,
): Promise<boolean> {
  const max = policy?.spec.previews?.maxPerPullRequest ?? DEFAULTS.maxPerPullRequest;
  const siblings = (await kube.list<LivePreview>(API_VERSION, 'Preview', namespace))
    .filter(
      (p) =>
        !p.metadata?.deletionTimestamp &&
        p.spec.policy === preview.spec.policy &&
        p.spec.repository === preview.spec.repository &&
        p.spec.pullRequest === preview.spec.pullRequest,
    )
    .sort(newestFirst);
  const superseded = siblings.slice(max);
  for (const old of superseded) {
    await kube.delete({
      apiVersion: API_VERSION,
      kind: 'Preview',
      namespace,
      name: old.metadata?.name as string,
    });
    writes.push(`delete Preview ${namespace}/${old.metadata?.name} (superseded)`);
    await events.record(
      old,
      'Normal',
      REASON.Superseded,
      `pull request #${old.spec.pullRequest} has ${siblings.length} previews; only the newest ${max} (maxPerPullRequest) stay`,
    );
  }
  return superseded.some((p) => p.metadata?.name === name);
}

/** Admit: the policy exists, takes previews of this repository, has room, and names an image. */
async function admit(
  kube: Kube,
  preview: LivePreview,
  policy: TrafficPolicy | undefined,
  { namespace }: At,
): Promise<Refusal | undefined> {
  if (!policy)
    return {
      reason: 'PolicyNotFound',
      message: `no TrafficPolicy ${namespace}/${preview.spec.policy}: create it, or fix spec.policy`,
    };
  if (!sameRepository(policy.spec.previews?.repository, preview.spec.repository))
    return {
      reason: REASON.RepositoryMismatch,
      message: `spec.repository ${preview.spec.repository} is not the repository policy ${preview.spec.policy} takes previews of (${policy.spec.previews?.repository ?? 'none: spec.previews.repository is not set'}); nothing is deployed`,
    };
  const limit = await activeLimitReached(kube, preview, policy, namespace);
  if (limit) return limit;
  if (!previewImage(preview, policy))
    return {
      reason: 'NoImage',
      message: `neither spec.image nor the policy's spec.previews.image is set: set one (a template may use {sha})`,
    };
  return undefined;
}

/**
 * At most maxActive pull requests have previews: the ones that came first keep theirs, a further
 * one is refused until one closes (retiring the oldest instead would let anyone who opens pull
 * requests evict everyone else's previews).
 */
async function activeLimitReached(
  kube: Kube,
  preview: LivePreview,
  policy: TrafficPolicy,
  namespace: string,
): Promise<Refusal | undefined> {
  const maxActive = policy.spec.previews?.maxActive;
  if (maxActive === undefined) return undefined;
  const firstSeen = new Map<string, string>();
  for (const p of await kube.list<LivePreview>(API_VERSION, 'Preview', namespace)) {
    if (p.metadata?.deletionTimestamp || p.spec.policy !== preview.spec.policy) continue;
    if (!sameRepository(policy.spec.previews?.repository, p.spec.repository)) continue;
    const pr = `${p.spec.repository}#${p.spec.pullRequest}`;
    const created = `${JSON.parse(JSON.stringify(p.metadata?.creationTimestamp ?? ''))}/${p.metadata?.name}`;
    if (!firstSeen.has(pr) || created < (firstSeen.get(pr) as string)) firstSeen.set(pr, created);
  }
  const admitted = [...firstSeen.entries()].sort((a, b) => (a[1] < b[1] ? -1 : 1)).slice(0, maxActive);
  if (admitted.some(([pr]) => pr === `${preview.spec.repository}#${preview.spec.pullRequest}`))
    return undefined;
  return {
    reason: REASON.LimitReached,
    message: `policy ${preview.spec.policy} runs previews for at most ${maxActive} pull requests at once (spec.previews.maxActive) and ${firstSeen.size} have some; this one is deployed when one of them closes`,
  };
}

type Workload =
  | ({ ok: false } & Refusal)
  | { ok: true; image: string; objects: [Deployment & { metadata: { name: string } }, KubernetesObject] };

/**
 * Clone stable: the stable Deployment (the Service's selector and the stable version label) with
 * the preview's image, env and labels, and a Service of the preview's own with the same ports.
 */
async function cloneStable(
  kube: Kube,
  preview: LivePreview,
  policy: TrafficPolicy,
  { namespace, name }: At,
): Promise<Workload> {
  const stableNotFound = (message: string) => ({
    ok: false as const,
    reason: 'StableNotFound' as Reason,
    message,
  });
  const service = await kube.get<Service>({
    apiVersion: 'v1',
    kind: 'Service',
    namespace,
    name: policy.spec.service,
  });
  if (!service?.spec.selector)
    return stableNotFound(
      `Service ${namespace}/${policy.spec.service} (spec.service of the policy) is missing or has no selector`,
    );
  const versionLabel = policy.spec.versionLabel ?? DEFAULTS.versionLabel;
  const [stable] = versionDeployments(
    await kube.list<Deployment>('apps/v1', 'Deployment', namespace),
    service.spec.selector,
    versionLabel,
    policy.spec.stable,
  );
  if (!stable)
    return stableNotFound(
      `no Deployment whose pods carry ${selectorString({ ...service.spec.selector, [versionLabel]: policy.spec.stable })}: the preview is cloned from the stable version`,
    );
  const [first, ...rest] = stable.spec.template.spec.containers;
  if (!first) return stableNotFound(`Deployment ${namespace}/${stable.metadata?.name} has no container`);
  const image = previewImage(preview, policy) as string;
  const owner = previewOwner(name, preview.metadata?.uid as string);
  const labels = { [MANAGED_BY]: MANAGED_BY_VALUE, [PREVIEW_LABEL]: name };
  const deployment = {
    apiVersion: 'apps/v1',
    kind: 'Deployment',
    metadata: { name, namespace, labels, ownerReferences: [owner] },
    spec: {
      replicas: preview.spec.replicas ?? 1,
      selector: { matchLabels: { [PREVIEW_LABEL]: name } },
      template: previewPodTemplate(stable, first, rest, preview, policy, image, versionLabel),
    },
  };
  const previewService = {
    apiVersion: 'v1',
    kind: 'Service',
    metadata: { name, namespace, labels, ownerReferences: [owner] },
    spec: {
      selector: { [PREVIEW_LABEL]: name },
      ports: (service.spec.ports ?? []).map((p) => copiedPort(p, policy.spec.upstreamProtocol ?? 'http1')),
    },
  };
  return { ok: true, image, objects: [deployment, previewService] };
}

type Container = Deployment['spec']['template']['spec']['containers'][number];

/**
 * The stable pod template with the preview's image and env in its first container, its labels
 * (the version label `pr-<N>-<sha7>`, the preview role), and what the policy narrows: env taken
 * out (`removeEnv`), another ServiceAccount.
 */
function previewPodTemplate(
  stable: Deployment,
  first: Container,
  rest: Container[],
  preview: LivePreview,
  policy: TrafficPolicy,
  image: string,
  versionLabel: string,
) {
  const name = preview.metadata?.name as string;
  const labels = {
    ...(stable.spec.template.metadata?.labels ?? {}),
    [versionLabel]: pinnedRef(preview.spec.pullRequest, preview.spec.commit),
    [PREVIEW_ROLE_LABEL]: 'preview',
    [PREVIEW_LABEL]: name,
  };
  const removed = new Set(policy.spec.previews?.removeEnv ?? []);
  const withoutRemoved = <T extends { env?: { name: string }[] }>(c: T): T =>
    c.env ? { ...c, env: c.env.filter((e) => !removed.has(e.name)) } : c;
  const env = [
    ...(first.env ?? []).filter((e) => !(e.name in (preview.spec.env ?? {})) && !removed.has(e.name)),
    ...Object.entries(preview.spec.env ?? {}).map(([k, v]) => ({ name: k, value: v })),
  ];
  const serviceAccountName = policy.spec.previews?.serviceAccountName;
  const annotations = stable.spec.template.metadata?.annotations;
  return {
    metadata: { labels, ...(annotations ? { annotations } : {}) },
    spec: {
      ...stable.spec.template.spec,
      // Both names: a stored pod spec carries the deprecated alias too, and they must agree.
      ...(serviceAccountName ? { serviceAccountName, serviceAccount: serviceAccountName } : {}),
      containers: [{ ...first, image, env }, ...rest.map(withoutRemoved)],
    },
  };
}

/**
 * Write the workload: never over a Deployment or Service of this name that is not this Preview's;
 * an owned one someone else edited is reverted and reported.
 */
async function writeWorkload(
  kube: Kube,
  preview: LivePreview,
  workload: KubernetesObject[],
  { namespace, name }: At,
  writes: string[],
  { events }: Options,
): Promise<Refusal | undefined> {
  const nameTaken = (taken: string[]): Refusal => ({
    reason: REASON.NameTaken,
    message: `${taken.join(' and ')} already exists and does not belong to this Preview; it is left untouched: rename the Preview`,
  });
  const taken = await takenNames(kube, workload);
  if (taken.length > 0) return nameTaken(taken);
  // Independent of each other: written together, one round trip instead of two.
  let outcomes: ApplyOutcome[];
  try {
    outcomes = await Promise.all(workload.map((o) => applyOwned(kube, o, { exact: false })));
  } catch (e) {
    if (e instanceof NameTakenError) return nameTaken([e.object]);
    // Refused for good (an invalid image or env name): say why on the Preview, do not retry.
    if (isRejected(e))
      return {
        reason: REASON.Rejected,
        message: `the API server refused the preview's workload: ${apiErrorMessage(e)}; fix the Preview (or the policy's previews.image)`,
      };
    throw e;
  }
  for (const [i, o] of workload.entries()) {
    const outcome = outcomes[i];
    if (outcome !== 'unchanged') writes.push(`apply ${o.kind} ${namespace}/${name}`);
    if (outcome === 'reverted')
      await events.record(
        preview,
        'Warning',
        REASON.ForeignEditReverted,
        `${o.kind} ${namespace}/${name} was edited outside Switchyard; the edit was reverted. Change the Preview instead`,
      );
  }
  return undefined;
}

/** Readiness: Deploying until the Deployment is available, then Ready with the URL and header. */
async function reportReadiness(
  kube: Kube,
  preview: LivePreview,
  policy: TrafficPolicy,
  image: string,
  { namespace, name }: At,
  finish: (
    phase: PreviewPhase,
    reason: Reason,
    message: string,
    extra?: Record<string, string>,
  ) => Promise<PreviewResult>,
): Promise<PreviewResult> {
  const labels = { [MANAGED_BY]: MANAGED_BY_VALUE, [PREVIEW_LABEL]: name };
  const live = await kube.get<Deployment>({
    apiVersion: 'apps/v1',
    kind: 'Deployment',
    namespace,
    name,
    labels,
  });
  if (!live || !deploymentAvailable(live, preview.spec.replicas ?? 1))
    return finish(
      'Deploying',
      'DeploymentNotAvailable',
      `Deployment ${namespace}/${name} is not available yet (image ${image})`,
    );
  const header = policy.spec.previews?.header ?? DEFAULTS.previewHeader;
  const domain = policy.spec.previews?.domain;
  const host = domain
    ? previewHost(latestRef(preview.spec.pullRequest), policy.metadata?.name as string, domain)
    : undefined;
  return finish('Ready', 'DeploymentAvailable', `serving ${image}`, {
    intercept: `${header}: ${latestRef(preview.spec.pullRequest)}`,
    ...(host ? { url: `https://${host}` } : {}),
  });
}

/** The Deployment reports itself Available with at least `replicas` (default 1) available. */
export function deploymentAvailable(d: KubernetesObject, replicas = 1): boolean {
  const status = (d as Deployment).status;
  return Boolean(
    status?.conditions?.some((c) => c.type === 'Available' && c.status === 'True') &&
      (status.availableReplicas ?? 0) >= replicas,
  );
}

/** Newest first (preview-age.ts); the same age, by name, as the API server lists them. */
function newestFirst(a: LivePreview, b: LivePreview): number {
  return compareAge(b, a) || String(b.metadata?.name).localeCompare(String(a.metadata?.name));
}

/** Routes first, then the workload, then the finalizer. */
async function removePreview(
  kube: Kube,
  preview: LivePreview,
  options: PreviewReconcileOptions,
  writes: string[],
): Promise<void> {
  if (!preview.metadata?.finalizers?.includes(PREVIEW_FINALIZER)) return;
  const namespace = preview.metadata.namespace as string;
  const name = preview.metadata.name as string;
  await options.rewriteRoutes?.(namespace, preview.spec.policy);
  for (const [apiVersion, kind] of [
    ['apps/v1', 'Deployment'],
    ['v1', 'Service'],
  ] as const) {
    const live = await kube.get<KubernetesObject>({
      apiVersion,
      kind,
      namespace,
      name,
      labels: { [MANAGED_BY]: MANAGED_BY_VALUE, [PREVIEW_LABEL]: name },
    });
    // Only what this Preview made: never a same-named object it was refused (NameTaken).
    if (!live?.metadata?.labels || live.metadata.labels[PREVIEW_LABEL] !== name) continue;
    if (!ownedLike(live, { apiVersion, kind, metadata: { name, ownerReferences: [previewOwner(name)] } }))
      continue;
    await kube.delete({ apiVersion, kind, namespace, name });
    writes.push(`delete ${kind} ${namespace}/${name}`);
  }
  await kube.apply(
    { apiVersion: API_VERSION, kind: 'Preview', metadata: { name, namespace, finalizers: [] } },
    FIELD_MANAGER,
    true,
  );
  writes.push(`remove finalizer Preview ${namespace}/${name}`);
  await options.events?.record(preview, 'Normal', REASON.Removed, 'routes, Deployment and Service removed');
}

async function writePreviewStatus(
  kube: Kube,
  preview: LivePreview,
  phase: PreviewPhase,
  reason: Reason,
  message: string,
  extra: Record<string, string>,
  now: Date,
): Promise<void> {
  const previous = (preview.status as { conditions?: ConditionValue[] } | undefined)?.conditions;
  const conditions = mergeConditions(
    previous,
    [
      {
        type: 'Ready',
        status: phase === 'Ready' ? 'True' : 'False',
        reason,
        message,
        ...(preview.metadata?.generation !== undefined
          ? { observedGeneration: preview.metadata.generation }
          : {}),
      },
    ],
    now,
  );
  const status = {
    ...(preview.metadata?.generation !== undefined
      ? { observedGeneration: preview.metadata.generation }
      : {}),
    phase,
    ...extra,
    conditions,
  };
  if (JSON.stringify(preview.status) === JSON.stringify(status)) return;
  const { group, version, plural } = RESOURCE.Preview;
  await kube.replaceStatus(group, version, plural, { ...preview, status } as KubernetesObject);
}
