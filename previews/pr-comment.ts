/**
 * The one comment Switchyard keeps on a pull request: found by a hidden marker and edited in place
 * on every change, never a new comment per push. The body is rendered from the pull request's
 * previews (a pure function); writing it goes through Octokit, with retries (5xx, network) and
 * GitHub's rate limits respected (plugin-retry, plugin-throttling), against github.com or a GitHub
 * Enterprise `baseUrl`.
 */
import { Octokit } from '@octokit/core';
import { paginateRest } from '@octokit/plugin-paginate-rest';
import { retry } from '@octokit/plugin-retry';
import { throttling } from '@octokit/plugin-throttling';

export const COMMENT_MARKER = '<!-- switchyard:previews -->';

export interface PreviewLine {
  service: string;
  commit: string;
  phase: string;
  url?: string | undefined;
  /** The header to send: `x-switchyard-preview`. */
  header: string;
  pullRequest: number;
}

/** The comment: a table of each service's preview, with the intercept header to send. */
export function renderPreviewComment(lines: readonly PreviewLine[]): string {
  const rows = [...lines]
    .sort((a, b) => a.service.localeCompare(b.service) || a.commit.localeCompare(b.commit))
    .map((l) => {
      const latest = `\`${l.header}: pr-${l.pullRequest}\``;
      const pinned = `\`${l.header}: pr-${l.pullRequest}-${l.commit.slice(0, 7)}\``;
      return `| ${l.service} | \`${l.commit.slice(0, 7)}\` | ${l.phase} | ${l.url ? `<${l.url}>` : '-'} | ${latest} (this commit: ${pinned}) |`;
    });
  return [
    COMMENT_MARKER,
    '### Switchyard previews',
    '',
    rows.length > 0
      ? ['| service | commit | phase | URL | intercept header |', '|---|---|---|---|---|', ...rows].join('\n')
      : 'No preview is running for this pull request.',
    '',
    'Send the header with any request to the usual URL: only your requests reach the preview.',
  ].join('\n');
}

export type GithubClient = InstanceType<ReturnType<typeof githubClientClass>>;

function githubClientClass() {
  return Octokit.plugin(retry, throttling, paginateRest);
}

export interface GithubClientOptions {
  /** An installation or personal token (GitHub App auth is the next step). */
  token: string;
  /** `https://github.example.com/api/v3` for GitHub Enterprise; default api.github.com. */
  baseUrl?: string;
  /** Base of the wait between retries in ms (plugin-retry's default 1000; tests shorten it). */
  retryAfterBaseValue?: number;
}

export function githubClient(opts: GithubClientOptions): GithubClient {
  const Client = githubClientClass();
  return new Client({
    auth: opts.token,
    ...(opts.baseUrl ? { baseUrl: opts.baseUrl } : {}),
    // 5xx and network errors: retried with a growing wait (retryAfterBaseValue x attempt²).
    retry: {
      retries: 5,
      ...(opts.retryAfterBaseValue !== undefined ? { retryAfterBaseValue: opts.retryAfterBaseValue } : {}),
    },
    throttle: {
      // Primary and secondary rate limits: wait and retry (up to twice), as GitHub asks.
      onRateLimit: (_after: number, _options: object, _octokit: unknown, retryCount: number) =>
        retryCount < 2,
      onSecondaryRateLimit: (_after: number, _options: object, _octokit: unknown, retryCount: number) =>
        retryCount < 2,
    },
  });
}

/** Creates the comment, or edits the one carrying the marker; returns its id. */
export async function upsertPreviewComment(
  github: GithubClient,
  target: { owner: string; repo: string; pullRequest: number },
  body: string,
): Promise<number> {
  const comments = await github.paginate('GET /repos/{owner}/{repo}/issues/{issue_number}/comments', {
    owner: target.owner,
    repo: target.repo,
    issue_number: target.pullRequest,
    per_page: 100,
  });
  const mine = (comments as { id: number; body?: string }[]).find((c) => c.body?.includes(COMMENT_MARKER));
  if (mine) {
    if (mine.body !== body)
      await github.request('PATCH /repos/{owner}/{repo}/issues/comments/{comment_id}', {
        owner: target.owner,
        repo: target.repo,
        comment_id: mine.id,
        body,
      });
    return mine.id;
  }
  const created = await github.request('POST /repos/{owner}/{repo}/issues/{issue_number}/comments', {
    owner: target.owner,
    repo: target.repo,
    issue_number: target.pullRequest,
    body,
  });
  return Number(created.data.id);
}
