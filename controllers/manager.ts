/**
 * The controller process: informers (list + watch, re-list on 410 Gone, restart with backoff on
 * other errors) for TrafficPolicies, Previews and the objects they own; their handlers only enqueue
 * a key (sample-controller); one work queue reconciles policies and one previews, one at a time per
 * key, and a resync re-queues everything. With leader election on (the default in a cluster), the
 * informers of every replica stay warm but only the leader's queues run: a standby writes nothing.
 */
import type { KubeConfig, KubernetesObject } from '@kubernetes/client-node';
import Fastify, { type FastifyBaseLogger, type FastifyInstance } from 'fastify';
import { Counter, Gauge, Histogram, Registry } from 'prom-client';
import type { Logger } from '../src/core/logger.js';
import { MANAGED_BY, POLICY_LABEL } from '../src/istio/objects.js';
import { kubeEventRecorder } from './events.js';
import { type ObjectInformer, watchObjects } from './informer.js';
import { clientNodeKube } from './kube.js';
import { electLeader, type LeaderElectionOptions } from './leader.js';
import { PREVIEW_LABEL, reconcilePreview } from './preview.js';
import { type ControllerMode, reconcileTrafficPolicy, VERSION_OF_LABEL } from './traffic-policy.js';
import { WorkQueue } from './work-queue.js';

export interface ControllerOptions {
  kubeconfig: KubeConfig;
  logger: Logger;
  /** Watch only these namespaces; empty means all. */
  namespaces?: string[];
  port?: number;
  host?: string;
  resyncMs?: number;
  mode?: ControllerMode;
  /** Campaign for this Lease before writing anything; omitted: lead at once (one replica). */
  leaderElection?: LeaderElectionOptions;
  /** Called when the Lease is lost (the CLI exits, as client-go's controllers do). */
  onLeadershipLost?: () => void;
}

export interface RunningController {
  url: string;
  http: FastifyInstance;
  isLeader(): boolean;
  stop(): Promise<void>;
}

type Obj = KubernetesObject & { spec?: { policy?: string } };

function controllerMetrics() {
  const registry = new Registry();
  return {
    registry,
    errors: new Counter({
      name: 'switchyard_controller_reconcile_errors_total',
      help: 'Failed reconciles (retried with backoff) by HTTP status from the API server: 409 is a lost optimistic-concurrency race, 403 a missing permission',
      labelNames: ['code'] as const,
      registers: [registry],
    }),
    reconciles: new Counter({
      name: 'switchyard_controller_reconciles_total',
      help: 'Reconciles by result',
      labelNames: ['result'] as const,
      registers: [registry],
    }),
    duration: new Histogram({
      name: 'switchyard_controller_reconcile_duration_seconds',
      help: 'Time per reconcile',
      registers: [registry],
    }),
    writes: new Counter({
      name: 'switchyard_controller_writes_total',
      help: 'Objects applied or deleted',
      labelNames: ['kind', 'verb'] as const,
      registers: [registry],
    }),
    reverted: new Counter({
      name: 'switchyard_controller_foreign_edits_reverted_total',
      help: 'Owned objects found edited by someone else and reverted, by kind',
      labelNames: ['kind'] as const,
      registers: [registry],
    }),
    leader: new Gauge({
      name: 'switchyard_controller_leader',
      help: '1 while this replica holds the leader Lease',
      registers: [registry],
    }),
    queue: new Gauge({
      name: 'switchyard_controller_queue_depth',
      help: 'Keys waiting or being reconciled',
      registers: [registry],
    }),
  };
}

