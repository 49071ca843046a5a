/**
 * docs/architecture.md rule 3, simulated on the compiled plan: 20,000 cookie-holding clients through a series
 * of weight changes. The canary's share of clients stays within 1 point of the weight, clients
 * move only in the direction of a change, at most once per change, and never flip back and forth.
 */
import { describe, expect, it } from 'vitest';
import { compile } from '../core/compiler/compile.js';
import { indexPlan, matchRoute, pickDestination } from '../core/compiler/evaluate.js';
import { requestFrom } from '../core/compiler/explain.js';
import type { TrafficPolicy } from '../core/resources/schema.js';

function mulberry32(seed: number): () => number {
  let a = seed;
  return () => {
    a = (a + 0x6d2b79f5) | 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function policy(weight: number, canary = 'v2'): TrafficPolicy {
  if (run) return progressivePolicy(run.steps, weight, canary);
  return {
    apiVersion: 'switchyard.dev/v1alpha1',
    kind: 'TrafficPolicy',
    metadata: { name: 'catalog', namespace: 'shop' },
    spec: {
      service: 'catalog',
      port: 8080,
      stable: 'v1',
      canary: { version: canary, weight, sticky: { cookie: 'sy', maxAge: '1h' } },
    },
  };
}

/** When set, rounds compile a progressive run at the given weight (its steps so far used). */
let run: { steps: number[] } | undefined;

function progressivePolicy(steps: number[], weight: number, canary: string): TrafficPolicy {
  const at = steps.indexOf(weight);
  const used = weight === 0 ? steps : steps.slice(0, at + 1);
  const now = new Date().toISOString();
  return {
    apiVersion: 'switchyard.dev/v1alpha1',
    kind: 'TrafficPolicy',
    metadata: { name: 'catalog', namespace: 'shop' },
    spec: {
      service: 'catalog',
      port: 8080,
      stable: 'v1',
      canary: {
        version: canary,
        steps: steps.map((w) => ({ weight: w, pause: '1m' })),
        sticky: { cookie: 'sy', maxAge: '1h' },
      },
    },
    status: {
      canary: {
        version: canary,
        phase: weight === 0 ? 'RolledBack' : 'Progressing',
        step: weight === 0 ? steps.length - 1 : at,
        weight,
        startedAt: now,
        stepStartedAt: now,
        failures: 0,
        weightsUsed: used,
        message: '',
      },
    },
  } as TrafficPolicy;
}

interface Client {
  cookie?: string;
  side?: 'stable' | 'canary';
}

function round(
  clients: Client[],
  weight: number,
  random: () => number,
  canary = 'v2',
): { moves: number; up: number; down: number } {
  const plan = compile({ policies: [policy(weight, canary)], previews: [] }).plan;
  const p = indexPlan(plan).policyFor('catalog.shop.svc.cluster.local');
  if (!p) throw new Error('no policy');
  let up = 0;
  let down = 0;
  for (const c of clients) {
    const route = matchRoute(
      p,
      requestFrom({ host: 'catalog', headers: c.cookie ? { cookie: `other=1; ${c.cookie}` } : {} }),
    );
    if (!route) throw new Error('no route');
    const d = pickDestination(route, random() * 100);
    const side = d.role === 'canary' ? 'canary' : 'stable';
    if (c.side === 'stable' && side === 'canary') up++;
    if (c.side === 'canary' && side === 'stable') down++;
    c.side = side;
    if (d.setCookie) c.cookie = d.setCookie.split(';')[0];
  }
  return { moves: up + down, up, down };
}

describe('sticky canary (rule 3)', () => {
  it('keeps the share at the weight, moves clients once and only in the direction of the change', () => {
    const random = mulberry32(42);
    const clients: Client[] = Array.from({ length: 20_000 }, () => ({}));
    let previous = 0;
    for (const weight of [10, 30, 50, 45, 20, 80, 100, 60, 0, 40]) {
      const first = round(clients, weight, random);
      const share = (100 * clients.filter((c) => c.side === 'canary').length) / clients.length;
      expect(Math.abs(share - weight), `share ${share} at weight ${weight}`).toBeLessThanOrEqual(1);
      if (weight > previous)
        expect(first.down, `no one leaves the canary when the weight rises to ${weight}`).toBe(0);
      if (weight < previous)
        expect(first.up, `no one joins the canary when the weight falls to ${weight}`).toBe(0);
      // The same weight again: every client stays where it is (at most one move per change).
      const again = round(clients, weight, random);
      expect(again.moves, `moves on a second round at ${weight}`).toBe(0);
      previous = weight;
    }
  });

  it("a progressive run: cookie classes only for the run's weights, the share exact at every step, new clients included", () => {
    const steps = [5, 10, 25, 50, 75];
    run = { steps };
    try {
      const random = mulberry32(11);
      const clients: Client[] = Array.from({ length: 12_000 }, () => ({}));
      const seen = new Map<Client, string[]>();
      for (const weight of steps) {
        // New clients arrive at every step.
        clients.push(...Array.from({ length: 2000 }, () => ({})));
        const first = round(clients, weight, random);
        expect(first.down, `no one leaves the canary at ${weight}`).toBe(0);
        expect(round(clients, weight, random).moves).toBe(0);
        const share = (100 * clients.filter((c) => c.side === 'canary').length) / clients.length;
        expect(Math.abs(share - weight), `share ${share} at step ${weight}`).toBeLessThanOrEqual(1);
        for (const c of clients) seen.set(c, [...(seen.get(c) ?? []), c.side as string]);
        // The routes: two at most per weight the run used, where a canary weighted by hand needs
        // classes for every weight.
        const sticky = (p: TrafficPolicy) =>
          compile({ policies: [p], previews: [] }).plan.policies[0]?.routes.filter((r) => r.kind === 'sticky')
            .length ?? 0;
        const used = steps.indexOf(weight) + 1;
        expect(sticky(policy(weight))).toBeLessThanOrEqual(2 * used);
        run = undefined;
        expect(sticky(policy(weight))).toBeGreaterThan(20);
        run = { steps };
      }
      // No client went back and forth: once on the canary, it stayed.
      const flipped = [...seen.values()].filter((sides) => {
        const joined = sides.indexOf('canary');
        return joined !== -1 && sides.slice(joined).includes('stable');
      });
      expect(flipped).toEqual([]);
      // Rolled back: every client on the stable version.
      round(clients, 0, random);
      expect(clients.every((c) => c.side === 'stable')).toBe(true);
    } finally {
      run = undefined;
    }
  });

  it('a client on the canary stays there while the weight rises', () => {
    const random = mulberry32(7);
    const clients: Client[] = Array.from({ length: 2000 }, () => ({}));
    round(clients, 5, random);
    const early = clients.filter((c) => c.side === 'canary');
    expect(early.length).toBeGreaterThan(50);
    for (const w of [10, 25, 50, 75, 99]) {
      round(clients, w, random);
      expect(early.every((c) => c.side === 'canary')).toBe(true);
    }
  });

  it('a new canary version starts a new run: old cookies draw afresh', () => {
    const random = mulberry32(9);
    const clients: Client[] = Array.from({ length: 10_000 }, () => ({}));
    round(clients, 100, random);
    expect(clients.every((c) => c.side === 'canary')).toBe(true);
    round(clients, 10, random, 'v3');
    const share = (100 * clients.filter((c) => c.side === 'canary').length) / clients.length;
    expect(Math.abs(share - 10)).toBeLessThanOrEqual(1);
  });
});
