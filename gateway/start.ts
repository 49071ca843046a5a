/**
 * Runs the gateway from files: first load (refused → the caller exits 2), watch and reload (a bad
 * file keeps the last good plan), listen on the traffic and admin ports, and shut down gracefully.
 */
import type { KubeConfig } from '@kubernetes/client-node';
import type { Redis } from 'ioredis';
import { formatProblem, type Problem } from '../core/common/errors.js';
import type { Logger } from '../core/common/logger.js';
import { loadGatewayFiles, watchPaths } from './config-file.js';
import { type KubeSource, kubeSource } from './kube-source.js';
import { listenUrl } from './listen-url.js';
import { PlanHolder } from './plan-holder.js';
import { createGateway, type Gateway, type GatewayOptions } from './server.js';

export interface RunGatewayOptions extends Omit<GatewayOptions, 'holder' | 'redis'> {
  /** Files to serve; ignored when `kube` is given. */
  config: string[];
  /** Follow the cluster instead of files (`--kube`). */
  kube?: { kubeconfig: KubeConfig; namespaces: string[] };
  port: number;
  /** Absent: no admin port (a worker of `--workers N`: the primary serves it). */
  adminPort?: number;
  host?: string;
  /** The admin port's address (default loopback: /plan and /metrics are not for everyone). */
  adminHost?: string;
  /**
   * Opens the Redis rate limits are shared through (cli/redis.ts), called once the first plan is
   * good; absent: counted in this process's memory.
   */
  openRedis?: () => Redis;
  logger: Logger;
  watch?: boolean;
}

export interface RunningGateway {
  gateway: Gateway;
  holder: PlanHolder;
  trafficUrl: string;
  adminUrl: string;
  reload(): Promise<boolean>;
  close(): Promise<void>;
}

export class InvalidConfigError extends Error {
  constructor(readonly problems: Problem[]) {
    super(problems.map(formatProblem).join('\n'));
  }
}

/** Whether Redis is ready within `ms`. */
function readyWithin(redis: Redis, ms: number): Promise<boolean> {
  if (redis.status === 'ready') return Promise.resolve(true);
  return new Promise((resolve) => {
    const timer = setTimeout(() => {
      redis.off('ready', onReady);
      resolve(false);
    }, ms);
    const onReady = () => {
      clearTimeout(timer);
      resolve(true);
    };
    redis.once('ready', onReady);
  });
}

/**
 * The gateway process: the first plan (from the cluster or the files; invalid: an error, nothing
 * served), Redis if asked for, the gateway, reloads, and both ports listening.
 */
export async function runGateway(opts: RunGatewayOptions): Promise<RunningGateway> {
  const { logger } = opts;
  const holder = new PlanHolder();
  const state: { gateway?: Gateway } = {};
  const { source, leftOut } = await loadFirstPlan(opts, holder, state);
  const redis = opts.openRedis?.();
  // Wait (briefly) for Redis before taking traffic, so replicas count together from the first
  // request; if it is not there, start anyway and count in memory until it is.
  if (redis && !(await readyWithin(redis, 2000)))
    logger.warn('redis not reachable at start; rate limits count in memory until it is');
  const gateway = createGateway({ ...opts, holder, ...(redis ? { redis } : {}) });
  state.gateway = gateway;
  gateway.metrics.leftOut.set(leftOut);
  gateway.metrics.reloads.inc({ result: 'success' });
  const reload = source ? async () => false : fileReloader(opts, holder, gateway);
  const unwatch =
    opts.watch === false || source ? () => undefined : await watchPaths(opts.config, () => void reload());
  const trafficUrl = await gateway.traffic.listen(opts.port, opts.host ?? '0.0.0.0');
  const adminUrl =
    opts.adminPort === undefined
      ? ''
      : await gateway.admin
          .listen({ port: opts.adminPort, host: opts.adminHost ?? '127.0.0.1' })
          .then(() => listenUrl(gateway.admin.server));
  // A worker of `--workers N` has no admin port: the primary logs its URL.
  logger.info({ trafficUrl, ...(adminUrl && { adminUrl }), redis: Boolean(redis) }, 'gateway listening');
  return {
    gateway,
    holder,
    trafficUrl,
    adminUrl,
    reload,
    async close() {
      unwatch();
      await source?.stop();
      await gateway.close();
      redis?.disconnect();
    },
  };
}

/**
 * The first plan into `holder`: from the cluster (`--kube`, whose later changes it applies as they
 * come) or from the files. Throws InvalidConfigError when it does not validate.
 */
async function loadFirstPlan(
  opts: RunGatewayOptions,
  holder: PlanHolder,
  state: { gateway?: Gateway },
): Promise<{ source?: KubeSource; leftOut: number }> {
  const { logger } = opts;
  // Policies the cluster holds but that do not validate are left out and logged (once per change).
  let lastSkipped = '';
  const logSkipped = (problems: Problem[]) => {
    const text = problems.map(formatProblem).join('\n');
    if (text && text !== lastSkipped)
      logger.error({ problems: text.split('\n') }, 'resources left out of the plan');
    lastSkipped = text;
  };
  const source = opts.kube
    ? kubeSource({
        ...opts.kube,
        logger,
        onChange: (result, problems) => {
          logSkipped(problems);
          state.gateway?.metrics.leftOut.set(problems.length);
          const applied = holder.apply(result, 'kubernetes', new Date());
          state.gateway?.metrics.reloads.inc({ result: applied ? 'success' : 'error' });
          if (!applied && !result.ok)
            logger.error(
              { problems: result.problems.map(formatProblem) },
              'plan refused; the last good plan keeps serving',
            );
        },
      })
    : undefined;
  let leftOut = 0;
  const first = source
    ? await source.start().then(({ result, problems }) => {
        logSkipped(problems);
        leftOut = problems.length;
        return result;
      })
    : await loadGatewayFiles(opts.config, 1, new Date());
  if (!first.ok) {
    await source?.stop();
    throw new InvalidConfigError(first.problems);
  }
  holder.apply(first, source ? 'kubernetes' : opts.config.join(','), new Date());
  return { ...(source ? { source } : {}), leftOut };
}

/**
 * A reload of the files. Never rejects (loadGatewayFiles answers every failure with problems): a
 * watcher fires it with nobody to catch, and whatever the files hold, the last good plan keeps serving.
 */
function fileReloader(opts: RunGatewayOptions, holder: PlanHolder, gateway: Gateway): () => Promise<boolean> {
  let generation = 1;
  return async () => {
    const result = await loadGatewayFiles(opts.config, ++generation, new Date(), true);
    const applied = holder.apply(result, opts.config.join(','), new Date());
    gateway.metrics.reloads.inc({ result: applied ? 'success' : 'error' });
    if (applied)
      opts.logger.info(
        { generation, policies: holder.current?.plan.policies.length },
        'configuration reloaded',
      );
    else if (!result.ok)
      opts.logger.error(
        { problems: result.problems.map(formatProblem) },
        'configuration refused; the last good plan keeps serving',
      );
    return applied;
  };
}
