/**
 * Makes GitHub show each pull request's previews: the one comment, the commit statuses and the
 * deployments (pull-request-report.ts says what; this module writes it). Driven by the controller's
 * Preview cache through a work queue keyed `owner/repo#N`, on the leader only.
 *
 * Nothing is lost in a GitHub outage: the source of truth is the Previews, so a failed sync is
 * simply retried with backoff, and a restarted controller re-derives everything. A deleted
 * Preview is held by the finalizer `switchyard.dev/github-report` (the bot adds it when it
 * creates the Preview) until GitHub has been told (deployment inactive, comment updated); only
 * then is the finalizer dropped. What was already delivered is remembered in memory, so an
 * unchanged pull request costs no GitHub request; after a restart it is looked up again. A refusal
 * by GitHub (401/403/404/422: a configuration problem, not an outage) is logged and counted, and
 * does not hold removed Previews.
 */

import type { KubernetesObject } from '@kubernetes/client-node';
import type { Logger } from '../core/common/logger.js';
import { sha7 } from '../core/compiler/names.js';
import { REPORT_FINALIZER } from '../core/resources/labels.js';
import { API_VERSION } from '../core/resources/schema.js';
import type { Kube } from '../kube/client.js';
import { setPreviewStatus } from './commit-status.js';
import { createDeployment, findDeployment, setDeploymentStatus } from './deployments.js';
import type { GithubClients } from './github-client.js';
import { upsertPreviewComment } from './pr-comment.js';
import { pullRequestReport, type ReportedPreview } from './pull-request-report.js';

/** GitHub answers that waiting will not change: bad credentials, no access, not installed, invalid. */
const REFUSALS = new Set([401, 403, 404, 422]);

export const pullRequestKey = (repository: string, pullRequest: number) => `${repository}#${pullRequest}`;

export interface ReportSource {
  /**
   * The Previews of one pull request (deleted ones still held by a finalizer included).
   * `ownRepository`: the pull request's repository is the one the Preview's policy takes previews
   * of. Only those are reported: a Preview naming another repository (anyone can write one) never
   * makes Switchyard comment on, or set statuses in, that repository.
   */
  previews(
    repository: string,
    pullRequest: number,
  ): { object: KubernetesObject; report: ReportedPreview; ownRepository: boolean }[];
}

export interface ReporterOptions {
  /**
   * How long a removed Preview is held for GitHub during an outage (default 24 h); past it, it is
   * let go (`onHoldExpired`), so a wrong GitHub URL never blocks a namespace deletion for good.
   */
  holdLimitMs?: number;
  onHoldExpired?(preview: KubernetesObject): Promise<void> | void;
  now?(): number;
}

interface Delivered {
  comment?: { id: number; body: string };
  /** Per commit: the status last posted. */
  statuses: Map<string, string>;
  /** Per `service@commit`: the deployment and the state last posted. */
  deployments: Map<string, { id?: number; state?: string; url?: string }>;
}

export class GithubReporter {
  private readonly delivered = new Map<string, Delivered>();

  constructor(
    private readonly kube: Kube,
    private readonly source: ReportSource,
    /** Without GitHub credentials the reporter only releases its finalizer. */
    private readonly github: GithubClients | undefined,
    private readonly logger: Logger,
    /** Counts each pull request brought up to date, or refused by GitHub (with the HTTP status). */
    private readonly count?: (result: 'ok' | 'refused', status?: number) => void,
    private readonly options: ReporterOptions = {},
  ) {}

