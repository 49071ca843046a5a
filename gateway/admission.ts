/**
 * What every request and every upgrade goes through before it is proxied: one snapshot → the
 * route's destination → its rate limits. The answer is where to go and the headers the response
 * carries, or the error to answer with.
 */

import type { RequestView } from '../core/compiler/evaluate.js';
import { UPSTREAM_HEADER } from '../core/compiler/plan.js';
import type { ClientAddress } from './client-address.js';
import { GatewayError } from './errors.js';
import type { PlanHolder } from './plan-holder.js';
import { addRateLimitHeaders, type LimitVerdict, type RateLimiter } from './rate-limit.js';
import type { RequestTokens } from './request-tokens.js';
import { type Decision, decide } from './router.js';
import type { Snapshot } from './snapshot.js';
import type { TrafficRequest } from './traffic-server.js';

export interface Admitted {
  decision: Decision;
  /** x-switchyard-upstream, ratelimit-* and the sticky cookie, for the response. */
  responseHeaders: Record<string, string | string[]>;
}

/** Synchronous unless a token must be verified or a shared count (Redis, the --workers primary) asked. */
export type Admit = (
  req: TrafficRequest,
  client: ClientAddress,
) => Admitted | GatewayError | Promise<Admitted | GatewayError>;

export function admission(parts: {
  holder: PlanHolder;
  tokens: RequestTokens;
  limiter: RateLimiter;
  random: () => number;
}): Admit {
  const { holder, tokens, limiter, random } = parts;

  const limited = (view: RequestView, decision: Decision, client: ClientAddress) => {
    const counted = limiter.check(decision.policy, decision.destination.role, client.ip, view);
    return Array.isArray(counted) ? verdict(decision, counted) : counted.then((v) => verdict(decision, v));
  };

  const routed = (view: RequestView | GatewayError, snapshot: Snapshot, client: ClientAddress) => {
    if (view instanceof GatewayError) return view;
    const decision = decide(snapshot, view, random);
    if (decision instanceof GatewayError) return decision;
    return limited(view, decision, client);
  };

  return (req, client) => {
    const snapshot = holder.current;
    if (!snapshot) return new GatewayError('SY_GW_NOT_READY', 'no configuration loaded yet');
    const view = tokens.viewOf(req, snapshot);
    return view instanceof Promise
      ? view.then((v) => routed(v, snapshot, client))
      : routed(view, snapshot, client);
  };
}

function verdict(decision: Decision, verdicts: LimitVerdict[]): Admitted | GatewayError {
  const { policy, destination } = decision;
  const responseHeaders: Record<string, string | string[]> = { [UPSTREAM_HEADER]: destination.upstream };
  if (verdicts.length > 0 && addRateLimitHeaders(verdicts, responseHeaders)) {
    const refused = verdicts.filter((v) => !v.allowed).map((v) => v.limit.name);
    return new GatewayError(
      'SY_GW_RATE_LIMITED',
      `rate limit ${refused.join(', ')} of ${policy.namespace}/${policy.name} exceeded; retry in ${responseHeaders['retry-after']}s`,
      responseHeaders as Record<string, string>,
    );
  }
  if (destination.setCookie) responseHeaders['set-cookie'] = destination.setCookie;
  return { decision, responseHeaders };
}
