/**
 * Intercept tokens as the traffic path reads them (core/tokens/intercept-token.ts): a token in the
 * `x-switchyard-token` header or the `switchyard-token` cookie is verified as Envoy's jwt_authn
 * filter does at an Istio ingress gateway, so both answer alike: no token, no claims; a token that
 * fails (forged, expired, another issuer) is refused with 401 whatever the host; a valid one gives
 * its claims to the routes of the policy it was minted for (`aud`) and to no other. And the
 * browser's way in: `?switchyard-token=` on a preview URL traded for a host-only cookie.
 */
import type { RequestView } from '../core/compiler/evaluate.js';
import { tokenAudience } from '../core/compiler/names.js';
import type { PolicyPlan } from '../core/compiler/plan.js';
import {
  stringClaims,
  TOKEN_COOKIE,
  TOKEN_HEADER,
  TOKEN_QUERY,
  tokenIsFor,
  tokenVerifier,
} from '../core/tokens/intercept-token.js';
import type { TokenJwks } from '../core/tokens/keys.js';
import { GatewayError } from './errors.js';
import type { PlanHolder } from './plan-holder.js';
import { requestView } from './router.js';
import type { Snapshot } from './snapshot.js';
import type { TrafficRequest } from './traffic-server.js';

export interface TokenExchange {
  location: string;
  cookie: string;
}

export interface RequestTokens {
  /**
   * The request as the router sees it, with the verified claims of its token when the token was
   * minted for the policy serving its host; a GatewayError (401) when it carries a token that fails.
   */
  viewOf(
    req: TrafficRequest,
    snapshot: Snapshot,
  ): RequestView | GatewayError | Promise<RequestView | GatewayError>;
  /**
   * `?switchyard-token=<token>` on a host whose policy asks for tokens: a valid token for that
   * policy is answered with 303 to the same URL without it and a cookie for this host only, any
   * other with 401. Undefined: not such a request.
   */
  exchange(req: TrafficRequest): Promise<TokenExchange | GatewayError | undefined> | undefined;
}

/** The value of one cookie in a Cookie header, or undefined. */
export function cookieValue(header: string | undefined, name: string): string | undefined {
  for (const part of header?.split(';') ?? []) {
    const eq = part.indexOf('=');
    if (eq > 0 && part.slice(0, eq).trim() === name) return part.slice(eq + 1).trim();
  }
  return undefined;
}

/** Whether any route of the policy reads token claims. */
function readsTokens(policy: PolicyPlan): boolean {
  return policy.routes.some((r) => r.matches.some((m) => m.claims !== undefined));
}

const invalid = (where: string) =>
  new GatewayError(
    'SY_GW_TOKEN_INVALID',
    `the ${where} is not a valid intercept token (forged, expired, or signed by a key this gateway does not trust): ask for a new one (switchyard token)`,
    { 'www-authenticate': 'Bearer realm="switchyard", error="invalid_token"' },
  );

/** Without keys (`jwks` undefined) tokens are not read at all, as in a mesh with no RequestAuthentication. */
export function requestTokens(holder: PlanHolder, jwks: TokenJwks | undefined): RequestTokens {
  const tokens = jwks && jwks.keys.length > 0 ? tokenVerifier(jwks) : undefined;
  const tokenQuery = `${TOKEN_QUERY}=`;

  return {
    // Synchronous unless there is a token to verify: most requests carry none.
    viewOf(req, snapshot) {
      const view = requestView(req.method ?? 'GET', req.headers);
      if (!tokens) return view;
      const fromHeader = view.header(TOKEN_HEADER);
      const fromCookie = cookieValue(view.header('cookie'), TOKEN_COOKIE);
      if (fromHeader === undefined && fromCookie === undefined) return view;
      return verifiedView(req, snapshot, view, fromHeader, fromCookie);
    },

    exchange(req) {
      if (!tokens || !req.url?.includes(tokenQuery)) return undefined;
      return exchangeToken(req);
    },
  };

  /**
   * Every token the request carries must verify, as Envoy's jwt_authn requires of each token it
   * extracts: a valid header token does not excuse a forged cookie. The header's claims count.
   */
  async function verifiedView(
    req: TrafficRequest,
    snapshot: Snapshot,
    view: RequestView,
    fromHeader: string | undefined,
    fromCookie: string | undefined,
  ): Promise<RequestView | GatewayError> {
    const [headerPayload, cookiePayload] = await Promise.all([
      fromHeader === undefined ? undefined : tokens?.verify(fromHeader),
      fromCookie === undefined ? undefined : tokens?.verify(fromCookie),
    ]);
    if (fromHeader !== undefined && !headerPayload) return invalid(`${TOKEN_HEADER} header`);
    if (fromCookie !== undefined && !cookiePayload) return invalid(`${TOKEN_COOKIE} cookie`);
    const payload = headerPayload ?? cookiePayload;
    if (!payload) return view;
    const policy = snapshot.index.policyFor(view.authority);
    if (!policy || !tokenIsFor(payload, tokenAudience(policy.namespace, policy.name))) return view;
    return requestView(view.method, req.headers, stringClaims(payload));
  }

  async function exchangeToken(req: TrafficRequest): Promise<TokenExchange | GatewayError | undefined> {
    const snapshot = holder.current;
    if (!tokens || !snapshot || !req.url) return undefined;
    const policy = snapshot.index.policyFor(req.headers.host ?? '');
    if (!policy || !readsTokens(policy)) return undefined;
    // Read as a path, always: resolved against a base, `//evil.example/x` would be a host.
    const url = new URL(`http://gateway${req.url}`);
    // `switchyard-token=` inside another parameter's value is not an exchange.
    if (!url.searchParams.has(TOKEN_QUERY)) return undefined;
    const token = url.searchParams.get(TOKEN_QUERY) ?? '';
    const payload = await tokens.verify(token);
    if (!payload || !tokenIsFor(payload, tokenAudience(policy.namespace, policy.name)))
      return new GatewayError(
        'SY_GW_TOKEN_INVALID',
        `the ${TOKEN_QUERY} is not a valid intercept token for ${policy.namespace}/${policy.name} (forged, expired or minted for another policy): ask for a new one (switchyard token)`,
      );
    url.searchParams.delete(TOKEN_QUERY);
    const lifetime =
      typeof payload.exp === 'number'
        ? `; Max-Age=${Math.max(0, payload.exp - Math.floor(Date.now() / 1000))}`
        : '';
    return {
      // One leading slash: `//evil.example/` as a Location is another site (an open redirect).
      location: `/${url.pathname.replace(/^\/+/, '')}${url.search}`,
      cookie: `${TOKEN_COOKIE}=${token}; Path=/${lifetime}; HttpOnly; Secure; SameSite=Lax`,
    };
  }
}
