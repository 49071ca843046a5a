/**
 * Intercept tokens from the command line: `token` signs one (private key from the environment),
 * `token-key` makes a key, `token-jwks` publishes the public half for gateways and the controller
 * (`--token-jwks`). What a token proves: core/tokens/intercept-token.ts.
 */
import { readFileSync } from 'node:fs';
import { parseDurationMs } from '../core/common/duration.js';
import { formatProblem, isProblem, type Problem, problem } from '../core/common/errors.js';
import { tokenAudience } from '../core/compiler/names.js';
import type { TokenAuthenticationOptions } from '../core/istio/request-authentication.js';
import { MAX_TOKEN_LIFETIME_SECONDS, signInterceptToken } from '../core/tokens/intercept-token.js';
import {
  generateTokenKey,
  parseJwks,
  publicJwks,
  signingKey,
  type TokenAlgorithm,
  type TokenJwks,
} from '../core/tokens/keys.js';
import { type CliIO, EXIT_INVALID, EXIT_OK } from './io.js';
import type { Settings } from './settings.js';

function report(io: CliIO, p: Problem): number {
  io.stderr(`${formatProblem(p)}\n`);
  return EXIT_INVALID;
}

export async function tokenCommand(
  opts: { header: string; value: string; ttl: string; policy: string; namespace: string },
  io: CliIO,
  settings: Settings,
): Promise<number> {
  const bad = (m: string) => report(io, problem('SY_BAD_REQUEST', m));
  const retired = settings.retiredTokenSecret();
  if (retired) return bad(retired);
  const pem = settings.interceptTokenKey();
  if (!pem)
    return bad(
      'set SWITCHYARD_INTERCEPT_TOKEN_KEY (or SWITCHYARD_INTERCEPT_TOKEN_KEY_FILE) to the private key whose public JWKS the gateway verifies with (make one with `switchyard token-key`)',
    );
  const key = await signingKey(pem, 'SWITCHYARD_INTERCEPT_TOKEN_KEY');
  if (isProblem(key)) return report(io, key);
  let ttlMs: number;
  try {
    ttlMs = parseDurationMs(opts.ttl);
  } catch {
    return bad(`--ttl: expected a duration such as 30m or 8h (got ${JSON.stringify(opts.ttl)})`);
  }
  if (ttlMs <= 0 || ttlMs > MAX_TOKEN_LIFETIME_SECONDS * 1000)
    return bad(`--ttl: a token lives at most ${MAX_TOKEN_LIFETIME_SECONDS / 3600}h (got ${opts.ttl})`);
  const token = await signInterceptToken(
    key,
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

/** `token-key`: a new private key on stdout (store it as a Secret; never give it to a gateway). */
export function tokenKeyCommand(opts: { algorithm: TokenAlgorithm }, io: CliIO): number {
  io.stdout(generateTokenKey(opts.algorithm));
  return EXIT_OK;
}

/** `token-jwks FILE...`: the public keys of these PEM files (private or public) as one JWKS. */
export async function tokenJwksCommand(files: string[], io: CliIO): Promise<number> {
  const pems: { name: string; pem: string }[] = [];
  for (const name of files) {
    try {
      pems.push({ name, pem: readFileSync(name, 'utf8') });
    } catch (e) {
      return report(io, problem('SY_FILE_READ', `${name}: ${(e as Error).message}`));
    }
  }
  const jwks = await publicJwks(pems);
  if (isProblem(jwks)) return report(io, jwks);
  io.stdout(`${JSON.stringify(jwks, null, 2)}\n`);
  return EXIT_OK;
}

/**
 * `--token-jwks FILE` of the gateway, the controller and render: the keys tokens are verified
 * with, undefined without the flag, or the exit code after saying what is wrong.
 */
export function readTokenJwks(
  file: string | undefined,
  io: CliIO,
  settings: Settings,
): TokenJwks | undefined | number {
  const retired = settings.retiredTokenSecret();
  if (retired) return report(io, problem('SY_BAD_REQUEST', retired));
  if (file === undefined) return undefined;
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    return report(io, problem('SY_FILE_READ', `--token-jwks ${file}: ${(e as Error).message}`));
  }
  const jwks = parseJwks(text, `--token-jwks ${file}`);
  return isProblem(jwks) ? report(io, jwks) : jwks;
}

export interface TokenAuthenticationFlags {
  tokenJwks?: string;
  istioRootNamespace: string;
  tokenGatewaySelector: string;
}

/** `--token-gateway-selector app=istio-ingressgateway,istio=ingressgateway` as labels. */
function selectorOf(value: string): Record<string, string> | undefined {
  const out: Record<string, string> = {};
  for (const pair of value.split(',')) {
    const [k, v, ...rest] = pair.split('=').map((s) => s.trim());
    if (!k || v === undefined || rest.length > 0) return undefined;
    out[k] = v;
  }
  return Object.keys(out).length > 0 ? out : undefined;
}

/**
 * The RequestAuthentication the mesh needs for `requireToken` (render and the controller), from
 * the flags: undefined without `--token-jwks`, or the exit code after saying what is wrong.
 */
export function tokenAuthenticationOf(
  flags: TokenAuthenticationFlags,
  io: CliIO,
  settings: Settings,
): TokenAuthenticationOptions | undefined | number {
  const jwks = readTokenJwks(flags.tokenJwks, io, settings);
  if (jwks === undefined || typeof jwks === 'number') return jwks;
  const selector = selectorOf(flags.tokenGatewaySelector);
  if (!selector)
    return report(
      io,
      problem(
        'SY_BAD_REQUEST',
        `--token-gateway-selector ${flags.tokenGatewaySelector}: expected labels of the ingress gateway pods, as key=value separated by "," (e.g. istio=ingressgateway)`,
      ),
    );
  return { jwks, namespace: flags.istioRootNamespace, selector };
}
