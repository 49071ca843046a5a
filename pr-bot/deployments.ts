/**
 * GitHub Deployments for previews: one per service and commit of a pull request, in the environment
 * `preview/pr-<N>` (task `deploy:<service>` tells services apart), with deployment statuses
 * in_progress → success (environment_url: the preview URL) → inactive once the preview is removed.
 * GitHub's `auto_inactive` is off: it would retire every other service's deployment of the same
 * environment; Switchyard marks a deployment inactive when its own preview goes.
 */
import type { GithubClient } from './github-client.js';

export type DeploymentState = 'in_progress' | 'success' | 'failure' | 'inactive';

export function deploymentStateFor(phase: string, removed: boolean): DeploymentState {
  if (removed || phase === 'Expired') return 'inactive';
  if (phase === 'Ready') return 'success';
  if (phase === 'Failed') return 'failure';
  return 'in_progress';
}

export const environmentFor = (pullRequest: number) => `preview/pr-${pullRequest}`;
export const taskFor = (service: string) => `deploy:${service}`;

interface Repo {
  owner: string;
  repo: string;
}

/** The deployment of this service and commit, if one was made, with its latest status. */
export async function findDeployment(
  github: GithubClient,
  target: Repo & { pullRequest: number; service: string; commit: string },
): Promise<{ id: number; state?: string; url?: string } | undefined> {
  const { data } = await github.request('GET /repos/{owner}/{repo}/deployments', {
    owner: target.owner,
    repo: target.repo,
    sha: target.commit,
    task: taskFor(target.service),
    environment: environmentFor(target.pullRequest),
    per_page: 1,
  });
  const found = data[0];
  if (!found) return undefined;
  const statuses = await github.request('GET /repos/{owner}/{repo}/deployments/{deployment_id}/statuses', {
    owner: target.owner,
    repo: target.repo,
    deployment_id: Number(found.id),
    per_page: 1,
  });
  const latest = statuses.data[0];
  return {
    id: Number(found.id),
    ...(latest ? { state: latest.state } : {}),
    ...(latest?.environment_url ? { url: latest.environment_url } : {}),
  };
}

export async function createDeployment(
  github: GithubClient,
  target: Repo & { pullRequest: number; service: string; commit: string; preview: string },
): Promise<number> {
  const { data, status } = await github.request('POST /repos/{owner}/{repo}/deployments', {
    owner: target.owner,
    repo: target.repo,
    ref: target.commit,
    task: taskFor(target.service),
    environment: environmentFor(target.pullRequest),
    description: `Switchyard preview of ${target.service}`,
    payload: { service: target.service, preview: target.preview },
    // A preview deploys the pull request's commit as it is: no merge of the base branch, and no
    // wait for commit statuses (its own switchyard/preview status is pending until it is up).
    auto_merge: false,
    required_contexts: [],
    transient_environment: true,
    production_environment: false,
  });
  if (status !== 201 || !('id' in data))
    throw new Error(`GitHub did not create the deployment (HTTP ${status}): ${JSON.stringify(data)}`);
  return Number(data.id);
}

export async function setDeploymentStatus(
  github: GithubClient,
  target: Repo & { deploymentId: number },
  state: DeploymentState,
  url: string | undefined,
  description: string,
): Promise<void> {
  await github.request('POST /repos/{owner}/{repo}/deployments/{deployment_id}/statuses', {
    owner: target.owner,
    repo: target.repo,
    deployment_id: target.deploymentId,
    state,
    description: description.slice(0, 140),
    auto_inactive: false,
    ...(url && state === 'success' ? { environment_url: url } : {}),
  });
}
