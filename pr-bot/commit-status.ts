/**
 * The commit status `switchyard/preview` on a preview's commit: pending while it deploys, success
 * when it is Ready (target_url: its URL), failure when it failed or expired.
 */
import type { GithubClient } from './github-client.js';

export const STATUS_CONTEXT = 'switchyard/preview';

export type CommitState = 'pending' | 'success' | 'failure' | 'error';

export function commitStateFor(phase: string): CommitState {
  if (phase === 'Ready') return 'success';
  if (phase === 'Failed' || phase === 'Expired') return 'failure';
  return 'pending';
}

export async function setPreviewStatus(
  github: GithubClient,
  target: { owner: string; repo: string; commit: string },
  preview: { phase: string; url?: string | undefined; message?: string },
): Promise<void> {
  const state = commitStateFor(preview.phase);
  // GitHub caps the description at 140 characters.
  const description = (preview.message ?? `preview ${preview.phase}`).slice(0, 140);
  await github.request('POST /repos/{owner}/{repo}/statuses/{sha}', {
    owner: target.owner,
    repo: target.repo,
    sha: target.commit,
    state,
    context: STATUS_CONTEXT,
    description,
    ...(preview.url ? { target_url: preview.url } : {}),
  });
}
