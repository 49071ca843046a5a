/**
 * Keeping Switchyard's order where the Gateway API sorts. A plan's routes are tried in the order
 * written, the first that matches wins; the Gateway API tries the matches of a hostname most
 * specific first (matches.ts `rankOf`), and only ties in the order written. So an intercept with
 * two header conditions written after one with one would take the requests both match.
 *
 * The fix adds, to the earlier rule, the match that holds when both do: it is at least as
 * specific as the later one, ties with it at worst, and ties go to the earlier rule. Repeated
 * until nothing is added, every request then gets the action of the first plan route that
 * matches it (docs/gateway-api.md, "Order", has the argument). Where that join cannot be written
 * (two different patterns on one header), the pair is returned as a conflict to refuse.
 */
import { type ApiMatch, compareRank, joinMatches, matchKey, rankOf } from './matches.js';

export interface OrderedRule {
  name: string;
  /** Any one must hold; empty: every request. */
  matches: ApiMatch[];
  /** Two rules with the same action send a request to the same place: their order does not matter. */
  action: string;
}

export interface OrderConflict {
  earlier: string;
  later: string;
}

/** The match that holds for every request (an HTTPRouteMatch of path `/` alone). */
const ANY: ApiMatch = { headers: new Map() };

/** Joins added before giving up: one route holds at most 128 matches (ROUTE_LIMITS). */
const MAX_JOINS = 128;

export function keepPlanOrder(
  rules: readonly OrderedRule[],
  methodRanks: boolean,
): { rules: OrderedRule[]; conflicts: OrderConflict[]; tooManyJoins: boolean } {
  const out = rules.map((r) => ({ ...r, matches: r.matches.length > 0 ? [...r.matches] : [ANY] }));
  const keys = out.map((r) => new Set(r.matches.map(matchKey)));
  const conflicts = new Map<string, OrderConflict>();
  let joins = 0;
  for (let changed = true; changed; ) {
    changed = false;
    for (let i = 0; i < out.length; i++)
      for (let j = i + 1; j < out.length; j++) {
        const [earlier, later] = [out[i] as OrderedRule, out[j] as OrderedRule];
        if (earlier.action === later.action) continue;
        for (const joined of joinsNeeded(earlier, later, methodRanks)) {
          if (joined === 'unknown') {
            conflicts.set(`${i}/${j}`, { earlier: earlier.name, later: later.name });
            continue;
          }
          if (joins >= MAX_JOINS)
            return { rules: out, conflicts: [...conflicts.values()], tooManyJoins: true };
          const key = matchKey(joined);
          if (keys[i]?.has(key)) continue;
          keys[i]?.add(key);
          earlier.matches.push(joined);
          joins++;
          changed = true;
        }
      }
  }
  // A rule whose one match is ANY is written without matches, as it came.
  const written = out.map((r, i) =>
    (rules[i] as OrderedRule).matches.length === 0 && r.matches.length === 1 ? { ...r, matches: [] } : r,
  );
  return { rules: written, conflicts: [...conflicts.values()], tooManyJoins: false };
}

/** The joins `earlier` needs so that no match of `later` that outranks one of its own takes its requests. */
function joinsNeeded(
  earlier: OrderedRule,
  later: OrderedRule,
  methodRanks: boolean,
): (ApiMatch | 'unknown')[] {
  const needed: (ApiMatch | 'unknown')[] = [];
  for (const a of [...earlier.matches])
    for (const b of later.matches) {
      if (compareRank(rankOf(b, methodRanks), rankOf(a, methodRanks)) <= 0) continue;
      const joined = joinMatches(a, b);
      if (joined !== undefined) needed.push(joined);
    }
  return needed;
}
