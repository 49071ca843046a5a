/**
 * What every Kubernetes-facing process part runs on, as controller-runtime's Manager: one client
 * whose reads come from shared informer caches, the informers themselves (one per kind and
 * namespace, however many parts watch that kind), work queues that run only while this replica
 * holds the leader Lease, a periodic resync, and the HTTP server with /healthz, /readyz and
 * /metrics. The reconcilers (`controllers/`) and the PR bot (`pr-bot/`) each add their watches,
 * queues and routes to one Manager; the CLI composes them, so neither knows the other.
 */
import type { KubeConfig, KubernetesObject } from '@kubernetes/client-node';
import Fastify, { type FastifyBaseLogger, type FastifyInstance } from 'fastify';
import { Counter, Gauge, Registry } from 'prom-client';
import type { Logger } from '../core/common/logger.js';
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
  return new KubeManager(opts);
}

type OnObject = (o: WatchedObject, event: WatchEvent) => void;

/** The Manager: its state, and a method per thing it does. */
class KubeManager implements Manager {
  readonly kube: CachedKube;
  readonly live: Kube;
  readonly logger: Logger;
  readonly registry: Registry;
  readonly http: FastifyInstance;
  private readonly metrics = managerMetrics('switchyard_controller');
  private readonly namespaces: (string | undefined)[];
  private readonly kinds = new Map<
    string,
    { informers: ObjectInformer<WatchedObject>[]; handlers: OnObject[] }
  >();
  private readonly queues: WorkQueue[] = [];
  private readonly resyncs: (() => void)[] = [];
  private stopped = false;
  private ready = false;

  constructor(private readonly opts: ManagerOptions) {
    this.logger = opts.logger;
    this.registry = this.metrics.registry;
    this.live = countRequests(clientNodeKube(opts.kubeconfig), (method) =>
      this.metrics.requests.inc({ method }),
    );
    this.kube = new CachedKube(this.live);
    this.namespaces = opts.namespaces && opts.namespaces.length > 0 ? opts.namespaces : [undefined];
    this.http = Fastify({
      loggerInstance: opts.logger.child({ server: 'controller' }, { level: 'warn' }) as FastifyBaseLogger,
    });
    this.addRoutes();
  }

  private get informers(): ObjectInformer<WatchedObject>[] {
    return [...this.kinds.values()].flatMap((k) => k.informers);
  }

  private addRoutes(): void {
    this.http.get('/healthz', async () => 'ok\n');
    // Not ready says why: each cache not yet listed, with its last failure (a CRD missing, RBAC).
    this.http.get('/readyz', async (_req, reply) => {
      if (this.ready) return 'ok\n';
      const waiting = this.informers
        .filter((i) => !i.synced())
        .map((i) => `${i.path}: ${i.failure() ?? 'listing'}`);
      return reply.code(503).send(`informers not synced yet\n${waiting.map((w) => `- ${w}\n`).join('')}`);
    });
    this.http.get('/metrics', async (_req, reply) => {
      this.metrics.queue.set(this.queues.reduce((n, q) => n + q.length, 0));
      reply.type(this.registry.contentType);
      return this.registry.metrics();
    });
  }

  watch(kind: WatchKind, onObject: OnObject): Cached {
    const key = `${kind.apiVersion}/${kind.kind}/${kind.labelSelector ?? ''}`;
    let entry = this.kinds.get(key);
    if (!entry) {
      const handlers: OnObject[] = [];
      const namespaces = kind.clusterScoped ? [undefined] : this.namespaces;
      entry = { informers: namespaces.map((ns) => this.informerOf(kind, ns, handlers)), handlers };
      this.kinds.set(key, entry);
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
  }

  /** One informer of `kind` in `namespace`, the cache of the client's reads there. */
  private informerOf(kind: WatchKind, namespace: string | undefined, handlers: OnObject[]) {
    const informer = watchObjects<WatchedObject>(
      this.opts.kubeconfig,
      {
        apiVersion: kind.apiVersion,
        kind: kind.kind,
        plural: kind.plural,
        namespace,
        ...(kind.labelSelector ? { labelSelector: kind.labelSelector } : {}),
        ...(kind.missingHint ? { missingHint: kind.missingHint } : {}),
      },
      this.logger,
      (o, event) => {
        for (const h of handlers) h(o, event);
      },
      () => this.stopped,
    );
    this.kube.register(kind.apiVersion, kind.kind, namespace, informer as never, kind.labelSelector);
    return informer;
  }

  queue(handler: Handler, onError: (key: string, error: unknown, attempt: number) => void, concurrency = 8) {
    const q = new WorkQueue(handler, onError, concurrency);
    this.queues.push(q);
    return q;
  }

  onResync(resync: () => void): void {
    this.resyncs.push(resync);
  }

  /** Serve, list every watched kind, then run the queues while this replica leads. */
  async start(): Promise<RunningManager> {
    const url = await this.http.listen({ port: this.opts.port ?? 8081, host: this.opts.host ?? '0.0.0.0' });
    const informers = this.informers;
    await Promise.all(informers.map((i) => i.start()));
    // A first list that failed (429 while a new resource's storage initialises) is retried: ready,
    // and leading, only once every cache holds what the API server has.
    while (!this.stopped && !informers.every((i) => i.synced())) await new Promise((r) => setTimeout(r, 50));
    this.ready = true;
    const elector = this.campaign();
    let running: Promise<unknown> | undefined;
    const lead = () => {
      if (this.stopped) return;
      this.metrics.leader.set(1);
      running = Promise.all(this.queues.map((q) => q.run()));
    };
    if (elector) void elector.acquired.then(lead);
    else lead();
    const resync = setInterval(() => {
      for (const r of this.resyncs) r();
    }, this.opts.resyncMs ?? 300_000);
    return {
      url,
      http: this.http,
      isLeader: () => (elector ? elector.isLeader() : true),
      stop: async () => {
        this.stopped = true;
        clearInterval(resync);
        await Promise.all(informers.map((i) => i.stop()));
        this.stopQueues();
        await running;
        await elector?.stop();
        await this.http.close();
      },
    };
  }

  /** Campaign for the Lease (none configured: lead at once); losing it stops the queues. */
  private campaign() {
    if (!this.opts.leaderElection) return undefined;
    return electLeader(
      this.live,
      {
        ...this.opts.leaderElection,
        onError: (code) => this.metrics.leaseErrors.inc({ code: String(code ?? '') }),
      },
      this.logger,
      () => {
        this.metrics.leader.set(0);
        this.stopQueues();
        this.opts.onLeadershipLost?.();
      },
    );
  }

  private stopQueues(): void {
    for (const q of this.queues) q.stop();
  }
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
