/**
 * The one comment Switchyard keeps on a pull request: found by a hidden marker and edited in place
 * on every change, never a new comment per push. The body is rendered from the pull request's
 * previews (a pure function); writing it goes through Octokit (pr-bot/github-client.ts).
 */
import { latestRef, pinnedRef, sha7 } from '../core/compiler/names.js';
import type { GithubClient } from './github-client.js';

export const COMMENT_MARKER = '<!-- switchyard:previews -->';

export interface PreviewLine {
  service: string;
  commit: string;
  phase: string;
  url?: string | undefined;
  /** The header to send: `x-switchyard-preview`. */
  header: string;
  pullRequest: number;
  /** Why a preview failed (its condition's message), shown beside the phase. */
  detail?: string | undefined;
}

/** The comment: a table of each service's preview, with the intercept header to send. */
export function renderPreviewComment(lines: readonly PreviewLine[]): string {
  const rows = [...lines]
    .sort((a, b) => a.service.localeCompare(b.service) || a.commit.localeCompare(b.commit))
    .map((l) => {
      const latest = `\`${l.header}: ${latestRef(l.pullRequest)}\``;
      const pinned = `\`${l.header}: ${pinnedRef(l.pullRequest, l.commit)}\``;
      const phase = l.detail ? `${l.phase}: ${l.detail.replaceAll('|', '\\|')}` : l.phase;
      return `| ${l.service} | \`${sha7(l.commit)}\` | ${phase} | ${l.url ? `<${l.url}>` : '-'} | ${latest} (this commit: ${pinned}) |`;
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

/** The comment when a pull request gets no preview on purpose (a fork): why, per policy. */
export function renderRefusalComment(reasons: readonly string[]): string {
  return [
    COMMENT_MARKER,
    '### Switchyard previews',
    '',
    'No preview was made for this pull request:',
    ...reasons.map((r) => `- ${r}`),
  ].join('\n');
}

/**
 * Creates the comment, or edits the one carrying the marker; returns its id. With the id known from
 * an earlier call it is edited directly (one request); if it was deleted meanwhile, found or made anew.
 */
export async function upsertPreviewComment(
  github: GithubClient,
  target: { owner: string; repo: string; pullRequest: number },
  body: string,
  knownId?: number,
): Promise<number> {
  if (knownId !== undefined) {
    try {
      await github.request('PATCH /repos/{owner}/{repo}/issues/comments/{comment_id}', {
        owner: target.owner,
        repo: target.repo,
        comment_id: knownId,
        body,
      });
      return knownId;
    } catch (e) {
      if ((e as { status?: number }).status !== 404) throw e;
    }
  }
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
