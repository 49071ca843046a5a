/**
 * Octokit for the PR bot's outbound side: GitHub App installation auth (`@octokit/auth-app`: app id
 * + private key, the installation found per repository) or a token, against github.com or a GitHub
 * Enterprise `baseUrl`, with retries (5xx, network) and GitHub's rate limits respected
 * (plugin-retry, plugin-throttling). Retries inside a request stay short: a longer outage is waited
 * out by the reporter's work queue, which backs off per pull request and never blocks the rest.
 */
import { createAppAuth } from '@octokit/auth-app';
import { Octokit } from '@octokit/core';
import { paginateRest } from '@octokit/plugin-paginate-rest';
import { retry } from '@octokit/plugin-retry';
import { throttling } from '@octokit/plugin-throttling';
import Bottleneck from 'bottleneck';
import { type Problem, problem } from '../core/common/errors.js';
import { readSecret } from '../core/common/secrets.js';

const Client = Octokit.plugin(retry, throttling, paginateRest);
export type GithubClient = InstanceType<typeof Client>;

export type GithubAuth =
  | { token: string }
  /** A GitHub App: its installation on each repository is looked up unless installationId is set. */
  | { appId: string; privateKey: string; installationId?: number };

export type GithubClientOptions = GithubAuth & {
  /** `https://github.example.com/api/v3` for GitHub Enterprise; default api.github.com. */
  baseUrl?: string | undefined;
  /** Base of the wait between retries in ms (plugin-retry's default 1000; tests shorten it). */
  retryAfterBaseValue?: number;
  /**
   * The spacing of writes (POST/PATCH) in ms. GitHub asks for at least a second between
   * content-creating requests (plugin-throttling's default: 1 s, 3 s for those that notify); only
   * a stand-in for GitHub may be written to faster.
   */
  writeIntervalMs?: number;
};

/** A client per repository: with App auth each acts as the App's installation on that repository. */
export interface GithubClients {
  forRepository(fullName: string): Promise<GithubClient>;
}

export function githubClient(opts: GithubClientOptions): GithubClient {
  return new Client({
    ...('token' in opts
      ? { auth: opts.token }
      : {
          authStrategy: createAppAuth,
          auth: {
            appId: opts.appId,
            privateKey: opts.privateKey,
            ...(opts.installationId !== undefined ? { installationId: opts.installationId } : {}),
          },
        }),
    ...(opts.baseUrl ? { baseUrl: opts.baseUrl } : {}),
    // A blip is retried here (1 s, then 4 s); a longer outage by the reporter's queue.
    retry: {
      retries: 2,
      ...(opts.retryAfterBaseValue !== undefined ? { retryAfterBaseValue: opts.retryAfterBaseValue } : {}),
    },
    throttle: {
      ...(opts.writeIntervalMs !== undefined
        ? {
            write: new Bottleneck.Group({ maxConcurrent: 1, minTime: opts.writeIntervalMs }),
            notifications: new Bottleneck.Group({ maxConcurrent: 1, minTime: opts.writeIntervalMs }),
          }
        : {}),
      // Primary and secondary rate limits: wait and retry (up to twice), as GitHub asks.
      onRateLimit: (_after: number, _options: object, _octokit: unknown, retryCount: number) =>
        retryCount < 2,
      onSecondaryRateLimit: (_after: number, _options: object, _octokit: unknown, retryCount: number) =>
        retryCount < 2,
    },
  });
}

export function githubClients(opts: GithubClientOptions): GithubClients {
  if ('token' in opts || opts.installationId !== undefined) {
    const client = githubClient(opts);
    return { forRepository: async () => client };
  }
  // The App's own client (JWT) finds the installation; one installation client per installation.
  const app = githubClient(opts);
  const installations = new Map<string, Promise<GithubClient>>();
  return {
    forRepository(fullName) {
      let client = installations.get(fullName);
      if (!client) {
        const [owner, repo] = fullName.split('/') as [string, string];
        client = app
          .request('GET /repos/{owner}/{repo}/installation', { owner, repo })
          .then(({ data }) => githubClient({ ...opts, installationId: data.id }));
        // A failed lookup (not installed yet, GitHub down) is asked again next time.
        client.catch(() => installations.delete(fullName));
        installations.set(fullName, client);
      }
      return client;
    },
  };
}

/**
 * Outbound credentials from the environment: SWITCHYARD_GITHUB_APP_ID with
 * SWITCHYARD_GITHUB_APP_PRIVATE_KEY(_FILE) (optionally SWITCHYARD_GITHUB_APP_INSTALLATION_ID), or
 * SWITCHYARD_GITHUB_TOKEN(_FILE); SWITCHYARD_GITHUB_API_URL for GitHub Enterprise. Undefined when
 * none is set (the bot then only writes Previews).
 */
export function githubAuthFromEnv(env: NodeJS.ProcessEnv): GithubClientOptions | Problem | undefined {
  const baseUrl = env.SWITCHYARD_GITHUB_API_URL || undefined;
  const appId = env.SWITCHYARD_GITHUB_APP_ID || undefined;
  const privateKey = readSecret(env, 'SWITCHYARD_GITHUB_APP_PRIVATE_KEY');
  const token = readSecret(env, 'SWITCHYARD_GITHUB_TOKEN');
  const installation = env.SWITCHYARD_GITHUB_APP_INSTALLATION_ID;
  if (appId || privateKey) {
    if (!appId || !privateKey)
      return problem(
        'SY_BAD_REQUEST',
        'a GitHub App needs both SWITCHYARD_GITHUB_APP_ID and SWITCHYARD_GITHUB_APP_PRIVATE_KEY (or _FILE)',
      );
    if (installation !== undefined && !/^[0-9]+$/.test(installation))
      return problem(
        'SY_BAD_REQUEST',
        `SWITCHYARD_GITHUB_APP_INSTALLATION_ID=${installation}: expected the installation's number`,
      );
    return { appId, privateKey, baseUrl, ...(installation ? { installationId: Number(installation) } : {}) };
  }
  return token ? { token, baseUrl } : undefined;
}
