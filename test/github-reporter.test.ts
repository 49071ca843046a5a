/**
 * The GitHub reporter's trust boundaries, on a real API server and a GitHub stand-in: it never
 * reports on a repository other than the one the Preview's policy takes previews of, and a removed
 * Preview held for an unreachable GitHub is let go after the hold limit (with a callback for the
 * Event and the metric), not held for ever.
 */
import type { KubernetesObject } from '@kubernetes/client-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLogger } from '../core/common/logger.js';
import { sameRepository } from '../core/compiler/compile.js';
import { REPORT_FINALIZER } from '../core/resources/labels.js';
import type { Kube } from '../kube/client.js';
import { githubClients } from '../pr-bot/github-client.js';
import { GithubReporter } from '../pr-bot/github-reporter.js';
import { handleGithubEvent } from '../pr-bot/handle-event.js';
import { reportedPreview } from '../pr-bot/pull-request-report.js';
import { adminKube, createNamespace } from './support/cluster.js';
import { type Envtest, sharedEnvtest } from './support/envtest.js';
import { examplesOf } from './support/github-deliveries.js';
import { type GithubStandIn, startGithubStandIn } from './support/github-stand-in.js';

const shared = await sharedEnvtest({ istio: false });
const ns = 'github-reporter';
const API = 'switchyard.dev/v1alpha1';
type Obj = KubernetesObject & { spec: { policy: string; repository: string; pullRequest: number } };

describe.skipIf(!shared)('GitHub reporter boundaries', () => {
  let kube: Kube;
  let github: GithubStandIn;
  let now = Date.now();
  const expired: string[] = [];

  let policies: (KubernetesObject & { spec: { previews?: { repository?: string } } })[] = [];
  let previews: Obj[] = [];
  let reporter: GithubReporter;
  /** One sync over the API server's objects, as the controller's caches would show them. */
  async function syncOnce(key: string) {
    policies = await kube.list(API, 'TrafficPolicy', ns);
    previews = await kube.list<Obj>(API, 'Preview', ns);
    return reporter.sync(key);
  }
  const preview = (name: string, repository: string) =>
    kube.apply(
      {
        apiVersion: API,
        kind: 'Preview',
        metadata: { name, namespace: ns, finalizers: [REPORT_FINALIZER] },
        spec: { policy: 'shop', repository, pullRequest: 5, commit: 'abcdef1234' },
      } as KubernetesObject,
      'test',
      true,
    );
  const get = (name: string) => kube.get<Obj>({ apiVersion: API, kind: 'Preview', namespace: ns, name });

  beforeAll(async () => {
    kube = adminKube(shared as Envtest);
    github = await startGithubStandIn();
    reporter = new GithubReporter(
      kube,
      {
        previews: (repository, pullRequest) =>
          previews
            .filter((p) => p.spec.repository === repository && p.spec.pullRequest === pullRequest)
            .map((object) => {
              const policy = policies.find((x) => x.metadata?.name === object.spec.policy);
              return {
                object,
                report: reportedPreview(object, policy as never),
                ownRepository: sameRepository(policy?.spec.previews?.repository, repository),
              };
            }),
      },
      githubClients({ token: 't', baseUrl: github.url, retryAfterBaseValue: 1, writeIntervalMs: 0 }),
      createLogger({ level: 'silent' }),
      undefined,
      {
        holdLimitMs: 24 * 3600_000,
        now: () => now,
        onHoldExpired: (p) => void expired.push(p.metadata?.name as string),
      },
    );
    await createNamespace(kube, ns);
    await kube.apply(
      {
        apiVersion: API,
        kind: 'TrafficPolicy',
        metadata: { name: 'shop', namespace: ns },
        spec: { service: 'shop', port: 80, stable: 'v1', previews: { repository: 'acme/shop' } },
      } as KubernetesObject,
      'test',
      true,
    );
  });
  afterAll(async () => {
    await github?.close();
  });

  it('a Preview naming another repository is never reported there, and its finalizer is still released', async () => {
    await preview('shop-pr-5-abcdef1', 'victim/other');
    await syncOnce('victim/other#5');
    expect(github.calls).toEqual([]); // no comment, status or deployment in victim/other
    await kube.delete({ apiVersion: API, kind: 'Preview', namespace: ns, name: 'shop-pr-5-abcdef1' });
    await syncOnce('victim/other#5');
    expect(github.calls).toEqual([]);
    expect(await get('shop-pr-5-abcdef1')).toBeUndefined();
  });

  it('holds a removed Preview while GitHub is down, and lets it go after the hold limit', async () => {
    await preview('shop-pr-5-1234567', 'acme/shop');
    await syncOnce('acme/shop#5');
    expect(github.comments.get('acme/shop#5')).toHaveLength(1);
    github.down = true;
    try {
      await kube.delete({ apiVersion: API, kind: 'Preview', namespace: ns, name: 'shop-pr-5-1234567' });
      now = Date.now() + 3600_000; // an hour into the outage: still held
      await expect(syncOnce('acme/shop#5')).rejects.toThrow();
      expect((await get('shop-pr-5-1234567'))?.metadata?.finalizers).toContain(REPORT_FINALIZER);
      expect(expired).toEqual([]);
      now = Date.now() + 25 * 3600_000; // past the limit: let go, and said so
      await expect(syncOnce('acme/shop#5')).rejects.toThrow();
      expect(await get('shop-pr-5-1234567')).toBeUndefined();
      expect(expired).toEqual(['shop-pr-5-1234567']);
    } finally {
      github.down = false;
    }
  });

  it('a pull request from a fork gets no Preview, and its comment says why', async () => {
    const opened = structuredClone(examplesOf('pull_request').find((e) => e.action === 'opened')) as {
      repository: { full_name: string };
      pull_request: { number: number; head: { repo: { full_name: string } }; author_association: string };
    };
    opened.repository.full_name = 'acme/shop';
    opened.pull_request.number = 77;
    opened.pull_request.head.repo.full_name = 'mallory/shop';
    opened.pull_request.author_association = 'NONE';
    const actions = await handleGithubEvent(
      kube,
      { id: 'fork-1', name: 'pull_request', payload: opened },
      {
        namespaces: [ns],
        logger: createLogger({ level: 'silent' }),
        github: githubClients({
          token: 't',
          baseUrl: github.url,
          retryAfterBaseValue: 1,
          writeIntervalMs: 0,
        }),
      },
    );
    expect(actions).toEqual([]);
    expect((await kube.list(API, 'Preview', ns)).map((p) => p.metadata?.name)).not.toContain(
      expect.stringMatching(/pr-77/),
    );
    const comments = github.comments.get('acme/shop#77') ?? [];
    expect(comments).toHaveLength(1);
    expect(comments[0]?.body).toContain('No preview was made for this pull request:');
    expect(comments[0]?.body).toContain('comes from a fork (mallory/shop) and its author is NONE');
  });
});
