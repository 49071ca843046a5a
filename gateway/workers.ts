/**
 * `switchyard gateway --workers N`: one gateway process per core, sharing the traffic port
 * (node:cluster; the primary hands connections out round-robin). The primary proxies nothing: it
 * forks the workers and replaces one that dies, serves the one admin port (health, readiness of
 * every worker, the workers' metrics aggregated by prom-client, the plan of a worker), keeps the
 * rate-limit counts when there is no Redis (so a limit stays exact across workers; with Redis,
 * Redis is the shared count), and on SIGTERM has every worker drain and exit before it does.
 * Each worker loads and watches the configuration itself (a file edit reaches all of them within
 * the file watch's delay; under --kube each has its own watches).
 */
import cluster, { type Worker } from 'node:cluster';
import { readFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import Fastify, { type FastifyBaseLogger, type FastifyInstance } from 'fastify';
import { AggregatorRegistry } from 'prom-client';
import { RateLimiterClusterMaster } from 'rate-limiter-flexible';
import type { Logger } from '../core/common/logger.js';
import { listenUrl } from './listen-url.js';
import type { RunningGateway } from './start.js';

/** The cores this process may use: the machine's, bounded by the cgroup's CPU quota (a pod's limit). */
export function usableCores(cpuMax = '/sys/fs/cgroup/cpu.max'): number {
  const cores = availableParallelism();
  try {
    const [quota, period] = readFileSync(cpuMax, 'utf8').trim().split(/\s+/);
    if (quota && quota !== 'max' && Number(period) > 0)
      return Math.max(1, Math.min(cores, Math.ceil(Number(quota) / Number(period))));
  } catch {
    // no cgroup v2 CPU limit readable: the machine's cores
  }
  return cores;
}

type Message =
  | { type: 'switchyard:listening'; trafficUrl: string }
  | { type: 'switchyard:ask'; id: number; path: string }
  | { type: 'switchyard:answer'; id: number; status: number; body: string };

const isMessage = (m: unknown): m is Message =>
  typeof m === 'object' && m !== null && String((m as { type?: unknown }).type).startsWith('switchyard:');

/**
 * In a worker: tell the primary it serves, and answer its admin questions from our own admin
 * routes. `drained()` (after the gateway closed) lets go of the primary, so the process can end.
 */
export function serveAsWorker(running: RunningGateway): { drained(): void } {
  let drained = false;
  // Constructing one installs prom-client's answer to the primary's metrics requests.
  new AggregatorRegistry();
  AggregatorRegistry.setRegistries([running.gateway.metrics.registry]);
  process.on('message', (m: unknown) => {
    if (!isMessage(m) || m.type !== 'switchyard:ask') return;
    void running.gateway.admin
      .inject({ method: 'GET', url: m.path })
      .then((r) =>
        process.send?.({ type: 'switchyard:answer', id: m.id, status: r.statusCode, body: r.body }),
      );
  });
  // The primary is gone (killed): drain and exit rather than serve on alone.
  process.once('disconnect', () => {
    if (!drained) process.kill(process.pid, 'SIGTERM');
  });
  process.send?.({ type: 'switchyard:listening', trafficUrl: running.trafficUrl });
  return {
    drained() {
      drained = true;
      // The IPC channel would keep the process alive.
      if (process.connected) process.disconnect?.();
    },
  };
}

export interface GatewayPrimary {
  adminUrl: string;
  trafficUrl: string;
  /** SIGTERM to every worker, wait for each to drain and exit, then close the admin port. */
  close(): Promise<void>;
}

interface PrimaryOptions {
  workers: number;
  adminPort: number;
  adminHost: string;
  /** Whether the workers count rate limits in Redis (else the primary keeps the counts). */
  redis: boolean;
  logger: Logger;
}

/** What the primary knows of its workers. */
interface Workers {
  /** Each worker listening, with its traffic URL. */
  listening: Map<Worker, string>;
  /** Answers awaited from workers, by question id. */
  answers: Map<number, (a: { status: number; body: string }) => void>;
  asked: number;
  stopping: boolean;
}

/**
 * The primary of `gateway --workers N`: forks the workers and waits until each listens (or the
 * first to fail says why), replaces a worker that dies, and serves the admin port for all of them.
 */
export async function runGatewayPrimary(
  opts: PrimaryOptions,
): Promise<GatewayPrimary | { exitCode: number }> {
  if (!opts.redis) new RateLimiterClusterMaster();
  const workers: Workers = { listening: new Map(), answers: new Map(), asked: 0, stopping: false };
  cluster.on('message', (worker, m: unknown) => {
    if (!isMessage(m)) return;
    if (m.type === 'switchyard:listening') workers.listening.set(worker, m.trafficUrl);
    if (m.type === 'switchyard:answer') workers.answers.get(m.id)?.({ status: m.status, body: m.body });
  });
  const failed = await forkAll(opts.workers, workers);
  if (failed) {
    workers.stopping = true;
    for (const w of Object.values(cluster.workers ?? {})) w?.kill('SIGTERM');
    return failed;
  }
  cluster.on('exit', (worker, code, signal) => {
    workers.listening.delete(worker);
    if (workers.stopping) return;
    opts.logger.error({ worker: worker.process.pid, code, signal }, 'gateway worker died; starting another');
    cluster.fork();
  });
  const admin = await primaryAdmin(opts, workers);
  const adminUrl = listenUrl(admin.server);
  const trafficUrl = [...workers.listening.values()][0] as string;
  opts.logger.info({ trafficUrl, adminUrl, workers: opts.workers }, 'gateway workers listening');
  return {
    adminUrl,
    trafficUrl,
    async close() {
      workers.stopping = true;
      await Promise.all(Object.values(cluster.workers ?? {}).map((w) => w && stopWorker(w)));
      await admin.close();
    },
  };
}

/** The first start: every worker listens, or the first to fail says why (its stderr is ours). */
function forkAll(count: number, workers: Workers): Promise<{ exitCode: number } | undefined> {
  return new Promise((resolve) => {
    const onExit = (_w: Worker, code: number | null) => {
      cluster.off('exit', onExit);
      cluster.off('message', onMessage);
      resolve({ exitCode: code ?? 1 });
    };
    const onMessage = () => {
      if (workers.listening.size < count) return;
      cluster.off('exit', onExit);
      cluster.off('message', onMessage);
      resolve(undefined);
    };
    cluster.on('exit', onExit);
    cluster.on('message', onMessage);
    for (let i = 0; i < count; i++) cluster.fork();
  });
}

/** Asks one listening worker for an admin path (the plan is the same in every worker). */
function ask(workers: Workers, path: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve) => {
    const worker = [...workers.listening.keys()].find((w) => w.isConnected());
    if (!worker) return resolve({ status: 503, body: 'no gateway worker is serving\n' });
    const id = ++workers.asked;
    const timer = setTimeout(() => {
      workers.answers.delete(id);
      resolve({ status: 503, body: 'the gateway worker did not answer\n' });
    }, 2000);
    workers.answers.set(id, (a) => {
      clearTimeout(timer);
      workers.answers.delete(id);
      resolve(a);
    });
    worker.send({ type: 'switchyard:ask', id, path });
  });
}

