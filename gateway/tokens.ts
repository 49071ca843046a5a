/**
 * Intercept tokens (DESIGN.md rule 6): with `requireToken`, an intercept header counts only when its
 * value is an HS256 JWT, signed with the gateway's secret and not expired, whose claim named like
 * the header holds the value (`{"x-switchyard-preview": "pr-42", "exp": …}`). So a preview cannot be
 * reached by guessing a header. Istio's equivalent is a RequestAuthentication reading the JWT from
 * that header and a match on `@request.auth.claims.<header>`.
 */
import { jwtVerify, SignJWT } from 'jose';
import type { RoutePlan } from '../src/compiler/plan.js';

export interface TokenVerifier {
  /** Verified claims for the headers that carry tokens; {} when none verifies. */
  claims(header: (name: string) => string | undefined): Promise<Record<string, string>>;
}

/** Header names the plan reads as token claims. */
export function claimHeaders(plan: RoutePlan): Set<string> {
  const names = new Set<string>();
  for (const p of plan.policies)
    for (const r of p.routes)
      for (const m of r.matches) for (const k of Object.keys(m.claims ?? {})) names.add(k);
  return names;
}

export function tokenVerifier(secret: string | undefined, names: () => ReadonlySet<string>): TokenVerifier {
  const key = secret ? new TextEncoder().encode(secret) : undefined;
  return {
    async claims(header) {
      const out: Record<string, string> = {};
      if (!key) return out;
      for (const name of names()) {
        const token = header(name);
        if (!token || token.split('.').length !== 3) continue;
        try {
          const { payload } = await jwtVerify(token, key, { algorithms: ['HS256'] });
          const value = payload[name];
          if (typeof value === 'string') out[name] = value;
        } catch {
          // Not signed by us, tampered with or expired: the header counts for nothing.
        }
      }
      return out;
    },
  };
}

export async function signInterceptToken(
  secret: string,
  header: string,
  value: string,
  ttlSeconds: number,
): Promise<string> {
  return new SignJWT({ [header]: value })
    .setProtectedHeader({ alg: 'HS256', typ: 'JWT' })
    .setIssuedAt()
    .setExpirationTime(Math.floor(Date.now() / 1000) + ttlSeconds)
    .sign(new TextEncoder().encode(secret));
}
