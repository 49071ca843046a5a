/**
 * What every Kubernetes-facing process part runs on, as controller-runtime's Manager: one client
 * whose reads come from shared informer caches, the informers themselves (one per kind and
 * namespace, however many parts watch that kind), work queues that run only while this replica
 * holds the leader Lease, a periodic resync, and the HTTP server with /healthz, /readyz and
 * /metrics. The reconcilers (`controllers/`) and the PR bot (`previews/`) each add their watches,
 * queues and routes to one Manager; the CLI composes them, so neither knows the other.
 */
import type { KubeConfig, KubernetesObject } from '@kubernetes/client-node';
import Fastify, { type FastifyBaseLogger, type FastifyInstance } from 'fastify';
import { Counter, Gauge, Registry } from 'prom-client';
import type { Logger } from '../src/core/logger.js';
import { CachedKube } from './cached-kube.js';
import { clientNodeKube, type Kube } from './client.js';
import { type ObjectInformer, watchObjects } from './informer.js';
import { electLeader, type LeaderElectionOptions } from './leader.js';
import { type Handler, WorkQueue } from './work-queue.js';

export type WatchEvent = 'add' | 'update' | 'delete';
export type WatchedObject = KubernetesObject & {
  spec?: { policy?: string; repository?: string; pullRequest?: number };
  status?: { phase?: string };
};

export interface WatchKind {
  apiVersion: string;
  kind: string;
  plural: string;
  labelSelector?: string;
  /** One informer for the whole cluster, whatever namespaces are watched (Namespaces). */
  clusterScoped?: boolean;
  /** What to do when the cluster does not serve the kind (said by /readyz and the log). */
  missingHint?: string;
}

/** The cached objects of one watched kind. */
export interface Cached {
  /** In a namespace; undefined: every watched one. */
  list(namespace?: string): WatchedObject[];
  get(name: string, namespace?: string): WatchedObject | undefined;
}

export interface ManagerOptions {
  kubeconfig: KubeConfig;
  logger: Logger;
  /** Watch only these namespaces; empty means all. */
  namespaces?: string[];
  port?: number;
  host?: string;
  resyncMs?: number;
  /** Campaign for this Lease before any queue runs; omitted: lead at once (one replica). */
  leaderElection?: LeaderElectionOptions;
  /** Called when the Lease is lost (the CLI exits, as client-go's controllers do). */
  onLeadershipLost?: () => void;
}

export interface Manager {
  /** Reads from the caches of the kinds watched, writes to the API server. */
  readonly kube: CachedKube;
  /** The API server itself, for reads that must not be stale (the PR bot's writes). */
  readonly live: Kube;
  readonly logger: Logger;
  readonly registry: Registry;
  /** Routes may be added until start(). */
  readonly http: FastifyInstance;
  /** Watches a kind in every watched namespace; each caller's handler sees every event. */
  watch(kind: WatchKind, onObject: (o: WatchedObject, event: WatchEvent) => void): Cached;
  /** A work queue run while this replica leads; keys added while standing by wait for that. */
  queue(
    handler: Handler,
    onError: (key: string, error: unknown, attempt: number) => void,
    concurrency?: number,
  ): WorkQueue;
  /** Called every resync period (re-queue everything: a missed event is made good). */
  onResync(resync: () => void): void;
  start(): Promise<RunningManager>;
}

