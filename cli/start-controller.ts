/**
 * The controller process, composed: one Manager (caches, leader election, queues, HTTP), the
 * TrafficPolicy and Preview controllers, and the PR bot, which share its caches and its Lease.
 */
import { type ControllersOptions, setupControllers } from '../controllers/setup.js';
import { createManager, type ManagerOptions, type RunningManager } from '../kube/manager.js';
import { type PreviewBotOptions, setupPreviewBot } from '../pr-bot/bot.js';

export interface ControllerOptions
  extends ManagerOptions,
    ControllersOptions,
    Omit<PreviewBotOptions, 'workers'> {}

export type RunningController = RunningManager;

export async function startController(opts: ControllerOptions): Promise<RunningController> {
  const manager = createManager(opts);
  setupControllers(manager, opts);
  await setupPreviewBot(manager, opts);
  const running = await manager.start();
  opts.logger.info(
    { url: running.url, mode: opts.mode ?? 'istio', namespaces: opts.namespaces ?? 'all' },
    'controller started',
  );
  return running;
}
