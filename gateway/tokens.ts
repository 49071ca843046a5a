/**
 * Intercept tokens (docs/architecture.md, rule 6): with `requireToken`, an intercept header, a
 * preview header or a preview URL counts only with a token that proves it. A token is an HS256 JWT
 * whose claim named like the header holds the value (`{"x-switchyard-preview": "pr-42"}`), and
 * which is narrow:
 * - `aud` is the one policy it was minted for (`shop/checkout`): a token for tenant B's policy
 *   never opens tenant A's preview;
 * - `exp` and `iat` are required and `exp - iat` is at most MAX_TOKEN_LIFETIME_SECONDS;
 * - it is signed by the current key or, during a rotation, the previous one; a key shorter than
 *   32 bytes or with fewer than 8 distinct characters is refused at start (`tokenKeyProblem`).
 * The token travels in the header named like the claim, or in the cookie `switchyard-token`, which
 * a browser gets once by opening a preview URL with `?switchyard-token=<token>` (the gateway
 * answers 303 to the same URL without it and sets the cookie for that host only).
 * Istio's equivalent is a RequestAuthentication reading the same JWT and a match on
 * `@request.auth.claims.<header>`.
 */
import { jwtVerify, SignJWT } from 'jose';
import type { PolicyPlan } from '../src/compiler/plan.js';

export const TOKEN_COOKIE = 'switchyard-token';
export const TOKEN_QUERY = 'switchyard-token';
export const MAX_TOKEN_LIFETIME_SECONDS = 7 * 24 * 3600;
const MIN_KEY_BYTES = 32;
const MIN_KEY_DISTINCT = 8;

/** Why a key must not be used, or undefined when it may. */
export function tokenKeyProblem(key: string): string | undefined {
  if (Buffer.byteLength(key) < MIN_KEY_BYTES)
    return `is ${Buffer.byteLength(key)} bytes; at least ${MIN_KEY_BYTES} random bytes are needed (e.g. openssl rand -base64 48)`;
  if (new Set(key).size < MIN_KEY_DISTINCT)
    return `has fewer than ${MIN_KEY_DISTINCT} distinct characters; use random bytes (e.g. openssl rand -base64 48)`;
  return undefined;
}

export interface TokenKeys {
  /** Signs and verifies. */
  current?: string;
  /** Verifies only: tokens signed before a rotation keep working until they expire. */
  previous?: string;
}

/** Header names a policy reads as token claims (empty: the policy asks for no token). */
export function claimHeaders(policy: PolicyPlan): Set<string> {
  const names = new Set<string>();
  for (const r of policy.routes)
    for (const m of r.matches) for (const k of Object.keys(m.claims ?? {})) names.add(k);
  return names;
}

/** The value of one cookie in a Cookie header, or undefined. */
export function cookieValue(header: string | undefined, name: string): string | undefined {
  for (const part of header?.split(';') ?? []) {
    const eq = part.indexOf('=');
    if (eq > 0 && part.slice(0, eq).trim() === name) return part.slice(eq + 1).trim();
  }
  return undefined;
}

export interface TokenVerifier {
  /** The verified payload of a token for `audience`, or undefined. */
  verify(token: string | undefined, audience: string): Promise<Record<string, unknown> | undefined>;
  /**
   * Verified claims for `names`, from the header named like each claim or the token cookie;
   * {} when none verifies.
   */
  claims(
    names: ReadonlySet<string>,
    audience: string,
    header: (name: string) => string | undefined,
  ): Promise<Record<string, string>>;
}

const looksLikeJwt = (t: string | undefined): t is string =>
  !!t && t.length < 8192 && t.split('.').length === 3;

export function tokenVerifier(keys: TokenKeys): TokenVerifier {
  const encoded = [keys.current, keys.previous]
    .filter((k): k is string => !!k)
    .map((k) => new TextEncoder().encode(k));
  const verify: TokenVerifier['verify'] = async (token, audience) => {
    if (!looksLikeJwt(token)) return undefined;
    for (const key of encoded) {
      try {
        const { payload } = await jwtVerify(token, key, {
          algorithms: ['HS256'],
          audience,
          requiredClaims: ['exp', 'iat'],
          maxTokenAge: MAX_TOKEN_LIFETIME_SECONDS,
          clockTolerance: 30,
        });
        if ((payload.exp as number) - (payload.iat as number) > MAX_TOKEN_LIFETIME_SECONDS) return undefined;
        return payload;
      } catch {
        // Another key, tampered with, expired, too long-lived or for another policy.
      }
    }
    return undefined;
  };
  return {
    verify,
    async claims(names, audience, header) {
      const out: Record<string, string> = {};
      if (encoded.length === 0 || names.size === 0) return out;
      const cookie = cookieValue(header('cookie'), TOKEN_COOKIE);
      const fromCookie = looksLikeJwt(cookie) ? await verify(cookie, audience) : undefined;
      for (const name of names) {
        const token = header(name);
        const payload = looksLikeJwt(token) ? await verify(token, audience) : fromCookie;
        const value = payload?.[name];
        if (typeof value === 'string') out[name] = value;
      }
      return out;
    },
  };
}

export async function signInterceptToken(
  secret: string,
  claim: { header: string; value: string; audience: string },
  ttlSeconds: number,
  now = Date.now(),
): Promise<string> {
  const iat = Math.floor(now / 1000);
  return new SignJWT({ [claim.header]: claim.value })
    .setProtectedHeader({ alg: 'HS256', typ: 'JWT' })
    .setAudience(claim.audience)
    .setIssuedAt(iat)
    .setExpirationTime(iat + ttlSeconds)
    .sign(new TextEncoder().encode(secret));
}