export interface RunningManager {
  url: string;
  http: FastifyInstance;
  isLeader(): boolean;
  stop(): Promise<void>;
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

function managerMetrics(prefix: string) {
  const registry = new Registry();
  return {
    registry,
    requests: new Counter({
      name: `${prefix}_api_requests_total`,
      help: 'Requests to the API server made by reconciles and leader election (watches not included), by client method',
      labelNames: ['method'] as const,
      registers: [registry],
    }),
    leaseErrors: new Counter({
      name: `${prefix}_lease_errors_total`,
      help: 'Failed attempts to take or renew the leader Lease, by API status code (409: a lost race, normal; 403, 404: fix RBAC or the lease namespace)',
      labelNames: ['code'] as const,
      registers: [registry],
    }),
    leader: new Gauge({
      name: `${prefix}_leader`,
      help: '1 while this replica holds the leader Lease',
      registers: [registry],
    }),
    queue: new Gauge({
      name: `${prefix}_queue_depth`,
      help: 'Keys waiting or being reconciled',
      registers: [registry],
    }),
  };
}

export function createManager(opts: ManagerOptions): Manager {
  const { kubeconfig, logger } = opts;
  const metrics = managerMetrics('switchyard_controller');
  const live = countRequests(clientNodeKube(kubeconfig), (method) => metrics.requests.inc({ method }));
  const kube = new CachedKube(live);
  const namespaces = opts.namespaces && opts.namespaces.length > 0 ? opts.namespaces : [undefined];
  type OnObject = (o: WatchedObject, event: WatchEvent) => void;
  const kinds = new Map<string, { informers: ObjectInformer<WatchedObject>[]; handlers: OnObject[] }>();
  const queues: WorkQueue[] = [];
  const resyncs: (() => void)[] = [];
  let stopped = false;
  let ready = false;

  const http = Fastify({
    loggerInstance: logger.child({ server: 'controller' }, { level: 'warn' }) as FastifyBaseLogger,
  });
  http.get('/healthz', async () => 'ok\n');
  // Not ready says why: each cache not yet listed, with its last failure (a CRD missing, RBAC).
  http.get('/readyz', async (_req, reply) => {
    if (ready) return 'ok\n';
    const waiting = [...kinds.values()]
      .flatMap((k) => k.informers)
      .filter((i) => !i.synced())
      .map((i) => `${i.path}: ${i.failure() ?? 'listing'}`);
    return reply.code(503).send(`informers not synced yet\n${waiting.map((w) => `- ${w}\n`).join('')}`);
  });
  http.get('/metrics', async (_req, reply) => {
    metrics.queue.set(queues.reduce((n, q) => n + q.length, 0));
    reply.type(metrics.registry.contentType);
    return metrics.registry.metrics();
  });

  const watch: Manager['watch'] = (kind, onObject) => {
    const key = `${kind.apiVersion}/${kind.kind}/${kind.labelSelector ?? ''}`;
    let entry = kinds.get(key);
    if (!entry) {
      const handlers: OnObject[] = [];
      const informers = (kind.clusterScoped ? [undefined] : namespaces).map((namespace) => {
        const informer = watchObjects<WatchedObject>(
          kubeconfig,
          {
            apiVersion: kind.apiVersion,
            kind: kind.kind,
            plural: kind.plural,
            namespace,
            ...(kind.labelSelector ? { labelSelector: kind.labelSelector } : {}),
            ...(kind.missingHint ? { missingHint: kind.missingHint } : {}),
          },
          logger,
          (o, event) => {
            for (const h of handlers) h(o, event);
          },
          () => stopped,
        );
        kube.register(kind.apiVersion, kind.kind, namespace, informer as never, kind.labelSelector);
        return informer;
      });
      entry = { informers, handlers };
      kinds.set(key, entry);
    }
    entry.handlers.push(onObject);
    const { informers } = entry;
    return {
      list: (namespace) => informers.flatMap((i) => i.list(namespace)),
      get: (name, namespace) => {
        for (const i of informers) {
          const o = i.get(name, namespace);
          if (o) return o;
        }
        return undefined;
      },
    };
  };

  return {
    kube,
    live,
    logger,
    registry: metrics.registry,
    http,
    watch,
    queue(handler, onError, concurrency = 8) {
      const q = new WorkQueue(handler, onError, concurrency);
      queues.push(q);
      return q;
    },
    onResync: (resync) => void resyncs.push(resync),
    async start() {
      const url = await http.listen({ port: opts.port ?? 8081, host: opts.host ?? '0.0.0.0' });
      const informers = [...kinds.values()].flatMap((w) => w.informers);
      await Promise.all(informers.map((i) => i.start()));
      // A first list that failed (429 while a new resource's storage initialises) is retried: ready,
      // and leading, only once every cache holds what the API server has.
      while (!stopped && !informers.every((i) => i.synced())) await new Promise((r) => setTimeout(r, 50));
      ready = true;
      const stopQueues = () => {
        for (const q of queues) q.stop();
      };
      const elector = opts.leaderElection
        ? electLeader(
            live,
            {
              ...opts.leaderElection,
              onError: (code) => metrics.leaseErrors.inc({ code: String(code ?? '') }),
            },
            logger,
            () => {
              metrics.leader.set(0);
              stopQueues();
              opts.onLeadershipLost?.();
            },
          )
        : undefined;
      let running: Promise<unknown> | undefined;
      const lead = () => {
        if (stopped) return;
        metrics.leader.set(1);
        running = Promise.all(queues.map((q) => q.run()));
      };
      if (elector) void elector.acquired.then(lead);
      else lead();
      const resync = setInterval(() => {
        for (const r of resyncs) r();
      }, opts.resyncMs ?? 300_000);
      return {
        url,
        http,
        isLeader: () => (elector ? elector.isLeader() : true),
        async stop() {
          stopped = true;
          clearInterval(resync);
          await Promise.all(informers.map((i) => i.stop()));
          stopQueues();
          await running;
          await elector?.stop();
          await http.close();
        },
      };
    },
  };
}

/**
 * Tells whether what a handler reads of an object changed since it last saw it: our own status
 * writes come back as update events, and (like controller-runtime's GenerationChangedPredicate)
 * only a change of what the reconcile reads should re-queue.
 */
export class ChangeFilter {
  private readonly seen = new Map<string, string>();

  changed(kind: string, o: KubernetesObject, event: WatchEvent, signature: unknown): boolean {
    const key = `${kind}/${o.metadata?.namespace}/${o.metadata?.name}`;
    if (event === 'delete') return this.seen.delete(key) || true;
    const text = JSON.stringify(signature);
    if (this.seen.get(key) === text) return false;
    this.seen.set(key, text);
    return true;
  }

  /** The last value remembered under `key`, replacing it with `value` (undefined: forget it). */
  swap(key: string, value: string | undefined): string | undefined {
    const was = this.seen.get(key);
    if (value === undefined) this.seen.delete(key);
    else this.seen.set(key, value);
    return was;
  }
}

/** `namespace/name` of an object, or of another object in its namespace. */
export const keyOf = (o: KubernetesObject, name = o.metadata?.name) => `${o.metadata?.namespace}/${name}`;
