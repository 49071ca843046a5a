/**
 * Every setting Switchyard reads from the environment, read in one place (the CLI, on top): the
 * rest of the code is handed what it needs. Secrets come only from here (`NAME` or `NAME_FILE`),
 * never from flags.
 */
import { readFileSync } from 'node:fs';
import type { Problem } from '../core/common/errors.js';
import { readSecret } from '../core/common/secrets.js';
import { type GithubClientOptions, githubAuthFromEnv } from '../pr-bot/github-client.js';

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
  /** The PEM `switchyard token` signs with. */
  interceptTokenKey(): string | undefined;
  /** Set when a variable of the retired HS256 tokens is still set: what to do instead. */
  retiredTokenSecret(): string | undefined;
  githubWebhookSecret(): string | undefined;
  /** The GitHub App or token, or the problem with a half-configured App. */
  github(): GithubClientOptions | Problem | undefined;
}

const RETIRED_TOKEN_VARIABLES = [
  'SWITCHYARD_INTERCEPT_TOKEN_SECRET',
  'SWITCHYARD_INTERCEPT_TOKEN_SECRET_FILE',
  'SWITCHYARD_INTERCEPT_TOKEN_SECRET_PREVIOUS',
  'SWITCHYARD_INTERCEPT_TOKEN_SECRET_PREVIOUS_FILE',
];

/**
 * The version Switchyard, its image and its chart carry: package.json's, the one place it is set
 * (`npm version` updates the chart and the install manifests from it: .ci/set-version.mjs).
 * Read beside the code (dist/cli/ or cli/ under tsx: package.json is two or one folders up).
 */
const PACKAGE_VERSION = ((): string => {
  for (const up of ['../../package.json', '../package.json']) {
    try {
      const pkg = JSON.parse(readFileSync(new URL(up, import.meta.url), 'utf8')) as {
        name?: string;
        version?: string;
      };
      if (pkg.name === 'switchyard' && pkg.version) return pkg.version;
    } catch {
      // not there: try the next folder up
    }
  }
  return 'unknown';
})();

export function readSettings(env: NodeJS.ProcessEnv): Settings {
  return {
    ...(env.SWITCHYARD_LOG_LEVEL ? { logLevel: env.SWITCHYARD_LOG_LEVEL } : {}),
    debug: Boolean(env.SWITCHYARD_DEBUG),
    ...(env.REDIS_URL ? { redisUrl: env.REDIS_URL } : {}),
    ...(env.POD_NAMESPACE ? { podNamespace: env.POD_NAMESPACE } : {}),
    version: PACKAGE_VERSION,
    interceptTokenKey: () => readSecret(env, 'SWITCHYARD_INTERCEPT_TOKEN_KEY'),
    retiredTokenSecret() {
      const set = RETIRED_TOKEN_VARIABLES.filter((v) => env[v]);
      return set.length > 0
        ? `${set.join(', ')}: HS256 intercept tokens with a shared secret were replaced by ES256/EdDSA keys, so that Istio's gateway can verify tokens with a public key. Make a key with \`switchyard token-key\`, give it to \`switchyard token\` as SWITCHYARD_INTERCEPT_TOKEN_KEY, give its public JWKS (\`switchyard token-jwks\`) to the gateway and the controller with --token-jwks, and unset ${set.join(', ')} (tokens signed with the old secret no longer open anything)`
        : undefined;
    },
    githubWebhookSecret: () => readSecret(env, 'SWITCHYARD_GITHUB_WEBHOOK_SECRET'),
    github: () => githubAuthFromEnv(env),
  };
}
