/**
 * The pull request comment against a local GitHub stand-in: one comment per pull request, found by
 * its marker and edited in place; an unchanged body is not written again; a GitHub answering 500
 * and then 200 still gets the comment, once; and the commit status of a preview.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { commitStateFor, setPreviewStatus } from '../pr-bot/commit-status.js';
import { githubClient } from '../pr-bot/github-client.js';
import { COMMENT_MARKER, renderPreviewComment, upsertPreviewComment } from '../pr-bot/pr-comment.js';
import { type GithubStandIn, startGithubStandIn } from './support/github-stand-in.js';

describe('pull request comment', () => {
  let github: GithubStandIn;
  beforeAll(async () => {
    github = await startGithubStandIn();
  });
  afterAll(async () => {
    await github?.close();
  });
  const client = () => githubClient({ token: 'test-token', baseUrl: github.url, retryAfterBaseValue: 10 });
  const target = { owner: 'acme', repo: 'shop', pullRequest: 42 };
  const line = (commit: string, phase: string, url?: string) => ({
    service: 'checkout',
    commit,
    phase,
    url,
    header: 'x-switchyard-preview',
    pullRequest: 42,
  });

  it('renders each preview with the header to send, under a hidden marker', () => {
    const body = renderPreviewComment([
      line('7f3a2c1e9b', 'Ready', 'https://pr-42--checkout.preview.example.com'),
    ]);
    expect(body.startsWith(COMMENT_MARKER)).toBe(true);
    expect(body).toContain(
      '| checkout | `7f3a2c1` | Ready | <https://pr-42--checkout.preview.example.com> | `x-switchyard-preview: pr-42` (this commit: `x-switchyard-preview: pr-42-7f3a2c1`) |',
    );
    expect(renderPreviewComment([])).toContain('No preview is running for this pull request.');
    // A failed preview says why (a | in the reason cannot break the table).
    expect(
      renderPreviewComment([{ ...line('7f3a2c1e9b', 'Failed'), detail: 'at most 1 pull request | at once' }]),
    ).toContain('| checkout | `7f3a2c1` | Failed: at most 1 pull request \\| at once | - |');
  });

  it('keeps one comment per pull request, edited in place, and skips an unchanged body', async () => {
    const first = await upsertPreviewComment(
      client(),
      target,
      renderPreviewComment([line('7f3a2c1e9b', 'Deploying')]),
    );
    const second = await upsertPreviewComment(
      client(),
      target,
      renderPreviewComment([line('7f3a2c1e9b', 'Ready')]),
    );
    const callsBefore = github.calls.length;
    const third = await upsertPreviewComment(
      client(),
      target,
      renderPreviewComment([line('7f3a2c1e9b', 'Ready')]),
    );
    expect(second).toBe(first);
    expect(third).toBe(first);
    expect(github.comments.get('acme/shop#42')).toHaveLength(1);
    expect(github.comments.get('acme/shop#42')?.[0]?.body).toContain('| Ready |');
    expect(github.calls.slice(callsBefore).map((c) => c.method)).toEqual(['GET']); // no write
    expect(github.calls.filter((c) => c.method === 'PATCH')).toHaveLength(1);
  });

  it('a GitHub answering 500 and then 200 still gets the comment, once', async () => {
    const other = { ...target, pullRequest: 7 };
    github.failNext(2);
    await upsertPreviewComment(client(), other, renderPreviewComment([line('0a1b2c3d4e', 'Deploying')]));
    expect(github.calls.filter((c) => c.status === 500)).toHaveLength(2);
    expect(github.comments.get('acme/shop#7')).toHaveLength(1);
  });

  it('sets the switchyard/preview commit status: pending, then success with the URL', async () => {
    const commit = '7f3a2c1e9b0d4c2a8f6e5d4c3b2a1f0e9d8c7b6a';
    const at = { owner: 'acme', repo: 'shop', commit };
    await setPreviewStatus(client(), at, { phase: 'Deploying' });
    await setPreviewStatus(client(), at, {
      phase: 'Ready',
      url: 'https://pr-42--checkout.preview.example.com',
    });
    expect(github.statuses.get(`acme/shop@${commit}`)).toEqual([
      { state: 'pending', context: 'switchyard/preview', description: 'preview Deploying' },
      {
        state: 'success',
        context: 'switchyard/preview',
        description: 'preview Ready',
        target_url: 'https://pr-42--checkout.preview.example.com',
      },
    ]);
    expect(['Failed', 'Expired'].map(commitStateFor)).toEqual(['failure', 'failure']);
  });
});
