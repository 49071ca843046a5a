/**
 * What a pull_request event means for Previews, as a pure function: which Previews to write or
 * delete, given the TrafficPolicies whose `previews.repository` is the event's (and whose
 * `branches` and `drafts` settings let the pull request in) and the Previews that exist. One Preview per commit (`<policy>-pr-<N>-<sha7>`); the controller keeps the newest
 * `maxPerPullRequest`. An event older than the newest one already acted on (GitHub does not promise
 * order) changes nothing, so an out-of-order synchronize never moves a pull request back.
 */

import { previewName } from '../core/compiler/names.js';
import { eventTime } from '../core/compiler/preview-age.js';
import {
  HEAD_UPDATED_AT,
  NO_PREVIEW_LABEL,
  POLICY_LABEL,
  PULL_REQUEST_LABEL,
} from '../core/resources/labels.js';
import { API_VERSION, type Preview, type TrafficPolicy } from '../core/resources/schema.js';

export interface PullRequestEvent {
  action: string;
  repository: { full_name: string };
  pull_request: {
    number: number;
    draft?: boolean;
    updated_at: string;
    head: { sha: string; ref: string; repo?: { full_name?: string } | null };
    base: { ref: string };
    labels?: { name: string }[];
    /** OWNER, MEMBER, COLLABORATOR, CONTRIBUTOR, FIRST_TIME_CONTRIBUTOR, FIRST_TIMER or NONE. */
    author_association?: string;
  };
}

/**
 * Why a policy makes no preview of this pull request because it comes from a fork, or undefined.
 * A fork's code is anyone's, and a preview runs it with the stable pods' identity: by default a
 * fork gets none (`previews.forks: false`), unless its author's association is in `forkAuthors`.
 * A head repository GitHub no longer knows (`repo: null`, a deleted fork) counts as a fork.
 */
export function forkRefusal(event: PullRequestEvent, policy: LivePolicy): string | undefined {
  const head = event.pull_request.head.repo?.full_name;
  const fromFork =
    head === undefined ? event.pull_request.head.repo === null : head !== event.repository.full_name;
  if (!fromFork || policy.spec.previews?.forks) return undefined;
  const association = event.pull_request.author_association ?? 'NONE';
  const allowed = (policy.spec.previews?.forkAuthors ?? []) as readonly string[];
  if (allowed.includes(association)) return undefined;
  return `this pull request comes from a fork (${head ?? 'a deleted repository'}) and its author is ${association}; previews of ${policy.metadata.namespace ?? 'default'}/${policy.metadata.name} run fork pull requests only for ${allowed.length > 0 ? allowed.join(', ') : 'no one'} (spec.previews.forks / forkAuthors)`;
}

type LivePolicy = Pick<TrafficPolicy, 'spec'> & { metadata: { name: string; namespace?: string } };
type LivePreview = Pick<Preview, 'spec'> & {
  metadata: { name: string; namespace?: string; annotations?: Record<string, string> };
};

export type PreviewAction =
  | { kind: 'apply'; preview: Preview & { metadata: { annotations: Record<string, string> } } }
  | { kind: 'delete'; namespace: string; name: string };

const OPENS = new Set(['opened', 'reopened', 'synchronize', 'ready_for_review']);

/** A branch filter: exact, or with `*` for any run of characters. */
function branchPattern(filter: string): RegExp {
  const escaped = filter.replace(/[.+?^${}()|[\]\\]/g, '\\$&').replaceAll('*', '.*');
  return new RegExp(`^${escaped}$`);
}

/**
 * The reasons this event opens no preview because the pull request comes from a fork, one per
 * policy of the repository that would otherwise have made one (for the pull request comment).
 */
export function forkRefusals(event: PullRequestEvent, policies: readonly LivePolicy[]): string[] {
  if (!OPENS.has(event.action)) return [];
  return policies
    .filter((p) => p.spec.previews?.repository === event.repository.full_name)
    .flatMap((p) => forkRefusal(event, p) ?? []);
}

export function previewActions(
  event: PullRequestEvent,
  policies: readonly LivePolicy[],
  existing: readonly LivePreview[],
): PreviewAction[] {
  const pr = event.pull_request;
  const repository = event.repository.full_name;
  const mine = policies.filter((p) => p.spec.previews?.repository === repository);
  // Only pull requests into the policy's branches (all when none are named) get previews.
  const wanted = (p: LivePolicy) => {
    const branches = p.spec.previews?.branches;
    return !branches || branches.some((b) => branchPattern(b).test(pr.base.ref));
  };
  const ofThisPr = (p: LivePolicy) =>
    existing.filter(
      (x) =>
        x.spec.policy === p.metadata.name &&
        x.spec.repository === repository &&
        x.spec.pullRequest === pr.number &&
        (x.metadata.namespace ?? 'default') === (p.metadata.namespace ?? 'default'),
    );
  const removeAll = (of: readonly LivePolicy[]) =>
    of.flatMap((p) =>
      ofThisPr(p).map((x) => ({
        kind: 'delete' as const,
        namespace: x.metadata.namespace ?? 'default',
        name: x.metadata.name,
      })),
    );

  if (event.action === 'closed') return removeAll(mine);
  const labelled = (pr.labels ?? []).some((l) => l.name === NO_PREVIEW_LABEL);
  const optedOut = (p: LivePolicy) =>
    labelled || (pr.draft && !p.spec.previews?.drafts) || !wanted(p) || forkRefusal(event, p) !== undefined;
  if (event.action === 'labeled' || event.action === 'converted_to_draft')
    return removeAll(mine.filter(optedOut));
  if (!OPENS.has(event.action)) return [];

  return mine
    .filter((p) => !optedOut(p))
    .flatMap((p) => {
      const newest = ofThisPr(p).map(eventTime).sort().at(-1);
      if (newest && newest > pr.updated_at) return []; // an older event, arriving late
      const namespace = p.metadata.namespace ?? 'default';
      return [
        {
          kind: 'apply' as const,
          preview: {
            apiVersion: API_VERSION,
            kind: 'Preview',
            metadata: {
              name: previewName(p.metadata.name, pr.number, pr.head.sha),
              namespace,
              labels: { [PULL_REQUEST_LABEL]: String(pr.number), [POLICY_LABEL]: p.metadata.name },
              annotations: { [HEAD_UPDATED_AT]: pr.updated_at },
            },
            spec: { policy: p.metadata.name, repository, pullRequest: pr.number, commit: pr.head.sha },
          },
        },
      ];
    });
}
