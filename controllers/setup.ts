/**
 * The controllers on a Manager (kube/manager.ts): their watches only enqueue a key
 * (sample-controller); one work queue reconciles TrafficPolicies and one Previews, one at a time
 * per key, and a resync re-queues everything. With leader election on (the default in a cluster),
 * the informers of every replica stay warm but only the leader's queues run: a standby writes
 * nothing.
 */
import { Counter, Gauge, Histogram } from 'prom-client';
import { policyHosts } from '../core/compiler/compile.js';
import { affectedByHostChange, type ClaimedHosts } from '../core/compiler/hosts.js';
import { DEFAULT_ISTIO_ROOT_NAMESPACE } from '../core/istio/request-authentication.js';
import {
  MANAGED_BY,
  MANAGED_BY_VALUE,
  POLICY_LABEL,
  PREVIEW_LABEL,
  VERSION_OF_LABEL,
} from '../core/resources/labels.js';
import { CANARY_RUN_PHASES, DEFAULTS, RESOURCE, type TrafficPolicy } from '../core/resources/schema.js';
import { FIELD_MANAGER } from '../kube/apply.js';
import { kubeEventRecorder } from '../kube/events.js';
import {
  type Cached,
  ChangeFilter,
  keyOf,
  type Manager,
  type WatchEvent,
  type WatchedObject,
} from '../kube/manager.js';
import type { WorkQueue } from '../kube/work-queue.js';
import type { Backend, DesiredContext, MeshMetrics } from './backends/backend.js';
import { backendFor, type ControllerMode } from './backends/index.js';
import type { TokenAuthenticationSetup } from './backends/istio-tokens.js';
import type { MetricsReader } from './canary-metrics.js';
import { reconcileCanaryRun } from './canary-run.js';
import { deploymentAvailable, reconcilePreview } from './preview.js';
import { reconcileTrafficPolicy } from './traffic-policy.js';

export interface ControllersOptions {
  mode?: ControllerMode;
  /** Reconciles in flight per queue (policies, previews); each key is handled by one at a time. */
  workers?: number;
  /** Mesh mode: the RequestAuthentication for intercept tokens (token-authentication.ts). */
  tokenAuthentication?: TokenAuthenticationSetup;
  /** Where progressive canary runs read their analysis metrics (--prometheus). */
  metrics?: MetricsReader;
  /** Mesh mode: which series the built-in metrics read, Istio's standard ones or Envoy's own. */
  meshMetrics?: MeshMetrics;
}

/** What /readyz says when the cluster lacks Switchyard's own CRDs. */
const NEEDS_CRDS = "install Switchyard's CRDs (switchyard crds | kubectl apply --server-side -f -)";

function reconcileMetrics(manager: Manager) {
  const registers = [manager.registry];
  return {
    errors: new Counter({
      name: 'switchyard_controller_reconcile_errors_total',
      help: 'Failed reconciles (retried with backoff) by HTTP status from the API server: 409 is a lost optimistic-concurrency race, 403 a missing permission',
      labelNames: ['code'] as const,
      registers,
    }),
    reconciles: new Counter({
      name: 'switchyard_controller_reconciles_total',
      help: 'Reconciles by result',
      labelNames: ['result'] as const,
      registers,
    }),
    duration: new Histogram({
      name: 'switchyard_controller_reconcile_duration_seconds',
      help: 'Time per reconcile',
      registers,
    }),
    writes: new Counter({
      name: 'switchyard_controller_writes_total',
      help: 'Objects applied or deleted',
      labelNames: ['kind', 'verb'] as const,
      registers,
    }),
    canaryWeight: new Gauge({
      name: 'switchyard_canary_weight',
      help: 'The weight a progressive canary run has set, by policy (namespace/name) and canary version',
      labelNames: ['policy', 'version'] as const,
      registers,
    }),
    canaryPhase: new Gauge({
      name: 'switchyard_canary_phase',
      help: 'A progressive canary run by phase: 1 for the phase it is in, 0 for the others',
      labelNames: ['policy', 'version', 'phase'] as const,
      registers,
    }),
    reverted: new Counter({
      name: 'switchyard_controller_foreign_edits_reverted_total',
      help: 'Owned objects found edited by someone else and reverted, by kind',
      labelNames: ['kind'] as const,
      registers,
    }),
  };
}

