/**
 * The PR bot on a Manager (kube/manager.ts): `POST /webhooks/github` writes Previews, and a work
 * queue of its own tells GitHub about them, so a GitHub outage backs off there and holds up
 * nothing else. It reads the same Preview and TrafficPolicy caches as the controllers.
 */
import { Counter } from 'prom-client';
import type { Logger } from '../core/common/logger.js';
import { sameRepository } from '../core/compiler/compile.js';
import { REASON } from '../core/resources/conditions.js';
import { REPORT_FINALIZER } from '../core/resources/labels.js';
import { RESOURCE, type TrafficPolicy } from '../core/resources/schema.js';
import { kubeEventRecorder } from '../kube/events.js';
import { type Cached, ChangeFilter, type Manager, type WatchedObject } from '../kube/manager.js';
import type { WorkQueue } from '../kube/work-queue.js';
import type { GithubClients } from './github-client.js';
import { GithubReporter, pullRequestKey } from './github-reporter.js';
import { registerGithubWebhook } from './github-webhook.js';
import { handleGithubEvent } from './handle-event.js';
import { reportedPreview } from './pull-request-report.js';
import { type DeliveryLog, memoryDeliveryLog } from './webhook-deliveries.js';

export interface PreviewBotOptions {
  /** The namespaces the controller watches (empty: all): where the bot writes Previews. */
  namespaces?: string[];
  /** Serve `POST /webhooks/github` with this webhook secret. */
  githubWebhookSecret?: string;
  /** Where deliveries already taken are remembered (shared by replicas); default: in memory. */
  deliveries?: DeliveryLog;
  /** Tell GitHub about pull requests' previews: comment, commit status, deployments. */
  github?: GithubClients;
  /** How long a removed Preview waits for a GitHub outage to end before it is let go (default 24 h). */
  githubHoldLimitMs?: number;
  workers?: number;
}

/**
 * Adds the bot to `manager`: the GitHub reporter and its queue, the Preview watch that feeds it,
 * and the webhook. Without GitHub credentials it still releases the report finalizer of Previews
 * it wrote earlier, so they can go.
 */
export async function setupPreviewBot(manager: Manager, opts: PreviewBotOptions = {}): Promise<void> {
  const logger = manager.logger.child({ part: 'github' });
  const reports = new Counter({
    name: 'switchyard_controller_github_reports_total',
    help: 'Pull requests brought up to date on GitHub, by result: ok, retry (an outage, retried with backoff), refused (by HTTP status: the App is not installed or lacks a permission) or hold-expired (a removed preview let go after the hold limit without telling GitHub)',
    labelNames: ['result', 'status'] as const,
    registers: [manager.registry],
  });
  const count = (result: string, status?: number | string) =>
    reports.inc({ result, status: status === undefined ? '' : String(status) });
  const caches = {} as { policies: Cached; previews: Cached };
  const reporter = githubReporter(manager, opts, caches, logger, count);
  const queue = reportQueue(manager, reporter, logger, count, opts.workers ?? 8);
  /** The pull request a Preview reports to, when GitHub is to hear of it. */
  const reportKey = (o: WatchedObject) =>
    o.spec?.repository &&
    o.spec.pullRequest !== undefined &&
    (opts.github || o.metadata?.finalizers?.includes(REPORT_FINALIZER))
      ? pullRequestKey(o.spec.repository, o.spec.pullRequest)
      : undefined;
  const filter = new ChangeFilter();
  caches.policies = manager.watch(RESOURCE.TrafficPolicy, () => undefined);
  caches.previews = manager.watch(RESOURCE.Preview, (o, event) => {
    const pullRequest = reportKey(o);
    const shown = (o as { status?: { phase?: string; url?: string; intercept?: string } }).status;
    const finalizers = o.metadata?.deletionTimestamp ? o.metadata.finalizers : undefined;
    if (
      pullRequest &&
      filter.changed('preview-report', o, event, [shown?.phase, shown?.url, shown?.intercept, finalizers])
    )
      queue.add(pullRequest);
  });
  manager.onResync(() => {
    for (const p of caches.previews.list()) {
      const pullRequest = reportKey(p);
      if (pullRequest) queue.add(pullRequest);
    }
  });
  if (opts.githubWebhookSecret) await serveWebhook(manager, opts, opts.githubWebhookSecret, logger);
}

/** What GitHub is told of a pull request's previews, read from the bot's caches. */
function githubReporter(
  manager: Manager,
  opts: PreviewBotOptions,
  caches: { policies: Cached; previews: Cached },
  logger: Logger,
  count: (result: string, status?: number | string) => void,
): GithubReporter {
  const events = kubeEventRecorder(manager.kube, manager.logger);
  const previewsOf = (repository: string, pullRequest: number) =>
    caches.previews
      .list()
      .filter((p) => p.spec?.repository === repository && p.spec?.pullRequest === pullRequest)
      .map((object) => {
        const policy = caches.policies.get(object.spec?.policy ?? '', object.metadata?.namespace) as
          | TrafficPolicy
          | undefined;
        return {
          object,
          report: reportedPreview(object, policy as never),
          ownRepository: sameRepository(policy?.spec?.previews?.repository, repository),
        };
      });
  return new GithubReporter(manager.kube, { previews: previewsOf }, opts.github, logger, count, {
    ...(opts.githubHoldLimitMs !== undefined ? { holdLimitMs: opts.githubHoldLimitMs } : {}),
    onHoldExpired: async (preview) => {
      count('hold-expired');
      logger.warn(
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
  });
}

/** One report per pull request at a time; an outage is retried with backoff and counted. */
function reportQueue(
  manager: Manager,
  reporter: GithubReporter,
  logger: Logger,
  count: (result: string, status?: number | string) => void,
  workers: number,
): WorkQueue {
  return manager.queue(
    async (key) => {
      await reporter.sync(key);
      return undefined;
    },
    (key, error, attempt) => {
      count(
        'retry',
        (error as { status?: number; code?: number }).status ?? (error as { code?: number }).code ?? '',
      );
      logger.warn(
        { pullRequest: key, attempt, err: error instanceof Error ? error.message : String(error) },
        'GitHub report failed; retrying with backoff',
      );
    },
    workers,
  );
}

/** `/webhooks/github` on the controller's port: signed pull_request events become Previews. */
async function serveWebhook(manager: Manager, opts: PreviewBotOptions, secret: string, logger: Logger) {
  await registerGithubWebhook(manager.http, {
    secret,
    deliveries: opts.deliveries ?? memoryDeliveryLog(),
    logger,
    handle: async (event) => {
      await handleGithubEvent(manager.live, event, {
        namespaces: opts.namespaces ?? [],
        logger,
        holdForReport: Boolean(opts.github),
        ...(opts.github ? { github: opts.github } : {}),
      });
    },
  });
}
