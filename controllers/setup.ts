/**
 * The controllers on a Manager (kube/manager.ts): their watches only enqueue a key
 * (sample-controller); one work queue reconciles TrafficPolicies and one Previews, one at a time
 * per key, and a resync re-queues everything. With leader election on (the default in a cluster),
 * the informers of every replica stay warm but only the leader's queues run: a standby writes
 * nothing.
 */
import { Counter, Gauge, Histogram } from 'prom-client';
import { FIELD_MANAGER } from '../kube/apply.js';
import { kubeEventRecorder } from '../kube/events.js';
import { ChangeFilter, keyOf, type Manager, type WatchEvent, type WatchedObject } from '../kube/manager.js';
import { policyHosts } from '../src/compiler/compile.js';
import { affectedByHostChange, type ClaimedHosts } from '../src/compiler/hosts.js';
import {
  MANAGED_BY,
  MANAGED_BY_VALUE,
  POLICY_LABEL,
  PREVIEW_LABEL,
  VERSION_OF_LABEL,
} from '../src/resources/labels.js';
import { CANARY_RUN_PHASES, DEFAULTS, RESOURCE, type TrafficPolicy } from '../src/resources/schema.js';
import type { MeshMetrics } from './backends/backend.js';
import { backendFor, type ControllerMode } from './backends/index.js';
import type { TokenAuthenticationSetup } from './backends/istio-tokens.js';
import { reconcileCanaryRun } from './canary-run.js';
import type { MetricsReader } from './delivery/prometheus.js';
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