/** The one admin port: readiness of all workers, a worker's plan, and every worker's metrics summed. */
async function primaryAdmin(opts: PrimaryOptions, workers: Workers): Promise<FastifyInstance> {
  const aggregator = new AggregatorRegistry();
  const admin = Fastify({
    loggerInstance: opts.logger.child({ server: 'admin' }, { level: 'warn' }) as FastifyBaseLogger,
  });
  admin.get('/healthz', async () => 'ok\n');
  admin.get('/readyz', async (_req, reply) => {
    if (workers.stopping) return reply.code(503).send('shutting down\n');
    if (workers.listening.size < opts.workers)
      return reply.code(503).send(`${workers.listening.size} of ${opts.workers} gateway workers serving\n`);
    const a = await ask(workers, '/readyz');
    return reply.code(a.status).send(a.body);
  });
  admin.get('/plan', async (_req, reply) => {
    const a = await ask(workers, '/plan');
    return reply.code(a.status).type('application/json').send(a.body);
  });
  admin.get('/metrics', async (_req, reply) => {
    reply.type(aggregator.contentType);
    return aggregator.clusterMetrics();
  });
  await admin.listen({ port: opts.adminPort, host: opts.adminHost });
  return admin;
}

/** SIGTERM to a worker, resolved when it has drained and exited. */
function stopWorker(w: Worker): Promise<void> {
  return new Promise<void>((resolve) => {
    if (w.isDead()) return resolve();
    w.once('exit', () => resolve());
    // The signal itself, not worker.kill(): that disconnects first, and a disconnect waits for idle
    // keep-alive connections that only the worker's own drain closes.
    w.process.kill('SIGTERM');
  });
}
