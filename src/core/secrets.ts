/**
 * Secrets come from the environment, never from flags (they would show in `ps`): `NAME`, or
 * `NAME_FILE` naming a mounted file (Kubernetes Secret volumes). The environment is handed in.
 */
import { readFileSync } from 'node:fs';

export const SECRET_VARIABLES = {
  SWITCHYARD_INTERCEPT_TOKEN_SECRET: 'HMAC key (at least 32 bytes) that signs intercept tokens (HS256 JWTs)',
  SWITCHYARD_INTERCEPT_TOKEN_SECRET_PREVIOUS:
    'the key before a rotation: tokens it signed are still accepted (never used to sign)',
  SWITCHYARD_GITHUB_WEBHOOK_SECRET:
    "the GitHub App's webhook secret: the controller serves POST /webhooks/github when it is set",
  SWITCHYARD_GITHUB_APP_PRIVATE_KEY:
    "the GitHub App's private key (PEM), with SWITCHYARD_GITHUB_APP_ID: the controller comments, sets statuses and deployments as the App",
  SWITCHYARD_GITHUB_TOKEN: 'a GitHub token, instead of an App, for the same outbound calls',
} as const;

export type SecretName = keyof typeof SECRET_VARIABLES;

export function readSecret(env: NodeJS.ProcessEnv, name: SecretName): string | undefined {
  const file = env[`${name}_FILE`];
  if (file) return readFileSync(file, 'utf8').trim();
  return env[name] || undefined;
}
