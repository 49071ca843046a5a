import { MAX_TOKEN_LIFETIME_SECONDS, signInterceptToken, tokenKeyProblem } from '../gateway/tokens.js';
import { tokenAudience } from '../src/compiler/names.js';
import { parseDurationMs } from '../src/core/duration.js';
import { formatProblem, problem } from '../src/core/errors.js';

import { type CliIO, EXIT_INVALID, EXIT_OK } from './io.js';
import type { Settings } from './settings.js';

/** Signs a token for one policy's intercept or preview (see gateway/tokens.ts for what it proves). */
export async function tokenCommand(
  opts: { header: string; value: string; ttl: string; policy: string; namespace: string },
  io: CliIO,
  settings: Settings,
): Promise<number> {
  const secret = settings.interceptTokenKeys().current;
  const bad = (m: string) => {
    io.stderr(`${formatProblem(problem('SY_BAD_REQUEST', m))}\n`);
    return EXIT_INVALID;
  };
  if (!secret)
    return bad(
      'set SWITCHYARD_INTERCEPT_TOKEN_SECRET (or SWITCHYARD_INTERCEPT_TOKEN_SECRET_FILE) to the key the gateway verifies with',
    );
  const weak = tokenKeyProblem(secret);
  if (weak) return bad(`SWITCHYARD_INTERCEPT_TOKEN_SECRET ${weak}`);
  let ttlMs: number;
  try {
    ttlMs = parseDurationMs(opts.ttl);
  } catch {
    return bad(`--ttl: expected a duration such as 30m or 8h (got ${JSON.stringify(opts.ttl)})`);
  }
  if (ttlMs <= 0 || ttlMs > MAX_TOKEN_LIFETIME_SECONDS * 1000)
    return bad(`--ttl: a token lives at most ${MAX_TOKEN_LIFETIME_SECONDS / 3600}h (got ${opts.ttl})`);
  const token = await signInterceptToken(
    secret,
    {
      header: opts.header.toLowerCase(),
      value: opts.value,
      audience: tokenAudience(opts.namespace, opts.policy),
    },
    Math.ceil(ttlMs / 1000),
  );
  io.stdout(`${token}\n`);
  return EXIT_OK;
}
