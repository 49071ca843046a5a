/**
 * Secrets come from the environment, never from flags (they would show in `ps`): `NAME`, or
 * `NAME_FILE` naming a mounted file (Kubernetes Secret volumes). The environment is handed in.
 */
import { readFileSync } from 'node:fs';

export const SECRET_VARIABLES = {
  SWITCHYARD_INTERCEPT_TOKEN_KEY:
    'the private key (PEM, EC P-256 or Ed25519) `switchyard token` signs intercept tokens with; gateways and the controller hold only its public key (--token-jwks)',
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
