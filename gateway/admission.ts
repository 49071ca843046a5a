/**
 * What every request and every upgrade goes through before it is proxied: one snapshot → the
 * route's destination → its rate limits. The answer is where to go and the headers the response
 * carries, or the error to answer with.
 */
import { UPSTREAM_HEADER } from '../src/compiler/plan.js';
import type { ClientAddress } from './client-address.js';
import { GatewayError } from './errors.js';
import type { PlanHolder } from './plan-holder.js';
import { type RateLimiter, rateLimitHeaders } from './rate-limit.js';
import type { RequestTokens } from './request-tokens.js';
import { type Decision, decide } from './router.js';
import type { TrafficRequest } from './traffic-server.js';

export interface Admitted {
  decision: Decision;
  /** x-switchyard-upstream, ratelimit-* and the sticky cookie, for the response. */
  responseHeaders: Record<string, string | string[]>;
}

export type Admit = (req: TrafficRequest, client: ClientAddress) => Promise<Admitted | GatewayError>;

export function admission(parts: {
  holder: PlanHolder;
  tokens: RequestTokens;
  limiter: RateLimiter;
  random: () => number;
}): Admit {
  const { holder, tokens, limiter, random } = parts;
  return async (req, client) => {
    const snapshot = holder.current;
    if (!snapshot) return new GatewayError('SY_GW_NOT_READY', 'no configuration loaded yet');
    const view = await tokens.viewOf(req, snapshot);
    if (view instanceof GatewayError) return view;
    const decision = decide(snapshot, view, random);
    if (decision instanceof GatewayError) return decision;
    const { policy, destination } = decision;
    const counted = limiter.check(policy, destination.role, { clientIp: client.ip, header: view.header });
    const verdicts = Array.isArray(counted) ? counted : await counted;
    const limitHeaders = rateLimitHeaders(verdicts);
    const responseHeaders: Record<string, string | string[]> = {
      [UPSTREAM_HEADER]: destination.upstream,
      ...limitHeaders,
    };
    const refused = verdicts.filter((v) => !v.allowed).map((v) => v.limit.name);
    if (refused.length > 0) {
      return new GatewayError(
        'SY_GW_RATE_LIMITED',
        `rate limit ${refused.join(', ')} of ${policy.namespace}/${policy.name} exceeded; retry in ${limitHeaders['retry-after']}s`,
        responseHeaders as Record<string, string>,
      );
    }
    if (destination.setCookie) responseHeaders['set-cookie'] = destination.setCookie;
    return { decision, responseHeaders };
  };
}
