/** Which pull_request events write or delete Previews (the pure part of the PR bot). */
import { describe, expect, it } from 'vitest';
import { HEAD_UPDATED_AT } from '../core/resources/labels.js';
import { forkRefusals, type PullRequestEvent, previewActions } from '../pr-bot/pull-requests.js';

const policy = {
  metadata: { name: 'shop', namespace: 'team' },
  spec: { service: 'shop', port: 80, stable: 'v1', previews: { repository: 'acme/shop' } },
};
const event = (action: string, extra: Partial<PullRequestEvent['pull_request']> = {}): PullRequestEvent => ({
  action,
  repository: { full_name: 'acme/shop' },
  pull_request: {
    number: 42,
    updated_at: '2026-11-23T10:00:00Z',
    head: { sha: '7f3a2c1e9b0d4c2a8f6e5d4c3b2a1f0e9d8c7b6a', ref: 'feature' },
    base: { ref: 'main' },
    ...extra,
  },
});
const existing = {
  metadata: {
    name: 'shop-pr-42-0a1b2c3',
    namespace: 'team',
    annotations: { [HEAD_UPDATED_AT]: '2026-11-23T09:00:00Z' },
  },
  spec: { policy: 'shop', repository: 'acme/shop', pullRequest: 42, commit: '0a1b2c3d4e' },
};

describe('previewActions', () => {
  it('opened, reopened, synchronize and ready_for_review write the head commit’s Preview', () => {
    for (const action of ['opened', 'reopened', 'synchronize', 'ready_for_review']) {
      const [a] = previewActions(event(action), [policy as never], []);
      expect(a).toMatchObject({
        kind: 'apply',
        preview: {
          metadata: { name: 'shop-pr-42-7f3a2c1', namespace: 'team' },
          spec: {
            policy: 'shop',
            repository: 'acme/shop',
            pullRequest: 42,
            commit: event(action).pull_request.head.sha,
          },
        },
      });
    }
  });

  it('ignores other repositories, drafts, the no-preview label and other actions', () => {
    expect(
      previewActions({ ...event('opened'), repository: { full_name: 'acme/other' } }, [policy as never], []),
    ).toEqual([]);
    expect(previewActions(event('opened', { draft: true }), [policy as never], [])).toEqual([]);
    expect(
      previewActions(event('opened', { labels: [{ name: 'no-preview' }] }), [policy as never], []),
    ).toEqual([]);
    expect(previewActions(event('edited'), [policy as never], [])).toEqual([]);
  });

  it('closed, a no-preview label or a move to draft deletes the pull request’s Previews', () => {
    const gone = [{ kind: 'delete', namespace: 'team', name: 'shop-pr-42-0a1b2c3' }];
    expect(previewActions(event('closed'), [policy as never], [existing as never])).toEqual(gone);
    expect(
      previewActions(
        event('labeled', { labels: [{ name: 'no-preview' }] }),
        [policy as never],
        [existing as never],
      ),
    ).toEqual(gone);
    expect(
      previewActions(event('converted_to_draft', { draft: true }), [policy as never], [existing as never]),
    ).toEqual(gone);
  });

  it('follows the policy’s base branch filters and draft setting', () => {
    const filtered = (previews: Record<string, unknown>) => ({
      ...policy,
      spec: { ...policy.spec, previews: { ...policy.spec.previews, ...previews } },
    });
    const into = (base: string, extra: Partial<PullRequestEvent['pull_request']> = {}) =>
      previewActions(
        event('opened', { base: { ref: base }, ...extra }),
        [filtered({ branches: ['main', 'release/*'] }) as never],
        [],
      ).length;
    expect([into('main'), into('release/1.4'), into('develop'), into('mainline')]).toEqual([1, 1, 0, 0]);
    // A branch name with regex characters is taken literally.
    expect(
      previewActions(
        event('opened', { base: { ref: 'v1x0' } }),
        [filtered({ branches: ['v1.0'] }) as never],
        [],
      ),
    ).toEqual([]);
    const drafts = filtered({ drafts: true });
    expect(previewActions(event('opened', { draft: true }), [drafts as never], [])).toHaveLength(1);
    expect(
      previewActions(event('converted_to_draft', { draft: true }), [drafts as never], [existing as never]),
    ).toEqual([]);
    // Closing deletes whatever the filters say now.
    expect(
      previewActions(event('closed'), [filtered({ branches: ['release/*'] }) as never], [existing as never]),
    ).toHaveLength(1);
  });

  it('an event older than the newest acted on changes nothing', () => {
    expect(
      previewActions(
        event('synchronize', { updated_at: '2026-11-23T08:00:00Z' }),
        [policy as never],
        [existing as never],
      ),
    ).toEqual([]);
  });

  it('a pull request from a fork gets no preview unless the policy allows forks or its author', () => {
    const fromFork = (association: string) =>
      event('opened', {
        head: {
          sha: '7f3a2c1e9b0d4c2a8f6e5d4c3b2a1f0e9d8c7b6a',
          ref: 'feature',
          repo: { full_name: 'mallory/shop' },
        },
        author_association: association,
      });
    const withPreviews = (previews: Record<string, unknown>) =>
      ({ ...policy, spec: { ...policy.spec, previews: { ...policy.spec.previews, ...previews } } }) as never;
    expect(previewActions(fromFork('NONE'), [policy as never], [])).toEqual([]);
    expect(forkRefusals(fromFork('NONE'), [policy as never])).toEqual([
      'this pull request comes from a fork (mallory/shop) and its author is NONE; previews of team/shop run fork pull requests only for no one (spec.previews.forks / forkAuthors)',
    ]);
    expect(previewActions(fromFork('NONE'), [withPreviews({ forks: true })], [])).toHaveLength(1);
    const members = withPreviews({ forkAuthors: ['OWNER', 'MEMBER'] });
    expect(previewActions(fromFork('MEMBER'), [members], [])).toHaveLength(1);
    expect(previewActions(fromFork('CONTRIBUTOR'), [members], [])).toEqual([]);
    // A deleted fork (GitHub sends repo: null) is a fork too; the base repository itself is not.
    expect(
      previewActions(
        event('opened', { head: { sha: 'abcdef1', ref: 'x', repo: null } }),
        [policy as never],
        [],
      ),
    ).toEqual([]);
    expect(
      previewActions(
        event('opened', { head: { sha: 'abcdef1', ref: 'x', repo: { full_name: 'acme/shop' } } }),
        [policy as never],
        [],
      ),
    ).toHaveLength(1);
    expect(forkRefusals(event('closed'), [policy as never])).toEqual([]);
  });
});