  /** Brings one pull request's GitHub view up to date; throws (to be retried) if GitHub fails. */
  async sync(key: string): Promise<string[]> {
    const at = key.lastIndexOf('#');
    const repository = key.slice(0, at);
    const pullRequest = Number(key.slice(at + 1));
    const previews = this.source.previews(repository, pullRequest);
    const told = previews.filter((p) => p.ownRepository);
    // No Previews and nothing told yet: nothing to tell (a removed Preview is held until told).
    if (previews.length === 0 && !this.delivered.has(key)) return [];
    let writes: string[] = [];
    let outage: unknown;
    if (this.github && (told.length > 0 || this.delivered.has(key))) {
      try {
        writes = await this.report(key, repository, pullRequest, told);
        this.count?.('ok');
      } catch (e) {
        // An outage (5xx, network, rate limit) is retried with backoff by the caller. A refusal
        // (the App not installed on the repository, a permission missing) will not pass by
        // waiting: it is logged, and a removed Preview is let go rather than held for ever (a
        // namespace being deleted would wait on it). The next change or resync tries again.
        const status = (e as { status?: number }).status;
        if (status === undefined || !REFUSALS.has(status)) outage = e;
        else {
          this.count?.('refused', status);
          this.logger.error(
            { pullRequest: key, status, err: (e as Error).message },
            'GitHub refused the report (check the App is installed on the repository with the permissions in docs/previews.md); not retried until the next change',
          );
        }
      }
    }
    const now = this.options.now?.() ?? Date.now();
    const holdLimitMs = this.options.holdLimitMs ?? 24 * 3600_000;
    for (const { object, ownRepository } of previews) {
      const finalizers = object.metadata?.finalizers ?? [];
      if (!object.metadata?.deletionTimestamp || !finalizers.includes(REPORT_FINALIZER)) continue;
      // During an outage a removed Preview waits for GitHub, up to the hold limit.
      const heldMs = now - new Date(object.metadata.deletionTimestamp).getTime();
      if (outage && ownRepository && heldMs < holdLimitMs) continue;
      if (outage && ownRepository) await this.options.onHoldExpired?.(object);
      // Optimistic: a 409 (the object moved on since the cache saw it) is retried with backoff.
      await this.kube.mergePatch(
        {
          apiVersion: API_VERSION,
          kind: 'Preview',
          namespace: object.metadata.namespace as string,
          name: object.metadata.name as string,
        },
        {
          metadata: {
            resourceVersion: object.metadata.resourceVersion,
            finalizers: finalizers.filter((f) => f !== REPORT_FINALIZER),
          },
        },
      );
      writes.push(`release Preview ${object.metadata.namespace}/${object.metadata.name}`);
    }
    if (previews.length === 0) this.delivered.delete(key);
    if (writes.length > 0) this.logger.info({ pullRequest: key, writes }, 'reported to GitHub');
    if (outage) throw outage;
    return writes;
  }

  private async report(
    key: string,
    repository: string,
    pullRequest: number,
    previews: { report: ReportedPreview }[],
  ): Promise<string[]> {
    const github = await (this.github as GithubClients).forRepository(repository);
    const [owner, repo] = repository.split('/') as [string, string];
    const wanted = pullRequestReport(
      pullRequest,
      previews.map((p) => p.report),
    );
    let delivered = this.delivered.get(key);
    if (!delivered) {
      delivered = { statuses: new Map(), deployments: new Map() };
      this.delivered.set(key, delivered);
    }
    const writes: string[] = [];

    for (const d of wanted.deployments) {
      const id = `${d.service}@${d.commit}`;
      let known = delivered.deployments.get(id);
      if (!known) {
        known = (await findDeployment(github, { owner, repo, pullRequest, ...d })) ?? {};
        delivered.deployments.set(id, known);
      }
      if (known.state === d.state && known.url === d.url) continue;
      if (known.id === undefined) {
        if (d.state === 'inactive') continue; // never deployed on GitHub: nothing to retire
        known.id = await createDeployment(github, { owner, repo, pullRequest, ...d });
        writes.push(`deployment ${id}`);
      }
      await setDeploymentStatus(
        github,
        { owner, repo, deploymentId: known.id },
        d.state,
        d.url,
        d.description,
      );
      known.state = d.state;
      if (d.url) known.url = d.url;
      else delete known.url;
      writes.push(`deployment ${id} ${d.state}`);
    }

    for (const s of wanted.statuses) {
      const text = JSON.stringify(s);
      if (delivered.statuses.get(s.commit) === text) continue;
      await setPreviewStatus(github, { owner, repo, commit: s.commit }, { ...s, message: s.description });
      delivered.statuses.set(s.commit, text);
      writes.push(`status ${sha7(s.commit)} ${s.phase}`);
    }

    if (delivered.comment?.body !== wanted.comment) {
      const id = await upsertPreviewComment(
        github,
        { owner, repo, pullRequest },
        wanted.comment,
        delivered.comment?.id,
      );
      delivered.comment = { id, body: wanted.comment };
      writes.push('comment');
    }
    return writes;
  }
}
