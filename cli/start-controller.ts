/**
 * The controller process, composed: one Manager (caches, leader election, queues, HTTP), the
 * TrafficPolicy and Preview controllers, and the PR bot, which share its caches and its Lease.
 */
import type { KubeConfig } from '@kubernetes/client-node';
import { type ControllersOptions, setupControllers } from '../controllers/setup.js';
import type { LeaderElectionOptions } from '../kube/leader.js';
import { createManager, type RunningManager } from '../kube/manager.js';
import { type PreviewBotOptions, setupPreviewBot } from '../previews/bot.js';
import type { Logger } from '../src/core/logger.js';

export interface ControllerOptions
  extends ControllersOptions,
    Omit<PreviewBotOptions, 'namespaces' | 'workers'> {
  kubeconfig: KubeConfig;
  logger: Logger;
  /** Watch only these namespaces; empty means all. */
  namespaces?: string[];
  port?: number;
  host?: string;
  resyncMs?: number;
  /** Campaign for this Lease before writing anything; omitted: lead at once (one replica). */
  leaderElection?: LeaderElectionOptions;
  /** Called when the Lease is lost (the CLI exits, as client-go's controllers do). */
  onLeadershipLost?: () => void;
}

export type RunningController = RunningManager;

export async function startController(opts: ControllerOptions): Promise<RunningController> {
  const manager = createManager({
    kubeconfig: opts.kubeconfig,
    logger: opts.logger,
    ...(opts.namespaces ? { namespaces: opts.namespaces } : {}),
    ...(opts.port !== undefined ? { port: opts.port } : {}),
    ...(opts.host ? { host: opts.host } : {}),
    ...(opts.resyncMs !== undefined ? { resyncMs: opts.resyncMs } : {}),
    ...(opts.leaderElection ? { leaderElection: opts.leaderElection } : {}),
    ...(opts.onLeadershipLost ? { onLeadershipLost: opts.onLeadershipLost } : {}),
  });
  setupControllers(manager, opts);
  await setupPreviewBot(manager, opts);
  const running = await manager.start();
  opts.logger.info(
    { url: running.url, mode: opts.mode ?? 'istio', namespaces: opts.namespaces ?? 'all' },
    'controller started',
  );
  return running;
}
