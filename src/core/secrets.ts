/**
 * Secrets come from the environment, never from flags (they would show in `ps`): `NAME`, or
 * `NAME_FILE` naming a mounted file (Kubernetes Secret volumes). The environment is handed in.
 */
import { readFileSync } from 'node:fs';

export const SECRET_VARIABLES = {
  SWITCHYARD_INTERCEPT_TOKEN_SECRET: 'HMAC key (at least 32 bytes) that signs intercept tokens (HS256 JWTs)',
  SWITCHYARD_GITHUB_WEBHOOK_SECRET:
    "the GitHub App's webhook secret: the controller serves POST /webhooks/github when it is set",
} as const;

export type SecretName = keyof typeof SECRET_VARIABLES;

export function readSecret(env: NodeJS.ProcessEnv, name: SecretName): string | undefined {
  const file = env[`${name}_FILE`];
  if (file) return readFileSync(file, 'utf8').trim();
  return env[name] || undefined;
}