/** The three work queues: policies, previews, and progressive canary runs. */
interface Queues {
  policies: WorkQueue;
  previews: WorkQueue;
  canaries: WorkQueue;
}

/** What the watch handlers share: the queues, the caches, and what changed since last seen. */
interface Watching {
  manager: Manager;
  queues: Queues;
  filter: ChangeFilter;
  /** Filled as the watches are added; read by handlers only once events come. */
  caches: { policies: Cached; previews: Cached };
}

/** Result of a reconcile, as the queue wrapper counts and logs it. */
type Reconciled = { writes: string[]; reverted?: string[]; requeueAfterMs?: number } | undefined;

/**
 * Adds the TrafficPolicy and Preview controllers to `manager`: their queues, their watches (which
 * only enqueue keys), the backend's own watches, and the resync.
 */
export function setupControllers(manager: Manager, opts: ControllersOptions = {}): void {
  const backend = backendFor(opts.mode ?? 'istio');
  const queues = setupQueues(manager, backend, opts);
  const w: Watching = { manager, queues, filter: new ChangeFilter(), caches: {} as Watching['caches'] };
  w.caches.policies = watchPolicies(w);
  w.caches.previews = watchPreviews(w);
  watchWorkloads(w);
  // The kinds only this mode writes or reads (mesh mode: Istio's objects, Namespaces, tokens).
  backend.addWatches({
    manager,
    policies: w.caches.policies,
    requeuePolicy: (key) => queues.policies.add(key),
    ownedChanged: (o, event) => ownedChanged(w, o, event),
    filter: w.filter,
    tokenAuthentication: opts.tokenAuthentication ?? {},
  });
  manager.onResync(() => {
    for (const p of w.caches.policies.list()) {
      queues.policies.add(keyOf(p));
      queues.canaries.add(keyOf(p));
    }
    for (const p of w.caches.previews.list()) queues.previews.add(keyOf(p));
  });
}

/** What a backend is told about the installation: where the token objects are, when there are keys. */
function installationOf(opts: ControllersOptions): DesiredContext {
  const setup = opts.tokenAuthentication;
  if (!setup?.tokens) return {};
  return {
    tokenVerifierNamespace: setup.tokens.namespace ?? setup.namespace ?? DEFAULT_ISTIO_ROOT_NAMESPACE,
  };
}

function setupQueues(manager: Manager, backend: Backend, opts: ControllersOptions): Queues {
  const { kube, logger } = manager;
  const metrics = reconcileMetrics(manager);
  const events = kubeEventRecorder(kube, logger);
  const queue = (resource: string, reconcile: (namespace: string, name: string) => Promise<Reconciled>) =>
    reconcileQueue(manager, metrics, resource, reconcile, opts.workers ?? 8);
  const reconcilePolicy = (ns: string, name: string) =>
    reconcileTrafficPolicy(kube, ns, name, { backend, events, installation: installationOf(opts) });
  const policies = queue('policy', reconcilePolicy);
  const previews = queue('preview', (ns, name) =>
    reconcilePreview(kube, ns, name, { events, rewriteRoutes: reconcilePolicy }),
  );
  // Progressive canaries: a run moves on its own clock (requeued when it next needs a look); a
  // change of the weight in force re-writes the policy's routes.
  const waiting = new Set<string>();
  const canaries = queue('canary', async (ns, name) => {
    const result = await reconcileCanaryRun(kube, ns, name, {
      events,
      waiting,
      backend,
      series: backend.analysisSeries(opts.meshMetrics ?? 'istio'),
      ...(opts.metrics ? { metrics: opts.metrics } : {}),
    });
    if (result.weightChanged) policies.add(`${ns}/${name}`);
    if (result.run) {
      const labels = { policy: `${ns}/${name}`, version: result.run.version };
      metrics.canaryWeight.set(labels, result.run.weight);
      for (const phase of CANARY_RUN_PHASES)
        metrics.canaryPhase.set({ ...labels, phase }, phase === result.run.phase ? 1 : 0);
    }
    return result.requeueAfterMs === undefined
      ? undefined
      : { writes: [], requeueAfterMs: result.requeueAfterMs };
  });
  return { policies, previews, canaries };
}

