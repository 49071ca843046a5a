/**
 * A route's request conditions as the Gateway API writes them (HTTPRouteMatch, GRPCRouteMatch):
 * an optional method and headers matched Exact or by RegularExpression (RE2, whole value, as
 * Envoy reads it). How specific a match is decides where it is tried (docs/gateway-api.md,
 * "Order"): this module ranks matches and joins two into the one that holds when both do.
 */
import { escapeRegex, fullMatcher } from '../common/regex.js';
import type { StringMatch } from '../compiler/plan.js';

export type HeaderCondition = { type: 'Exact' | 'RegularExpression'; value: string };

export interface ApiMatch {
  /** One method, as HTTPRouteMatch.method (an enum); absent: any. */
  method?: string;
  /** Lowercase header name → its condition; every one must hold. */
  headers: ReadonlyMap<string, HeaderCondition>;
}

/** A plan's StringMatch as a header condition (a prefix is a regex: the API has no prefix type). */
export function headerCondition(m: StringMatch): HeaderCondition {
  if ('exact' in m) return { type: 'Exact', value: m.exact };
  if ('prefix' in m) return { type: 'RegularExpression', value: `${escapeRegex(m.prefix)}.*` };
  return { type: 'RegularExpression', value: m.regex };
}

/**
 * The methods a plan's method match allows, one HTTPRouteMatch each: `GET` or `GET|HEAD` (as
 * core/compiler/matches.ts writes them); undefined for any other pattern.
 */
export function methodsOf(m: StringMatch): string[] | undefined {
  if ('exact' in m) return [m.exact];
  if ('regex' in m && /^[A-Z]+(\|[A-Z]+)*$/.test(m.regex)) return m.regex.split('|');
  return undefined;
}

/**
 * Where the Gateway API tries a match among those of one hostname, most specific first: after
 * the path (always `/` here, the same for all), a method, then more headers (GEP-1426 for
 * GRPCRoute: headers only, so `methodRanks` is false there). Compared as a tuple.
 */
export function rankOf(m: ApiMatch, methodRanks: boolean): [number, number] {
  return [methodRanks && m.method ? 1 : 0, m.headers.size];
}

export function compareRank(a: [number, number], b: [number, number]): number {
  return a[0] - b[0] || a[1] - b[1];
}

/** One condition that holds exactly when both hold; 'never' when none can, 'unknown' when two patterns differ. */
function joinConditions(a: HeaderCondition, b: HeaderCondition): HeaderCondition | 'never' | 'unknown' {
  if (a.type === b.type && a.value === b.value) return a;
  if (a.type === 'Exact' && b.type === 'Exact') return 'never';
  if (a.type === 'Exact') return fullMatcher(b.value)(a.value) ? a : 'never';
  if (b.type === 'Exact') return fullMatcher(a.value)(b.value) ? b : 'never';
  // Two different patterns on one header: one match can hold only one condition per header.
  return 'unknown';
}

/**
 * The match that holds exactly when `a` and `b` both do: undefined when no request can match
 * both, 'unknown' when that cannot be written as one match (two patterns on one header).
 */
export function joinMatches(a: ApiMatch, b: ApiMatch): ApiMatch | undefined | 'unknown' {
  if (a.method && b.method && a.method !== b.method) return undefined;
  const headers = new Map(a.headers);
  for (const [name, condition] of b.headers) {
    const mine = headers.get(name);
    if (!mine) {
      headers.set(name, condition);
      continue;
    }
    const joined = joinConditions(mine, condition);
    if (joined === 'never') return undefined;
    if (joined === 'unknown') return 'unknown';
    headers.set(name, joined);
  }
  const method = a.method ?? b.method;
  return { ...(method ? { method } : {}), headers };
}

/** A canonical key: two matches with the same key hold for the same requests. */
export function matchKey(m: ApiMatch): string {
  const headers = [...m.headers].sort(([x], [y]) => (x < y ? -1 : x > y ? 1 : 0));
  return JSON.stringify([m.method ?? '', headers.map(([n, c]) => [n, c.type, c.value])]);
}
