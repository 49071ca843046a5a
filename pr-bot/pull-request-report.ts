/**
 * What GitHub should show for one pull request, from its Previews (a pure function): the comment,
 * a `switchyard/preview` commit status per commit that has previews, and a deployment state per
 * service and commit. The reporter (github-reporter.ts) makes GitHub match it.
 */
import { DEFAULTS } from '../core/resources/schema.js';
import { commitStateFor } from './commit-status.js';
import { type DeploymentState, deploymentStateFor } from './deployments.js';
import { renderPreviewComment } from './pr-comment.js';

export interface ReportedPreview {
  namespace: string;
  name: string;
  service: string;
  commit: string;
  phase: string;
  url?: string | undefined;
  /** The intercept header's name (`x-switchyard-preview` unless the policy says otherwise). */
  header: string;
  /** Being deleted (closed pull request, superseded commit, TTL): shown as gone. */
  removed: boolean;
  /** Why it failed, for the comment. */
  detail?: string | undefined;
}

export interface PullRequestReport {
  comment: string;
  statuses: { commit: string; phase: string; url?: string; description: string }[];
  deployments: {
    service: string;
    commit: string;
    preview: string;
    state: DeploymentState;
    url?: string;
    description: string;
  }[];
}

/** Failed beats pending beats ready: a commit is green only when every service's preview is up. */
function commitPhase(phases: string[]): string {
  const states = phases.map(commitStateFor);
  if (states.includes('failure')) return phases[states.indexOf('failure')] as string;
  if (states.includes('pending')) return phases[states.indexOf('pending')] as string;
  return 'Ready';
}

export function pullRequestReport(
  pullRequest: number,
  previews: readonly ReportedPreview[],
): PullRequestReport {
  const live = previews.filter((p) => !p.removed);
  const commits = [...new Set(live.map((p) => p.commit))].sort();
  return {
    comment: renderPreviewComment(live.map((p) => ({ ...p, pullRequest }))),
    statuses: commits.map((commit) => {
      const ofCommit = live.filter((p) => p.commit === commit);
      const ready = ofCommit.filter((p) => p.phase === 'Ready');
      const url = ready.find((p) => p.url)?.url;
      return {
        commit,
        phase: commitPhase(ofCommit.map((p) => p.phase)),
        ...(url ? { url } : {}),
        description:
          ofCommit.length === 1
            ? `preview ${ofCommit[0]?.phase}`
            : `${ready.length} of ${ofCommit.length} previews Ready`,
      };
    }),
    deployments: [...previews]
      .sort((a, b) => a.service.localeCompare(b.service) || a.commit.localeCompare(b.commit))
      .map((p) => ({
        service: p.service,
        commit: p.commit,
        preview: `${p.namespace}/${p.name}`,
        state: deploymentStateFor(p.phase, p.removed),
        ...(p.url ? { url: p.url } : {}),
        description: p.removed ? 'preview removed' : `preview ${p.phase}`,
      })),
  };
}

type PreviewObject = {
  metadata?: { name?: string; namespace?: string; deletionTimestamp?: unknown };
  spec?: { policy?: string; commit?: string };
  status?: { phase?: string; url?: string; intercept?: string; conditions?: { message?: string }[] };
};

/** A Preview as the report shows it: the service is its policy's, the header the one it was told to send. */
export function reportedPreview(
  preview: PreviewObject,
  policy: { spec?: { service?: string; previews?: { header?: string } } } | undefined,
): ReportedPreview {
  const header =
    preview.status?.intercept?.split(':')[0] ?? policy?.spec?.previews?.header ?? DEFAULTS.previewHeader;
  return {
    namespace: preview.metadata?.namespace ?? DEFAULTS.namespace,
    name: preview.metadata?.name ?? '',
    service: policy?.spec?.service ?? preview.spec?.policy ?? '',
    commit: preview.spec?.commit ?? '',
    phase: preview.status?.phase ?? 'Pending',
    url: preview.status?.url,
    header,
    removed: Boolean(preview.metadata?.deletionTimestamp),
    ...(preview.status?.phase === 'Failed' ? { detail: preview.status.conditions?.[0]?.message } : {}),
  };
}