/** A queue whose failures are counted by API status and logged; successes are timed and counted. */
function reconcileQueue(
  manager: Manager,
  metrics: ReturnType<typeof reconcileMetrics>,
  resource: string,
  reconcile: (namespace: string, name: string) => Promise<Reconciled>,
  workers: number,
): WorkQueue {
  const { logger } = manager;
  return manager.queue(
    async (key) => {
      const [namespace, name] = key.split('/') as [string, string];
      const end = metrics.duration.startTimer();
      const result = await reconcile(namespace, name);
      end();
      metrics.reconciles.inc({ result: 'success' });
      const writes = result?.writes ?? [];
      for (const w of writes) {
        const [verb, kind] = w.split(' ') as [string, string];
        metrics.writes.inc({ kind, verb });
      }
      for (const r of result?.reverted ?? []) metrics.reverted.inc({ kind: r.split(' ')[0] as string });
      if (writes.length > 0)
        logger.info({ [resource]: key, writes, reverted: result?.reverted ?? [] }, 'reconciled');
      return result?.requeueAfterMs;
    },
    (key, error, attempt) => {
      metrics.reconciles.inc({ result: 'error' });
      metrics.errors.inc({ code: String((error as { code?: number })?.code ?? 'other') });
      logger.warn(
        { [resource]: key, attempt, err: error instanceof Error ? error.message : String(error) },
        'reconcile failed; retrying with backoff',
      );
    },
    workers,
  );
}

/** Some field of the object's spec or metadata is set by a manager other than Switchyard. */
const foreign = (o: WatchedObject) =>
  (o.metadata?.managedFields ?? []).some((m) => m.manager !== FIELD_MANAGER && m.subresource !== 'status');

/** Finalizers matter once the object is being deleted; before that, the only one is our own. */
const meta = (o: WatchedObject) => [
  o.metadata?.generation,
  o.metadata?.labels,
  o.metadata?.annotations,
  o.metadata?.deletionTimestamp ? o.metadata.finalizers : undefined,
];

const hostsOf = (p: WatchedObject): ClaimedHosts => ({
  hosts: policyHosts(p as unknown as TrafficPolicy, DEFAULTS.clusterDomain),
  namespace: p.metadata?.namespace ?? DEFAULTS.namespace,
});

/** TrafficPolicies: the policy, its canary run, the policies its hosts reach, and its previews. */
function watchPolicies(w: Watching): Cached {
  const { queues, filter, caches } = w;
  /** Each policy's hosts as last seen, to find whom a change of them frees. */
  const hostsSeen = new Map<string, ClaimedHosts>();
  return w.manager.watch({ ...RESOURCE.TrafficPolicy, missingHint: NEEDS_CRDS }, (o, event) => {
    if (!filter.changed('policy', o, event, meta(o))) return;
    queues.policies.add(keyOf(o));
    if (event !== 'delete') queues.canaries.add(keyOf(o));
    // A policy that goes or changes its hosts may free, or take, a host another policy claims,
    // and so on down the claim order (rule 7): those overlapping its hosts before and after. (A
    // new one is the newest: it takes no host from anyone; one whose hosts stay takes none either.)
    const before = hostsSeen.get(keyOf(o));
    const now = hostsOf(o);
    if (event === 'delete') hostsSeen.delete(keyOf(o));
    else hostsSeen.set(keyOf(o), now);
    const moved = event === 'delete' || JSON.stringify(before) !== JSON.stringify(now);
    if (event !== 'add' && moved) {
      const others = caches.policies.list().filter((p) => keyOf(p) !== keyOf(o));
      for (const hosts of before ? [before, now] : [now])
        for (const p of affectedByHostChange(hosts, others, hostsOf, DEFAULTS.clusterDomain))
          queues.policies.add(keyOf(p));
    }
    // Its previews read it (image template, TTL, limits), and may be waiting for it to exist.
    for (const p of caches.previews.list(o.metadata?.namespace))
      if (p.spec?.policy === o.metadata?.name) queues.previews.add(keyOf(p));
  });
}