export async function startController(opts: ControllerOptions): Promise<RunningController> {
  const { kubeconfig, logger } = opts;
  const kube = clientNodeKube(kubeconfig);
  const metrics = controllerMetrics();
  const namespaces = opts.namespaces && opts.namespaces.length > 0 ? opts.namespaces : [undefined];
  const mode = opts.mode ?? 'istio';
  const events = kubeEventRecorder(kube, logger);

  /** A queue whose failures are counted by API status and logged; successes are timed and counted. */
  const queueFor = (
    resource: 'policy' | 'preview',
    reconcile: (
      namespace: string,
      name: string,
    ) => Promise<{ writes: string[]; reverted?: string[]; requeueAfterMs?: number } | undefined>,
  ) =>
    new WorkQueue(
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
    );
  const reconcilePolicy = (ns: string, name: string) =>
    reconcileTrafficPolicy(kube, ns, name, { mode, events });
  const queue = queueFor('policy', reconcilePolicy);
  const previewQueue = queueFor('preview', (ns, name) =>
    reconcilePreview(kube, ns, name, { events, rewriteRoutes: reconcilePolicy }),
  );

  const informers: ObjectInformer<Obj>[] = [];
  let stopped = false;
  const watch = (
    apiVersion: string,
    kind: string,
    plural: string,
    onObject: (o: Obj) => void,
    labelSelector?: string,
  ) => {
    for (const namespace of namespaces)
      informers.push(
        watchObjects<Obj>(
          kubeconfig,
          { apiVersion, kind, plural, namespace, ...(labelSelector ? { labelSelector } : {}) },
          logger,
          onObject,
          () => stopped,
        ),
      );
  };
  const policies = () => informers[0]?.list() ?? [];
  const keyOf = (o: KubernetesObject, name = o.metadata?.name) => `${o.metadata?.namespace}/${name}`;

  watch('switchyard.dev/v1alpha1', 'TrafficPolicy', 'trafficpolicies', (o) => queue.add(keyOf(o)));
  watch('switchyard.dev/v1alpha1', 'Preview', 'previews', (o) => {
    previewQueue.add(keyOf(o));
    if (o.spec?.policy) queue.add(keyOf(o, o.spec.policy));
  });
  // Preview Deployments report readiness; a change re-evaluates their Preview.
  watch(
    'apps/v1',
    'Deployment',
    'deployments',
    (o) => {
      const preview = o.metadata?.labels?.[PREVIEW_LABEL];
      if (preview) previewQueue.add(keyOf(o, preview));
    },
    PREVIEW_LABEL,
  );
  // Owned objects: a change by someone else re-queues their policy, which reverts it.
  const ownerPolicy = (o: Obj) => {
    const owner =
      o.metadata?.labels?.[MANAGED_BY] === 'switchyard' ? o.metadata.labels[POLICY_LABEL] : undefined;
    if (owner) queue.add(keyOf(o, owner));
  };
  if (mode === 'gateway') watch('v1', 'Service', 'services', ownerPolicy, VERSION_OF_LABEL);
  else {
    watch('networking.istio.io/v1', 'DestinationRule', 'destinationrules', ownerPolicy, MANAGED_BY);
    watch('networking.istio.io/v1alpha3', 'EnvoyFilter', 'envoyfilters', ownerPolicy, MANAGED_BY);
    watch('networking.istio.io/v1', 'VirtualService', 'virtualservices', (o) => {
      if (o.metadata?.labels?.[MANAGED_BY] === 'switchyard') return ownerPolicy(o);
      // A foreign VirtualService may start or stop a Conflict: look at every policy of its namespace.
      for (const p of informers.slice(0, namespaces.length).flatMap((i) => i.list(o.metadata?.namespace)))
        queue.add(keyOf(p));
    });
  }

  let ready = false;
  const http = Fastify({
    loggerInstance: logger.child({ server: 'controller' }, { level: 'warn' }) as FastifyBaseLogger,
  });
  http.get('/healthz', async () => 'ok\n');
  http.get('/readyz', async (_req, reply) =>
    ready ? 'ok\n' : reply.code(503).send('informers not synced yet\n'),
  );
  http.get('/metrics', async (_req, reply) => {
    metrics.queue.set(queue.length);
    reply.type(metrics.registry.contentType);
    return metrics.registry.metrics();
  });
  const url = await http.listen({ port: opts.port ?? 8081, host: opts.host ?? '0.0.0.0' });

  await Promise.all(informers.map((i) => i.start()));
  ready = true;
  // Keys queued while standing by are handled once this replica leads.
  const elector = opts.leaderElection
    ? electLeader(kube, opts.leaderElection, logger, () => {
        metrics.leader.set(0);
        queue.stop();
        previewQueue.stop();
        opts.onLeadershipLost?.();
      })
    : undefined;
  let running: Promise<unknown> | undefined;
  const lead = () => {
    if (stopped) return;
    metrics.leader.set(1);
    running = Promise.all([queue.run(), previewQueue.run()]);
  };
  if (elector) void elector.acquired.then(lead);
  else lead();
  logger.info(
    { url, mode, namespaces: opts.namespaces ?? 'all', policies: policies().length },
    'controller started',
  );
  const resync = setInterval(() => {
    for (const i of informers.slice(0, namespaces.length)) for (const p of i.list()) queue.add(keyOf(p));
    for (const i of informers.slice(namespaces.length, 2 * namespaces.length))
      for (const p of i.list()) previewQueue.add(keyOf(p));
  }, opts.resyncMs ?? 300_000);

  return {
    url,
    http,
    isLeader: () => (elector ? elector.isLeader() : true),
    async stop() {
      stopped = true;
      clearInterval(resync);
      await Promise.all(informers.map((i) => i.stop()));
      queue.stop();
      previewQueue.stop();
      await running;
      await elector?.stop();
      await http.close();
    },
  };
}
