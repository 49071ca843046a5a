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
import { CachedKube } from '../kube/cached-kube.js';
import { clientNodeKube, type Kube } from '../kube/client.js';
import { kubeEventRecorder } from '../kube/events.js';
import { type ObjectInformer, watchObjects } from '../kube/informer.js';
import { electLeader, type LeaderElectionOptions } from '../kube/leader.js';
import { WorkQueue } from '../kube/work-queue.js';
import { type DeliveryLog, memoryDeliveryLog } from '../previews/delivery-log.js';
import type { GithubClients } from '../previews/github-client.js';
import { GithubReporter, pullRequestKey } from '../previews/github-reporter.js';
import { registerGithubWebhook } from '../previews/github-webhook.js';
import { handleGithubEvent } from '../previews/handle-event.js';
import { reportedPreview } from '../previews/pull-request-report.js';
import { policyHosts, sameRepository } from '../src/compiler/compile.js';
import { HostClaims } from '../src/compiler/hosts.js';
import type { Logger } from '../src/core/logger.js';
import { REASON } from '../src/resources/conditions.js';
import {
  MANAGED_BY,
  MANAGED_BY_VALUE,
  POLICY_LABEL,
  PREVIEW_LABEL,
  REPORT_FINALIZER,
  VERSION_OF_LABEL,
} from '../src/resources/labels.js';
import { DEFAULTS, type TrafficPolicy } from '../src/resources/schema.js';
import { deploymentAvailable, reconcilePreview } from './preview.js';
import { type ControllerMode, FIELD_MANAGER, reconcileTrafficPolicy } from './traffic-policy.js';

export interface ControllerOptions {
  kubeconfig: KubeConfig;
  logger: Logger;
  /** Watch only these namespaces; empty means all. */
  namespaces?: string[];
  port?: number;
  host?: string;
  resyncMs?: number;
  mode?: ControllerMode;
  /** Reconciles in flight per queue (policies, previews); each key is handled by one at a time. */
  workers?: number;
  /** Campaign for this Lease before writing anything; omitted: lead at once (one replica). */
  leaderElection?: LeaderElectionOptions;
  /** Called when the Lease is lost (the CLI exits, as client-go's controllers do). */
  onLeadershipLost?: () => void;
  /** Serve `POST /webhooks/github` with this webhook secret (the PR bot; issue 4). */
  githubWebhookSecret?: string;
  /** Where deliveries already taken are remembered (shared by replicas); default: in memory. */
  deliveries?: DeliveryLog;
  /** Tell GitHub about pull requests' previews: comment, commit status, deployments (issue 4). */
  github?: GithubClients;
  /** How long a removed Preview waits for a GitHub outage to end before it is let go (default 24 h). */
  githubHoldLimitMs?: number;
}

export interface RunningController {
  url: string;
  http: FastifyInstance;
  isLeader(): boolean;
  stop(): Promise<void>;
}

type Obj = KubernetesObject & {
  spec?: { policy?: string; repository?: string; pullRequest?: number };
  status?: { phase?: string };
};

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
    requests: new Counter({
      name: 'switchyard_controller_api_requests_total',
      help: 'Requests to the API server made by reconciles and leader election (watches not included), by client method',
      labelNames: ['method'] as const,
      registers: [registry],
    }),
    leaseErrors: new Counter({
      name: 'switchyard_controller_lease_errors_total',
      help: 'Failed attempts to take or renew the leader Lease, by API status code (409: a lost race, normal; 403, 404: fix RBAC or the lease namespace)',
      labelNames: ['code'] as const,
      registers: [registry],
    }),
    leader: new Gauge({
      name: 'switchyard_controller_leader',
      help: '1 while this replica holds the leader Lease',
      registers: [registry],
    }),
    githubReports: new Counter({
      name: 'switchyard_controller_github_reports_total',
      help: 'Pull requests brought up to date on GitHub, by result: ok, retry (an outage, retried with backoff), refused (by HTTP status: the App is not installed or lacks a permission) or hold-expired (a removed preview let go after the hold limit without telling GitHub)',
      labelNames: ['result', 'status'] as const,
      registers: [registry],
    }),
    queue: new Gauge({
      name: 'switchyard_controller_queue_depth',
      help: 'Keys waiting or being reconciled',
      registers: [registry],
    }),
  };
}