/** Previews: the preview, those a removal makes room for, and its policy when Ready changes. */
function watchPreviews(w: Watching): Cached {
  const { queues, filter, caches } = w;
  return w.manager.watch({ ...RESOURCE.Preview, missingHint: NEEDS_CRDS }, (o, event) => {
    if (filter.changed('preview', o, event, meta(o))) queues.previews.add(keyOf(o));
    // A preview that goes may free a place under its policy's previews.maxActive.
    if (event === 'delete' || (event === 'update' && o.metadata?.deletionTimestamp))
      for (const p of caches.previews.list(o.metadata?.namespace))
        if (p !== o && p.spec?.policy === o.spec?.policy && p.status?.phase === 'Failed')
          queues.previews.add(keyOf(p));
    // The policy routes Ready previews: whether one is Ready matters to it, the rest of its status not.
    const ready = o.status?.phase === 'Ready';
    if (
      o.spec?.policy &&
      filter.changed('preview-ready', o, event, [o.spec, ready, Boolean(o.metadata?.deletionTimestamp)])
    )
      queues.policies.add(keyOf(o, o.spec.policy));
  });
}

/**
 * Deployments and Services, every one cached (a preview clones its stable Deployment and reads the
 * policy's Service from the cache): a preview's report readiness or a foreign edit to its Preview,
 * a per-version Service's to its policy, and a foreign one named like a Preview may end its NameTaken.
 */
function watchWorkloads(w: Watching): void {
  const { queues, filter, caches } = w;
  const namesakePreview = (o: WatchedObject) => {
    if (caches.previews.get(o.metadata?.name as string, o.metadata?.namespace)) queues.previews.add(keyOf(o));
  };
  w.manager.watch({ apiVersion: 'apps/v1', kind: 'Deployment', plural: 'deployments' }, (o, event) => {
    const preview = o.metadata?.labels?.[PREVIEW_LABEL];
    // A new Deployment is not available yet: the preview is told when that changes.
    const available = `${deploymentAvailable(o)}/${(o as { status?: { availableReplicas?: number } }).status?.availableReplicas ?? 0}`;
    const was =
      filter.swap(`deployment/${keyOf(o)}`, event === 'delete' ? undefined : available) ?? 'false/0';
    if (preview && (event === 'delete' || foreign(o) || available !== was))
      queues.previews.add(keyOf(o, preview));
    else if (!preview && event !== 'update') namesakePreview(o);
  });
  w.manager.watch({ apiVersion: 'v1', kind: 'Service', plural: 'services' }, (o, event) => {
    const preview = o.metadata?.labels?.[PREVIEW_LABEL];
    if (preview && (event === 'delete' || foreign(o))) queues.previews.add(keyOf(o, preview));
    else if (o.metadata?.labels?.[VERSION_OF_LABEL]) ownedChanged(w, o, event);
    else if (!preview && event !== 'update') namesakePreview(o);
  });
}

/**
 * An object Switchyard wrote for a policy changed: a change by someone else re-queues its policy,
 * which reverts it; our own writes (every field owned by Switchyard's manager) do not.
 */
function ownedChanged(w: Watching, o: WatchedObject, event: WatchEvent): void {
  const owner =
    o.metadata?.labels?.[MANAGED_BY] === MANAGED_BY_VALUE ? o.metadata.labels[POLICY_LABEL] : undefined;
  if (owner && (event === 'delete' || foreign(o))) w.queues.policies.add(keyOf(o, owner));
}
