/**
 * Intercept tokens (docs/architecture.md, rule 6): with `requireToken`, an intercept header, a
 * preview header or a preview URL counts only with a token that proves it. A token is a JWT signed
 * with the installation's key (core/tokens/keys.ts) holding
 * - `iss: switchyard`,
 * - `aud`: the one policy it was minted for (`shop/checkout`): a token for tenant B's policy never
 *   opens tenant A's preview,
 * - `iat` and `exp` (`switchyard token` mints at most MAX_TOKEN_LIFETIME_SECONDS),
 * - one claim named like the header it stands for, holding the value (`"x-switchyard-preview": "pr-42"`),
 * - the same pair in two claims of fixed names, `intercept_header: "x-switchyard-preview"` and
 *   `intercept_value: "pr-42"`: where routes cannot read claims, the verifier copies `aud` and these
 *   two into the fixed headers of TOKEN_CLAIM_HEADERS and the routes match those (Gateway API
 *   mode, docs/gateway-api.md "Intercept tokens"); fixed names keep the verifier's configuration
 *   free of anything a tenant writes.
 *
 * It travels in the `x-switchyard-token` header or the `switchyard-token` cookie (a browser gets the
 * cookie from the Node gateway by opening a preview URL with `?switchyard-token=<token>`).
 *
 * Both backends read it the same way: in Istio, a RequestAuthentication on the ingress gateway
 * (core/istio/request-authentication.ts) has Envoy verify it and the route matches
 * `@request.auth.claims.*`; the Node gateway verifies it here with the same rules as Envoy's
 * jwt_authn filter: signature by a key of the JWKS, `iss`, `exp` and `nbf` with 60 s of clock
 * skew. A token that fails is refused with 401 wherever it is sent; a valid one counts only on the
 * routes of the policy its `aud` names.
 */
import {
  decodeProtectedHeader,
  type JWTPayload,
  jwtVerify,
  type ProtectedHeaderParameters,
  SignJWT,
} from 'jose';
import type { SigningKey, TokenJwks } from './keys.js';

export const TOKEN_ISSUER = 'switchyard';
export const TOKEN_HEADER = 'x-switchyard-token';
export const TOKEN_COOKIE = 'switchyard-token';
export const TOKEN_QUERY = 'switchyard-token';
export const MAX_TOKEN_LIFETIME_SECONDS = 7 * 24 * 3600;
/** Envoy's jwt_authn default (`clock_skew_seconds`). */
export const TOKEN_CLOCK_SKEW_SECONDS = 60;
/** What the claim headers start with: no policy may match such a header itself. */
export const CLAIM_HEADER_PREFIX = 'x-switchyard-claim-';
/** Claim → the request header a verifier copies it into, for routes that match headers only. */
export const TOKEN_CLAIM_HEADERS = {
  aud: `${CLAIM_HEADER_PREFIX}aud`,
  intercept_header: `${CLAIM_HEADER_PREFIX}intercept-header`,
  intercept_value: `${CLAIM_HEADER_PREFIX}intercept-value`,
} as const;

export interface TokenClaim {
  /** The header the claim stands for (lower case). */
  header: string;
  value: string;
  /** The policy, `namespace/name` (tokenAudience). */
  audience: string;
}

export async function signInterceptToken(
  key: SigningKey,
  claim: TokenClaim,
  ttlSeconds: number,
  now = Date.now(),
): Promise<string> {
  const iat = Math.floor(now / 1000);
  return new SignJWT({
    [claim.header]: claim.value,
    intercept_header: claim.header,
    intercept_value: claim.value,
  })
    .setProtectedHeader({ alg: key.alg, kid: key.kid, typ: 'JWT' })
    .setIssuer(TOKEN_ISSUER)
    .setAudience(claim.audience)
    .setIssuedAt(iat)
    .setExpirationTime(iat + ttlSeconds)
    .sign(key.key);
}

const looksLikeJwt = (t: string): boolean => t.length < 8192 && t.split('.').length === 3;

/** The header of a JWT, or undefined when it is not one. */
function protectedHeader(token: string): ProtectedHeaderParameters | undefined {
  try {
    return decodeProtectedHeader(token);
  } catch {
    return undefined;
  }
}

export interface TokenVerifier {
  /** The verified payload, or undefined: forged, expired, not yet valid, or not a token. */
  verify(token: string, now?: number): Promise<JWTPayload | undefined>;
}

export function tokenVerifier(jwks: TokenJwks): TokenVerifier {
  return {
    async verify(token, now = Date.now()) {
      if (!looksLikeJwt(token)) return undefined;
      const header = protectedHeader(token);
      // As Envoy: a token naming a key is checked with that key only; one naming none, with each.
      const candidates = jwks.keys.filter(
        (k) => (header?.kid === undefined || k.kid === header.kid) && k.alg === header?.alg,
      );
      for (const jwk of candidates) {
        try {
          const { payload } = await jwtVerify(token, jwk, {
            algorithms: [jwk.alg],
            issuer: TOKEN_ISSUER,
            clockTolerance: TOKEN_CLOCK_SKEW_SECONDS,
            currentDate: new Date(now),
          });
          return payload;
        } catch {
          // Another key, tampered with, expired or from another issuer.
        }
      }
      return undefined;
    },
  };
}

/** Whether a verified token was minted for `audience` (a string `aud`, or a list holding it). */
export function tokenIsFor(payload: JWTPayload, audience: string): boolean {
  return Array.isArray(payload.aud) ? payload.aud.includes(audience) : payload.aud === audience;
}

/** The string claims of a verified payload, as route matches read them. */
export function stringClaims(payload: JWTPayload): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(payload)) if (typeof v === 'string') out[k] = v;
  return out;
}
