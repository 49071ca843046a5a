/**
 * The weight-aware sticky canary (DESIGN.md, rule 3). A client's cookie records which side it was
 * put on and at which weight: `<run>.c<w>` (canary at weight w) or `<run>.s<w>` (stable at w).
 * With today's weight W:
 *   c<w>, w ≤ W  → canary, cookie unchanged          s<w>, w ≥ W → stable, cookie unchanged
 *   c<w>, w > W  → canary with probability W/w        s<w>, w < W → canary with probability (W−w)/(100−w)
 *   no cookie (or another run's) → canary with probability W/100
 * Every route that draws sets the cookie again at W on both sides, so a client draws at most once
 * per weight change, only ever moves in the direction of the change, and the canary's share of
 * clients stays W. Each class is a cookie-regex route, which Istio expresses natively; draws that
 * round to the same integer weight share one route, so a policy has at most about 2×W+2 routes.
 */
import type { Destination, Route, WeightedDestination } from './plan.js';
import { cookieClassRegex } from './matches.js';

export interface StickyInput {
  weight: number;
  run: string;
  cookie: string;
  maxAgeSeconds: number;
  stable: Destination;
  canary: Destination;
}

export function stickyCookieValue(run: string, side: 'c' | 's', weight: number): string {
  return `${run}.${side}${weight}`;
}

function setCookie(s: StickyInput, side: 'c' | 's'): string {
  return `${s.cookie}=${stickyCookieValue(s.run, side, s.weight)}; Max-Age=${s.maxAgeSeconds}; Path=/; HttpOnly; SameSite=Lax`;
}

/** The split every drawing route uses: canary at `canaryWeight`, both sides re-stamped at W. */
export function drawDestinations(s: StickyInput, canaryWeight: number): WeightedDestination[] {
  return [
    { ...s.stable, weight: 100 - canaryWeight, setCookie: setCookie(s, 's') },
    { ...s.canary, weight: canaryWeight, setCookie: setCookie(s, 'c') },
  ];
}

function range(from: number, to: number): number[] {
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
  const stays = (side: 'c' | 's', ws: number[], dest: Destination) => {
    if (ws.length === 0) return;
    routes.push({
      name: side === 'c' ? 'sticky-canary' : 'sticky-stable',
      kind: 'sticky',
      matches: [{ headers: { cookie: cookieClassRegex(s.cookie, s.run, side, ws) } }],
      destinations: [{ ...dest, weight: 100 }],
    });
  };
  stays('c', range(1, W), s.canary);
  stays('s', range(W, 99), s.stable);
  for (const [p, ws] of groupByDraw(range(W + 1, 100), (w) => (100 * W) / w)) {
    routes.push({
      name: `sticky-down-${p}`,
      kind: 'sticky',
      matches: [{ headers: { cookie: cookieClassRegex(s.cookie, s.run, 'c', ws) } }],
      destinations: drawDestinations(s, p),
    });
  }
  for (const [p, ws] of groupByDraw(range(0, W - 1), (w) => (100 * (W - w)) / (100 - w))) {
    routes.push({
      name: `sticky-up-${p}`,
      kind: 'sticky',
      matches: [{ headers: { cookie: cookieClassRegex(s.cookie, s.run, 's', ws) } }],
      destinations: drawDestinations(s, p),
    });
  }
  return routes;
}
