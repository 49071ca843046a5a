import { signInterceptToken } from '../../gateway/tokens.js';
import { parseDurationMs } from '../core/duration.js';
import { formatProblem, problem } from '../core/errors.js';
import { readSecret } from '../core/secrets.js';
import { type CliIO, EXIT_INVALID, EXIT_OK } from './io.js';

export async function tokenCommand(
  opts: { header: string; value: string; ttl: string },
  io: CliIO,
): Promise<number> {
  const secret = readSecret(process.env, 'SWITCHYARD_INTERCEPT_TOKEN_SECRET');
  const bad = (m: string) => {
    io.stderr(`${formatProblem(problem('SY_BAD_REQUEST', m))}\n`);
    return EXIT_INVALID;
  };
  if (!secret)
    return bad(
      'set SWITCHYARD_INTERCEPT_TOKEN_SECRET (or SWITCHYARD_INTERCEPT_TOKEN_SECRET_FILE) to the key the gateway verifies with',
    );
  if (Buffer.byteLength(secret) < 32)
    return bad('SWITCHYARD_INTERCEPT_TOKEN_SECRET must be at least 32 bytes');
  let ttlMs: number;
  try {
    ttlMs = parseDurationMs(opts.ttl);
  } catch {
    return bad(`--ttl: expected a duration such as 30m or 8h (got ${JSON.stringify(opts.ttl)})`);
  }
  io.stdout(
    `${await signInterceptToken(secret, opts.header.toLowerCase(), opts.value, Math.ceil(ttlMs / 1000))}\n`,
  );
  return EXIT_OK;
}
