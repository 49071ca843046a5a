/**
 * The weight-aware sticky canary (docs/architecture.md, rule 3). A client's cookie records which side it was
 * put on and at which weight: `<run>.c<w>` (canary at weight w) or `<run>.s<w>` (stable at w).
 * With today's weight W:
 *   c<W> → canary, no cookie sent                     s<W> → stable, no cookie sent
 *   c<w>, w < W → canary, re-stamped c<W>             s<w>, w > W → stable, re-stamped s<W>
 *   c<w>, w > W → canary with probability W/w         s<w>, w < W → canary with probability (W−w)/(100−w)
 *   no cookie (or another run's) → canary with probability W/100
 * Every route that draws stamps the cookie at W on both sides, so a client draws at most once per
 * weight change, only ever moves in the direction of the change, and the canary's share of
 * clients stays W. Each class is a cookie-regex route, which Istio expresses natively; draws that
 * round to the same integer weight share one route.
 *
 * Change from the first design ("not re-sent while a client stays"): a client that stays is re-stamped
 * once after a weight change. Without that, a client kept at c10 through a rise to 50 is not part
 * of the draw when the weight falls back to 45, and the canary keeps 48 % of clients instead of
 * 45 % (measured in test/sticky.test.ts). The cookie is still sent at most once per weight change.
 */

import { cookieClassRegex } from './matches.js';
import type { Destination, Route, WeightedDestination } from './plan.js';

export interface StickyInput {
  weight: number;
  run: string;
  cookie: string;
  maxAgeSeconds: number;
  stable: Destination;
  canary: Destination;
  /**
   * The weights a client's cookie can carry: every weight a progressive run has set (its
   * `status.canary.weightsUsed`), or undefined for a canary weighted by hand (any of 0–100).
   * A run's cookies name the run, so only its own weights need a class: a run of three steps
   * renders a handful of sticky routes instead of two hundred.
   */
  weightsUsed?: readonly number[];
}

export function stickyCookieValue(run: string, side: 'c' | 's', weight: number): string {
  return `${run}.${side}${weight}`;
}

function setCookie(s: StickyInput, side: 'c' | 's'): string {
  return `${s.cookie}=${stickyCookieValue(s.run, side, s.weight)}; Max-Age=${s.maxAgeSeconds}; Path=/; HttpOnly; SameSite=Lax`;
}

/** The split every drawing route uses: canary at `canaryWeight`, both sides re-stamped at W. */
export function drawDestinations(s: StickyInput, canaryWeight: number): WeightedDestination[] {
  const stamps = stampsOf(s);
  return [
    { ...s.stable, weight: 100 - canaryWeight, setCookie: stamps.s },
    { ...s.canary, weight: canaryWeight, setCookie: stamps.c },
  ];
}

const stampCache = new WeakMap<StickyInput, { c: string; s: string }>();

function stampsOf(s: StickyInput): { c: string; s: string } {
  let stamps = stampCache.get(s);
  if (!stamps) {
    stamps = { c: setCookie(s, 'c'), s: setCookie(s, 's') };
    stampCache.set(s, stamps);
  }
  return stamps;
}

/** The cookie weights from `from` to `to` (inclusive) a client can carry. */
function range(s: StickyInput, from: number, to: number): number[] {
  if (s.weightsUsed)
    return [...new Set(s.weightsUsed)].filter((w) => w >= from && w <= to).sort((a, b) => a - b);
  const out: number[] = [];
  for (let i = from; i <= to; i++) out.push(i);
  return out;
}

/** Groups weights by the integer canary weight their draw rounds to, in ascending order. */
function groupByDraw(ws: number[], draw: (w: number) => number): Map<number, number[]> {
  const groups = new Map<number, number[]>();
  for (const w of ws) {
    const p = Math.round(draw(w));
    const list = groups.get(p) ?? [];
    list.push(w);
    groups.set(p, list);
  }
  return new Map([...groups.entries()].sort((a, b) => a[0] - b[0]));
}

/** The sticky routes, in order; the weighted no-cookie route is the policy's split route. */
export function stickyRoutes(s: StickyInput): Route[] {
  const W = s.weight;
  const routes: Route[] = [];
  const route = (name: string, side: 'c' | 's', ws: number[], destinations: WeightedDestination[]) => {
    if (ws.length === 0) return;
    routes.push({
      name,
      kind: 'sticky',
      matches: [{ headers: { cookie: cookieClassRegex(s.cookie, s.run, side, ws) } }],
      destinations,
    });
  };
  // Stamped at today's weight: stay, and send no cookie.
  if (W > 0) route('sticky-canary', 'c', [W], [{ ...s.canary, weight: 100 }]);
  if (W < 100) route('sticky-stable', 's', [W], [{ ...s.stable, weight: 100 }]);
  // Stamped at another weight but on the side that grew: stay, and re-stamp once at W.
  route('sticky-canary-restamp', 'c', range(s, 1, W - 1), [
    { ...s.canary, weight: 100, setCookie: stampsOf(s).c },
  ]);
  route('sticky-stable-restamp', 's', range(s, W + 1, 99), [
    { ...s.stable, weight: 100, setCookie: stampsOf(s).s },
  ]);
  // On the side that shrank: draw once.
  for (const [p, ws] of groupByDraw(range(s, W + 1, 100), (w) => (100 * W) / w)) {
    route(`sticky-down-${p}`, 'c', ws, drawDestinations(s, p));
  }
  for (const [p, ws] of groupByDraw(range(s, 0, W - 1), (w) => (100 * (W - w)) / (100 - w))) {
    route(`sticky-up-${p}`, 's', ws, drawDestinations(s, p));
  }
  return routes;
}
