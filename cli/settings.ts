/**
 * Every setting Switchyard reads from the environment, read in one place (the CLI, on top): the
 * rest of the code is handed what it needs. Secrets come only from here (`NAME` or `NAME_FILE`),
 * never from flags.
 */
import { type GithubClientOptions, githubAuthFromEnv } from '../previews/github-client.js';
import type { Problem } from '../src/core/errors.js';
import { readSecret } from '../src/core/secrets.js';

export interface Settings {
  /** SWITCHYARD_LOG_LEVEL: the default of every `--log-level`. */
  logLevel?: string;
  /** SWITCHYARD_DEBUG: stack traces for internal errors. */
  debug: boolean;
  /** REDIS_URL: shared rate limits (gateway) and delivery ids (controller). */
  redisUrl?: string;
  /** POD_NAMESPACE: where the controller's Lease lives in a cluster. */
  podNamespace?: string;
  version: string;
  // Secrets are read when a command asks for them (a `_FILE` may be mounted for one command only).
  interceptTokenKeys(): { current?: string; previous?: string };
  githubWebhookSecret(): string | undefined;
  /** The GitHub App or token, or the problem with a half-configured App. */
  github(): GithubClientOptions | Problem | undefined;
}

export function readSettings(env: NodeJS.ProcessEnv): Settings {
  return {
    ...(env.SWITCHYARD_LOG_LEVEL ? { logLevel: env.SWITCHYARD_LOG_LEVEL } : {}),
    debug: Boolean(env.SWITCHYARD_DEBUG),
    ...(env.REDIS_URL ? { redisUrl: env.REDIS_URL } : {}),
    ...(env.POD_NAMESPACE ? { podNamespace: env.POD_NAMESPACE } : {}),
    version: env.npm_package_version ?? '0.1.0',
    interceptTokenKeys() {
      const current = readSecret(env, 'SWITCHYARD_INTERCEPT_TOKEN_SECRET');
      const previous = readSecret(env, 'SWITCHYARD_INTERCEPT_TOKEN_SECRET_PREVIOUS');
      return { ...(current ? { current } : {}), ...(previous ? { previous } : {}) };
    },
    githubWebhookSecret: () => readSecret(env, 'SWITCHYARD_GITHUB_WEBHOOK_SECRET'),
    github: () => githubAuthFromEnv(env),
  };
}