/** Adds the TrafficPolicy and Preview controllers, their watches and their resync, to `manager`. */
export function setupControllers(manager: Manager, opts: ControllersOptions = {}): void {
  const { kube, logger } = manager;
  const metrics = reconcileMetrics(manager);
  const backend = backendFor(opts.mode ?? 'istio');
  const events = kubeEventRecorder(kube, logger);

  /** A queue whose failures are counted by API status and logged; successes are timed and counted. */
  const queueFor = (
    resource: 'policy' | 'preview' | 'canary',
    reconcile: (
      namespace: string,
      name: string,
    ) => Promise<{ writes: string[]; reverted?: string[]; requeueAfterMs?: number } | undefined>,
  ) =>
    manager.queue(
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
      opts.workers ?? 8,
    );
  const reconcilePolicy = (ns: string, name: string) =>
    reconcileTrafficPolicy(kube, ns, name, { backend, events });
  const queue = queueFor('policy', reconcilePolicy);
  const previewQueue = queueFor('preview', (ns, name) =>
    reconcilePreview(kube, ns, name, { events, rewriteRoutes: reconcilePolicy }),
  );

  // Progressive canaries: a run moves on its own clock (requeued when it next needs a look); a
  // change of the weight in force re-writes the policy's routes.
  const waitingRuns = new Set<string>();
  const canaryQueue = queueFor('canary', async (ns, name) => {
    const result = await reconcileCanaryRun(kube, ns, name, {
      events,
      waiting: waitingRuns,
      backend,
      series: backend.analysisSeries(opts.meshMetrics ?? 'istio'),
      ...(opts.metrics ? { metrics: opts.metrics } : {}),
    });
    if (result.weightChanged) queue.add(`${ns}/${name}`);
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

  const filter = new ChangeFilter();
  /** Some field of the object's spec or metadata is set by a manager other than Switchyard. */
  const foreign = (o: WatchedObject) =>
    (o.metadata?.managedFields ?? []).some((m) => m.manager !== FIELD_MANAGER && m.subresource !== 'status');
  // Finalizers matter once the object is being deleted; before that, the only one is our own.
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
  /** Each policy's hosts as last seen, to find whom a change of them frees. */
  const hostsSeen = new Map<string, ClaimedHosts>();
  const policies = manager.watch({ ...RESOURCE.TrafficPolicy, missingHint: NEEDS_CRDS }, (o, event) => {
    if (!filter.changed('policy', o, event, meta(o))) return;
    queue.add(keyOf(o));
    if (event !== 'delete') canaryQueue.add(keyOf(o));
    // A policy that goes or changes its hosts may free, or take, a host another policy claims,
    // and so on down the claim order (rule 7): those overlapping its hosts before and after. (A
    // new one is the newest: it takes no host from anyone.)
    const before = hostsSeen.get(keyOf(o));
    const now = hostsOf(o);
    if (event === 'delete') hostsSeen.delete(keyOf(o));
    else hostsSeen.set(keyOf(o), now);
    if (event !== 'add') {
      const others = policies.list().filter((p) => keyOf(p) !== keyOf(o));
      for (const hosts of before ? [before, now] : [now])
        for (const p of affectedByHostChange(hosts, others, hostsOf, DEFAULTS.clusterDomain))
          queue.add(keyOf(p));
    }
    // Its previews read it (image template, TTL, limits), and may be waiting for it to exist.
    for (const p of previews.list(o.metadata?.namespace))
      if (p.spec?.policy === o.metadata?.name) previewQueue.add(keyOf(p));
  });
  const previews = manager.watch({ ...RESOURCE.Preview, missingHint: NEEDS_CRDS }, (o, event) => {
    if (filter.changed('preview', o, event, meta(o))) previewQueue.add(keyOf(o));
    // A preview that goes may free a place under its policy's previews.maxActive.
    if (event === 'delete' || (event === 'update' && o.metadata?.deletionTimestamp))
      for (const p of previews.list(o.metadata?.namespace))
        if (p !== o && p.spec?.policy === o.spec?.policy && p.status?.phase === 'Failed')
          previewQueue.add(keyOf(p));
    // The policy routes Ready previews: whether one is Ready matters to it, the rest of its status not.
    const ready = o.status?.phase === 'Ready';
    if (
      o.spec?.policy &&
      filter.changed('preview-ready', o, event, [o.spec, ready, Boolean(o.metadata?.deletionTimestamp)])
    )
      queue.add(keyOf(o, o.spec.policy));
  });
  /** A foreign object named like a Preview came or went: the Preview's NameTaken may change. */
  const namesakePreview = (o: WatchedObject) => {
    if (previews.get(o.metadata?.name as string, o.metadata?.namespace)) previewQueue.add(keyOf(o));
  };
  // Every Deployment is cached (a preview clones its stable one from the cache); a preview's
  // Deployment reports readiness, and a change re-evaluates its Preview.
  manager.watch({ apiVersion: 'apps/v1', kind: 'Deployment', plural: 'deployments' }, (o, event) => {
    const preview = o.metadata?.labels?.[PREVIEW_LABEL];
    // A new Deployment is not available yet: the preview is told when that changes.
    const available = `${deploymentAvailable(o)}/${(o as { status?: { availableReplicas?: number } }).status?.availableReplicas ?? 0}`;
    const was =
      filter.swap(`deployment/${keyOf(o)}`, event === 'delete' ? undefined : available) ?? 'false/0';
    if (preview && (event === 'delete' || foreign(o) || available !== was))
      previewQueue.add(keyOf(o, preview));
    else if (!preview && event !== 'update') namesakePreview(o);
  });
  // Owned objects: a change by someone else re-queues their policy, which reverts it; our own
  // writes (every field owned by Switchyard's manager) do not.
  const ownerPolicy = (o: WatchedObject, event: WatchEvent) => {
    const owner =
      o.metadata?.labels?.[MANAGED_BY] === MANAGED_BY_VALUE ? o.metadata.labels[POLICY_LABEL] : undefined;
    if (owner && (event === 'delete' || foreign(o))) queue.add(keyOf(o, owner));
  };
  // Every Service is cached (a policy's is read on each preview reconcile); those Switchyard
  // writes (a preview's, and in gateway mode one per version) are kept as written.
  manager.watch({ apiVersion: 'v1', kind: 'Service', plural: 'services' }, (o, event) => {
    const preview = o.metadata?.labels?.[PREVIEW_LABEL];
    if (preview && (event === 'delete' || foreign(o))) previewQueue.add(keyOf(o, preview));
    else if (o.metadata?.labels?.[VERSION_OF_LABEL]) ownerPolicy(o, event);
    else if (!preview && event !== 'update') namesakePreview(o);
  });
  // The kinds only this mode writes or reads (mesh mode: Istio's objects, Namespaces, tokens).
  backend.addWatches({
    manager,
    policies,
    requeuePolicy: (key) => queue.add(key),
    ownedChanged: ownerPolicy,
    filter,
    tokenAuthentication: opts.tokenAuthentication ?? {},
  });
  manager.onResync(() => {
    for (const p of policies.list()) {
      queue.add(keyOf(p));
      canaryQueue.add(keyOf(p));
    }
    for (const p of previews.list()) previewQueue.add(keyOf(p));
  });
}
