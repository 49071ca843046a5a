/**
 * One accepted GitHub delivery → Previews written or deleted (field manager `switchyard-github`).
 * pull_request events act; ping, push and every other event are acknowledged and ignored.
 */
import type { KubernetesObject } from '@kubernetes/client-node';
import type { Logger } from '../core/common/logger.js';
import { PULL_REQUEST_LABEL, REPORT_FINALIZER } from '../core/resources/labels.js';
import { API_VERSION, type Preview, type TrafficPolicy } from '../core/resources/schema.js';
import type { Kube } from '../kube/client.js';
import type { GithubClients } from './github-client.js';
import { renderRefusalComment, upsertPreviewComment } from './pr-comment.js';
import { forkRefusals, type PreviewAction, type PullRequestEvent, previewActions } from './pull-requests.js';

export const GITHUB_FIELD_MANAGER = 'switchyard-github';

export async function handleGithubEvent(
  kube: Kube,
  event: { id: string; name: string; payload: unknown },
  options: {
    namespaces: string[];
    logger: Logger;
    /** GitHub is told of each Preview's removal before it goes (github-reporter.ts). */
    holdForReport?: boolean;
    /** Where a pull request that gets no preview on purpose (a fork) is told why. */
    github?: GithubClients;
  },
): Promise<PreviewAction[]> {
  if (event.name !== 'pull_request') return [];
  const pr = event.payload as PullRequestEvent;
  if (!pr.pull_request || !pr.repository?.full_name) return [];
  const scopes = options.namespaces.length > 0 ? options.namespaces : [undefined];
  const policies: (TrafficPolicy & KubernetesObject)[] = [];
  const previews: (Preview & KubernetesObject)[] = [];
  for (const ns of scopes) {
    policies.push(...(await kube.list<TrafficPolicy & KubernetesObject>(API_VERSION, 'TrafficPolicy', ns)));
    // Only the Previews the bot wrote for this pull request: small lists however many there are.
    previews.push(
      ...(await kube.list<Preview & KubernetesObject>(
        API_VERSION,
        'Preview',
        ns,
        `${PULL_REQUEST_LABEL}=${pr.pull_request.number}`,
      )),
    );
  }
  const actions = previewActions(pr, policies as never, previews as never);
  for (const a of actions) {
    if (a.kind === 'apply') {
      const preview = options.holdForReport
        ? { ...a.preview, metadata: { ...a.preview.metadata, finalizers: [REPORT_FINALIZER] } }
        : a.preview;
      await kube.apply(preview as KubernetesObject, GITHUB_FIELD_MANAGER, true);
    } else
      await kube.delete({ apiVersion: API_VERSION, kind: 'Preview', namespace: a.namespace, name: a.name });
  }
  const refused = forkRefusals(pr, policies as never);
  if (refused.length > 0 && actions.length === 0 && options.github) {
    const [owner, repo] = pr.repository.full_name.split('/') as [string, string];
    const client = await options.github.forRepository(pr.repository.full_name);
    await upsertPreviewComment(
      client,
      { owner, repo, pullRequest: pr.pull_request.number },
      renderRefusalComment(refused),
    );
  }
  options.logger.info(
    {
      delivery: event.id,
      action: pr.action,
      pullRequest: `${pr.repository.full_name}#${pr.pull_request.number}`,
      ...(refused.length > 0 ? { refused } : {}),
      previews: actions.map((a) =>
        a.kind === 'apply' ? `apply ${a.preview.metadata.name}` : `delete ${a.name}`,
      ),
    },
    'pull request event',
  );
  return actions;
}
