/**
 * What GitHub is told about a pull request, from its Previews: the commit status is green only when
 * every service's preview of the commit is Ready, a removed preview's deployment goes inactive and it
 * leaves the comment, and each service and commit has its own deployment.
 */
import { describe, expect, it } from 'vitest';
import { pullRequestReport, type ReportedPreview, reportedPreview } from '../pr-bot/pull-request-report.js';

const preview = (over: Partial<ReportedPreview>): ReportedPreview => ({
  namespace: 'shop',
  name: 'checkout-pr-42-7f3a2c1',
  service: 'checkout',
  commit: '7f3a2c1e9b',
  phase: 'Ready',
  url: 'https://pr-42--checkout.preview.example.com',
  header: 'x-switchyard-preview',
  removed: false,
  ...over,
});

describe('pull request report', () => {
  it('is green for a commit only when every service is Ready, with the first URL', () => {
    const report = pullRequestReport(42, [
      preview({}),
      preview({ service: 'cart', name: 'cart-pr-42-7f3a2c1', phase: 'Deploying', url: undefined }),
    ]);
    expect(report.statuses).toEqual([
      {
        commit: '7f3a2c1e9b',
        phase: 'Deploying',
        url: 'https://pr-42--checkout.preview.example.com',
        description: '1 of 2 previews Ready',
      },
    ]);
    const failed = pullRequestReport(42, [preview({}), preview({ service: 'cart', phase: 'Failed' })]);
    expect(failed.statuses[0]?.phase).toBe('Failed');
  });

  it('gives each service and commit a deployment; a removed preview is inactive and leaves the comment', () => {
    const report = pullRequestReport(42, [
      preview({ commit: 'aaaaaaa111', name: 'checkout-pr-42-aaaaaaa', removed: true }),
      preview({}),
    ]);
    expect(report.deployments.map((d) => `${d.service}@${d.commit.slice(0, 7)} ${d.state}`)).toEqual([
      'checkout@7f3a2c1 success',
      'checkout@aaaaaaa inactive',
    ]);
    expect(report.deployments[0]?.url).toBe('https://pr-42--checkout.preview.example.com');
    expect(report.comment).toContain('`7f3a2c1`');
    expect(report.comment).not.toContain('aaaaaaa');
    expect(report.statuses.map((s) => s.commit)).toEqual(['7f3a2c1e9b']);
    expect(pullRequestReport(42, [preview({ removed: true })]).comment).toContain(
      'No preview is running for this pull request.',
    );
  });

  it('reads a Preview object: service from its policy, header from its status', () => {
    const shown = reportedPreview(
      {
        metadata: { name: 'web-pr-7-0a1b2c3', namespace: 'shop', deletionTimestamp: '2026-11-23T00:00:00Z' },
        spec: { policy: 'web', commit: '0a1b2c3d4e' },
        status: { phase: 'Ready', url: 'https://x', intercept: 'x-preview: pr-7' },
      },
      { spec: { service: 'storefront' } },
    );
    expect(shown).toMatchObject({
      service: 'storefront',
      header: 'x-preview',
      removed: true,
      phase: 'Ready',
    });
    expect(reportedPreview({ spec: { policy: 'web' } }, undefined)).toMatchObject({
      service: 'web',
      phase: 'Pending',
      header: 'x-switchyard-preview',
    });
  });
});
