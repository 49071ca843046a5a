/**
 * Intercept tokens as the traffic path reads them: the claims of the tokens a request carries,
 * verified for the policy that serves its host (only when that policy asks for any), and the
 * browser's way in (`?switchyard-token=` traded for a host-only cookie).
 */
import type { IncomingMessage } from 'node:http';
import type { RequestView } from '../src/compiler/evaluate.js';
import { tokenAudience } from '../src/compiler/names.js';
import type { PolicyPlan } from '../src/compiler/plan.js';
import { GatewayError } from './errors.js';
import type { PlanHolder } from './plan-holder.js';
import { requestView } from './router.js';
import type { Snapshot } from './snapshot.js';
import { claimHeaders, TOKEN_COOKIE, TOKEN_QUERY, type TokenKeys, tokenVerifier } from './tokens.js';

export interface TokenExchange {
  location: string;
  cookie: string;
}

export interface RequestTokens {
  /** The request as the router sees it, with the verified claims it carries for its policy. */
  viewOf(req: IncomingMessage, snapshot: Snapshot): Promise<RequestView>;
  /**
   * `?switchyard-token=<token>` on a host whose policy asks for tokens: a valid token is answered
   * with 303 to the same URL without it and a cookie for this host only, an invalid one with 401.
   * Undefined: not such a request.
   */
  exchange(req: IncomingMessage): Promise<TokenExchange | GatewayError | undefined>;
}

export function requestTokens(holder: PlanHolder, keys: TokenKeys): RequestTokens {
  const tokens = tokenVerifier(keys);
  const claimNames = new WeakMap<PolicyPlan, Set<string>>();
  const namesOf = (policy: PolicyPlan) => {
    let names = claimNames.get(policy);
    if (!names) {
      names = claimHeaders(policy);
      claimNames.set(policy, names);
    }
    return names;
  };
  // Whether any policy of a snapshot reads tokens: without one (the common case) a request pays no
  // second host lookup for them.
  const tokenSnapshots = new WeakMap<Snapshot, boolean>();
  const usesTokens = (snapshot: Snapshot) => {
    let uses = tokenSnapshots.get(snapshot);
    if (uses === undefined) {
      uses = snapshot.plan.policies.some((p) => namesOf(p).size > 0);
      tokenSnapshots.set(snapshot, uses);
    }
    return uses;
  };
  const tokenQuery = `${TOKEN_QUERY}=`;

  return {
    async viewOf(req, snapshot) {
      const view = requestView(req.method ?? 'GET', req.headers);
      if (!usesTokens(snapshot)) return view;
      const policy = snapshot.index.policyFor(view.authority);
      if (!policy || namesOf(policy).size === 0) return view;
      const audience = tokenAudience(policy.namespace, policy.name);
      return requestView(
        view.method,
        req.headers,
        await tokens.claims(namesOf(policy), audience, view.header),
      );
    },

    async exchange(req) {
      const snapshot = holder.current;
      if (!snapshot || !usesTokens(snapshot) || !req.url?.includes(tokenQuery)) return undefined;
      const policy = snapshot.index.policyFor(req.headers.host ?? '');
      if (!policy || namesOf(policy).size === 0) return undefined;
      const url = new URL(req.url, 'http://gateway');
      const token = url.searchParams.get(TOKEN_QUERY) ?? undefined;
      const payload = await tokens.verify(token, tokenAudience(policy.namespace, policy.name));
      if (!payload)
        return new GatewayError(
          'SY_GW_TOKEN_INVALID',
          `the ${TOKEN_QUERY} is not a valid intercept token for ${policy.namespace}/${policy.name} (forged, expired or minted for another policy): ask for a new one (switchyard token)`,
        );
      url.searchParams.delete(TOKEN_QUERY);
      const maxAge = Math.max(0, (payload.exp as number) - Math.floor(Date.now() / 1000));
      return {
        location: `${url.pathname}${url.search}`,
        cookie: `${TOKEN_COOKIE}=${token}; Path=/; Max-Age=${maxAge}; HttpOnly; Secure; SameSite=Lax`,
      };
    },
  };
}