/** The same Kube, counting each call (client-go's rest_client_requests_total). */
function countRequests(kube: Kube, count: (method: string) => void): Kube {
  return new Proxy(kube, {
    get(target, key, receiver) {
      const value = Reflect.get(target, key, receiver);
      if (typeof value !== 'function') return value;
      return (...args: unknown[]) => {
        count(String(key));
        return value.apply(target, args);
      };
    },
  });
}

export async function startController(opts: ControllerOptions): Promise<RunningController> {
  const { kubeconfig, logger } = opts;
  const live = countRequests(clientNodeKube(kubeconfig), (method) => metrics.requests.inc({ method }));
  // Reconcilers read from the informers' caches (registered below) and write to the API server.
  const kube = new CachedKube(live);
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
      opts.workers ?? 8,
    );
  const reconcilePolicy = (ns: string, name: string) =>
    reconcileTrafficPolicy(kube, ns, name, { mode, events });
  const queue = queueFor('policy', reconcilePolicy);
  const previewQueue = queueFor('preview', (ns, name) =>
    reconcilePreview(kube, ns, name, { events, rewriteRoutes: reconcilePolicy }),
  );

  // GitHub hears about pull requests' previews from its own queue: an outage backs off there and
  // holds up nothing else.
  const githubLogger = logger.child({ part: 'github' });
  const reporter = new GithubReporter(
    kube,
    {
      previews: (repository, pullRequest) =>
        cached(previewInformers)
          .filter((p) => p.spec?.repository === repository && p.spec?.pullRequest === pullRequest)
          .map((object) => {
            const policy = cached(policyInformers, object.metadata?.namespace).find(
              (x) => x.metadata?.name === object.spec?.policy,
            );
            return {
              object,
              report: reportedPreview(object, policy as never),
              ownRepository: sameRepository(
                (policy as TrafficPolicy | undefined)?.spec?.previews?.repository,
                repository,
              ),
            };
          }),
    },
    opts.github,
    githubLogger,
    (result, status) =>
      metrics.githubReports.inc({ result, status: status === undefined ? '' : String(status) }),
    {
      ...(opts.githubHoldLimitMs !== undefined ? { holdLimitMs: opts.githubHoldLimitMs } : {}),
      onHoldExpired: async (preview) => {
        metrics.githubReports.inc({ result: 'hold-expired', status: '' });
        githubLogger.warn(
          { preview: `${preview.metadata?.namespace}/${preview.metadata?.name}` },
          'GitHub could not be told of a removed preview within the hold limit; it is let go',
        );
        await events.record(
          preview,
          'Warning',
          REASON.GitHubHoldExpired,
          'GitHub was unreachable for the whole hold limit (--github-hold-limit); the preview is removed without telling GitHub: check SWITCHYARD_GITHUB_API_URL and the App',
        );
      },
    },
  );
  const reportQueue = new WorkQueue(
    async (key) => {
      await reporter.sync(key);
      return undefined;
    },
    (key, error, attempt) => {
      metrics.githubReports.inc({
        result: 'retry',
        status: String(
          (error as { status?: number; code?: number }).status ?? (error as { code?: number }).code ?? '',
        ),
      });
      githubLogger.warn(
        { pullRequest: key, attempt, err: error instanceof Error ? error.message : String(error) },
        'GitHub report failed; retrying with backoff',
      );
    },
    opts.workers ?? 8,
  );
  /** The pull request a Preview reports to, when GitHub is to hear of it. */
  const reportKey = (o: Obj) =>
    o.spec?.repository &&
    o.spec.pullRequest !== undefined &&
    (opts.github || o.metadata?.finalizers?.includes(REPORT_FINALIZER))
      ? pullRequestKey(o.spec.repository, o.spec.pullRequest)
      : undefined;

  const informers: ObjectInformer<Obj>[] = [];
  let stopped = false;
  const watch = (
    apiVersion: string,
    kind: string,
    plural: string,
    onObject: (o: Obj, event: 'add' | 'update' | 'delete') => void,
    labelSelector?: string,
    clusterScoped = false,
  ): ObjectInformer<Obj>[] => {
    const created: ObjectInformer<Obj>[] = [];
    for (const namespace of clusterScoped ? [undefined] : namespaces) {
      const informer = watchObjects<Obj>(
        kubeconfig,
        { apiVersion, kind, plural, namespace, ...(labelSelector ? { labelSelector } : {}) },
        logger,
        onObject,
        () => stopped,
      );
      informers.push(informer);
      created.push(informer);
      kube.register(apiVersion, kind, namespace, informer as never, labelSelector);
    }
    return created;
  };
  /** The cached objects of one kind in a namespace (undefined: all), over its per-namespace informers. */
  const cached = (of: ObjectInformer<Obj>[], namespace?: string) => of.flatMap((i) => i.list(namespace));
  const keyOf = (o: KubernetesObject, name = o.metadata?.name) => `${o.metadata?.namespace}/${name}`;

  // Our own status writes come back as update events: like controller-runtime's
  // GenerationChangedPredicate, only a change of what the reconcile reads re-queues.
  const seen = new Map<string, string>();
  const changed = (kind: string, o: Obj, event: string, signature: unknown) => {
    const key = `${kind}/${keyOf(o)}`;
    if (event === 'delete') return seen.delete(key) || true;
    const text = JSON.stringify(signature);
    if (seen.get(key) === text) return false;
    seen.set(key, text);
    return true;
  };
  /** Some field of the object's spec or metadata is set by a manager other than Switchyard. */
  const foreign = (o: Obj) =>
    (o.metadata?.managedFields ?? []).some((m) => m.manager !== FIELD_MANAGER && m.subresource !== 'status');
  // Finalizers matter once the object is being deleted; before that, the only one is our own.
  const meta = (o: Obj) => [
    o.metadata?.generation,
    o.metadata?.labels,
    o.metadata?.annotations,
    o.metadata?.deletionTimestamp ? o.metadata.finalizers : undefined,
  ];
  const policyInformers = watch('switchyard.dev/v1alpha1', 'TrafficPolicy', 'trafficpolicies', (o, event) => {
    if (!changed('policy', o, event, meta(o))) return;
    queue.add(keyOf(o));
    // A policy that goes or changes its hosts may free, or take, a host another policy claims.
    // (A new one is the newest: it takes no host from anyone.)
    if (event !== 'add') {
      const tp = o as unknown as TrafficPolicy;
      const claims = new HostClaims<string>(DEFAULTS.clusterDomain);
      claims.claim('', policyHosts(tp, DEFAULTS.clusterDomain), o.metadata?.namespace ?? DEFAULTS.namespace);
      for (const p of cached(policyInformers)) {
        const other = p as unknown as TrafficPolicy;
        if (
          p !== o &&
          claims.conflict(
            policyHosts(other, DEFAULTS.clusterDomain),
            other.metadata.namespace ?? DEFAULTS.namespace,
          )
        )
          queue.add(keyOf(p));
      }
    }
    // Its previews read it (image template, TTL, limits), and may be waiting for it to exist.
    for (const p of cached(previewInformers, o.metadata?.namespace))
      if (p.spec?.policy === o.metadata?.name) previewQueue.add(keyOf(p));
  });
  const previewInformers = watch('switchyard.dev/v1alpha1', 'Preview', 'previews', (o, event) => {
    if (changed('preview', o, event, meta(o))) previewQueue.add(keyOf(o));
    // A preview that goes may free a place under its policy's previews.maxActive.
    if (event === 'delete' || (event === 'update' && o.metadata?.deletionTimestamp))
      for (const p of cached(previewInformers, o.metadata?.namespace))
        if (p !== o && p.spec?.policy === o.spec?.policy && p.status?.phase === 'Failed')
          previewQueue.add(keyOf(p));
    const pullRequest = reportKey(o);
    const shown = (o as { status?: { phase?: string; url?: string; intercept?: string } }).status;
    if (
      pullRequest &&
      changed('preview-report', o, event, [shown?.phase, shown?.url, shown?.intercept, meta(o)[3]])
    )
      reportQueue.add(pullRequest);
    // The policy routes Ready previews: whether one is Ready matters to it, the rest of its status not.
    const ready = (o as { status?: { phase?: string } }).status?.phase === 'Ready';
    if (
      o.spec?.policy &&
      changed('preview-ready', o, event, [o.spec, ready, Boolean(o.metadata?.deletionTimestamp)])
    )
      queue.add(keyOf(o, o.spec.policy));
  });
  // Every Deployment is cached (a preview clones its stable one from the cache); a preview's
  // Deployment reports readiness, and a change re-evaluates its Preview.
  watch('apps/v1', 'Deployment', 'deployments', (o, event) => {
    const preview = o.metadata?.labels?.[PREVIEW_LABEL];
    // A new Deployment is not available yet: the preview is told when that changes.
    const key = `deployment/${keyOf(o)}`;
    const available = `${deploymentAvailable(o)}/${(o as { status?: { availableReplicas?: number } }).status?.availableReplicas ?? 0}`;
    const was = seen.get(key) ?? 'false/0';
    seen.set(key, available);
    if (event === 'delete') seen.delete(key);
    if (preview && (event === 'delete' || foreign(o) || available !== was))
      previewQueue.add(keyOf(o, preview));
    else if (!preview && event !== 'update') namesakePreview(o);
  });
  // Owned objects: a change by someone else re-queues their policy, which reverts it; our own
  // writes (every field owned by Switchyard's manager) do not.
  const ownerPolicy = (o: Obj, event: 'add' | 'update' | 'delete') => {
    const owner =
      o.metadata?.labels?.[MANAGED_BY] === MANAGED_BY_VALUE ? o.metadata.labels[POLICY_LABEL] : undefined;
    if (owner && (event === 'delete' || foreign(o))) queue.add(keyOf(o, owner));
  };
  /** A foreign object named like a Preview came or went: the Preview's NameTaken may change. */
  const namesakePreview = (o: Obj) => {
    const namespace = o.metadata?.namespace;
    if (previewInformers.some((i) => i.get(o.metadata?.name as string, namespace)))
      previewQueue.add(keyOf(o));
  };
  // Every Service is cached (a policy's is read on each preview reconcile); those Switchyard
  // writes (a preview's, and in gateway mode one per version) are kept as written.
  watch('v1', 'Service', 'services', (o, event) => {
    const preview = o.metadata?.labels?.[PREVIEW_LABEL];
    if (preview && (event === 'delete' || foreign(o))) previewQueue.add(keyOf(o, preview));
    else if (o.metadata?.labels?.[VERSION_OF_LABEL]) ownerPolicy(o, event);
    else if (!preview && event !== 'update') namesakePreview(o);
  });
  if (mode === 'istio') {
    // The ambient label decides whether EnvoyFilters can work: a change re-evaluates the policies.
    watch(
      'v1',
      'Namespace',
      'namespaces',
      (o, event) => {
        if (event === 'add' || !changed('namespace', o, event, o.metadata?.labels)) return;
        for (const p of cached(policyInformers, o.metadata?.name)) queue.add(keyOf(p));
      },
      undefined,
      true,
    );
    // Every DestinationRule and EnvoyFilter is cached, not only Switchyard's: one of a wanted name
    // that is someone else's must be seen (NameTaken), and its removal lets the policy write again.
    const ownerOrNamesake = (o: Obj, event: 'add' | 'update' | 'delete') => {
      if (o.metadata?.labels?.[MANAGED_BY] === MANAGED_BY_VALUE) return ownerPolicy(o, event);
      for (const p of cached(policyInformers, o.metadata?.namespace))
        if (o.metadata?.name?.startsWith(p.metadata?.name ?? '\0')) queue.add(keyOf(p));
    };
    watch('networking.istio.io/v1', 'DestinationRule', 'destinationrules', ownerOrNamesake);
    watch('networking.istio.io/v1alpha3', 'EnvoyFilter', 'envoyfilters', ownerOrNamesake);
    watch('networking.istio.io/v1', 'VirtualService', 'virtualservices', (o, event) => {
      if (o.metadata?.labels?.[MANAGED_BY] === MANAGED_BY_VALUE) return ownerPolicy(o, event);
      // A foreign VirtualService may start or stop a Conflict, in any namespace (it may be bound to
      // a shared gateway): look at every policy. Foreign VirtualServices change rarely.
      for (const p of cached(policyInformers)) queue.add(keyOf(p));
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
    metrics.queue.set(queue.length + previewQueue.length + reportQueue.length);
    reply.type(metrics.registry.contentType);
    return metrics.registry.metrics();
  });
  if (opts.githubWebhookSecret) {
    const webhookLogger = logger.child({ part: 'github' });
    await registerGithubWebhook(http, {
      secret: opts.githubWebhookSecret,
      deliveries: opts.deliveries ?? memoryDeliveryLog(),
      logger: webhookLogger,
      handle: async (event) => {
        await handleGithubEvent(live, event, {
          namespaces: opts.namespaces ?? [],
          logger: webhookLogger,
          holdForReport: Boolean(opts.github),
          ...(opts.github ? { github: opts.github } : {}),
        });
      },
    });
  }
  const url = await http.listen({ port: opts.port ?? 8081, host: opts.host ?? '0.0.0.0' });

  await Promise.all(informers.map((i) => i.start()));
  // A first list that failed (429 while a new resource's storage initialises) is retried: ready,
  // and leading, only once every cache holds what the API server has.
  while (!stopped && !informers.every((i) => i.synced())) await new Promise((r) => setTimeout(r, 50));
  ready = true;
  // Keys queued while standing by are handled once this replica leads.
  const elector = opts.leaderElection
    ? electLeader(
        live,
        { ...opts.leaderElection, onError: (code) => metrics.leaseErrors.inc({ code: String(code ?? '') }) },
        logger,
        () => {
          metrics.leader.set(0);
          queue.stop();
          previewQueue.stop();
          reportQueue.stop();
          opts.onLeadershipLost?.();
        },
      )
    : undefined;
  let running: Promise<unknown> | undefined;
  const lead = () => {
    if (stopped) return;
    metrics.leader.set(1);
    running = Promise.all([queue.run(), previewQueue.run(), reportQueue.run()]);
  };
  if (elector) void elector.acquired.then(lead);
  else lead();
  logger.info(
    { url, mode, namespaces: opts.namespaces ?? 'all', policies: cached(policyInformers).length },
    'controller started',
  );
  const resync = setInterval(() => {
    for (const p of cached(policyInformers)) queue.add(keyOf(p));
    for (const p of cached(previewInformers)) {
      previewQueue.add(keyOf(p));
      const pullRequest = reportKey(p);
      if (pullRequest) reportQueue.add(pullRequest);
    }
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
      reportQueue.stop();
      await running;
      await elector?.stop();
      await http.close();
    },
  };
}
