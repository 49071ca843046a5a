/**
 * Acceptance 2 of the gateway: the conformance table, run against the live gateway over the
 * examples, gives the destinations the rendered VirtualServices give. Every upstream key of the
 * examples is its own real HTTP server, so the answer proves where the request went.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EXAMPLE_FILES, EXAMPLES } from './support/cli.js';
import { CONFORMANCE_TABLE, cookieProblem } from './support/conformance-table.js';
import { gatewayConfig, startTestGateway, type TestGateway } from './support/gateway.js';
import { send } from './support/http.js';
import { startUpstream, type TestUpstream } from './support/upstreams.js';

const KEYS = [
  'cart/v1',
  'cart/v2',
  'cart/v3',
  'search/v1',
  'search/v2',
  'payments/v1',
  'payments/v2',
  'catalog/v1',
  'catalog/v2',
  'recommendations/v1',
  'recommendations/v2',
  'api/v1',
  'api/v2',
  'checkout/v1',
  'checkout/v2',
  'checkout/pr-42-7f3a2c1',
  'checkout/pr-42-1b2c3d4',
  'checkout/pr-7-0a1b2c3',
];

describe('conformance: the live gateway agrees with the table', () => {
  let gw: TestGateway;
  const upstreams: TestUpstream[] = [];
  beforeAll(async () => {
    for (const key of KEYS) upstreams.push(await startUpstream(key));
    // The examples' own GatewayConfig is replaced by one pointing at these servers.
    const yaml = EXAMPLE_FILES.map(
      (f) => readFileSync(join(EXAMPLES, `${f}.yaml`), 'utf8').split(/^---\n# The gateway/m)[0],
    ).join('\n---\n');
    // Routing, not rate limits, is compared here: a clock one window (1 s) further on each request
    // keeps the examples' per-second limit from refusing a fast burst of the same row.
    let now = Date.UTC(2026, 0, 1);
    gw = await startTestGateway(
      `${yaml}\n${gatewayConfig(Object.fromEntries(upstreams.map((u) => [u.name, u.url])))}`,
      {
        clock: {
          now: () => {
            now += 1000;
            return now;
          },
        },
      },
    );
  });
  afterAll(async () => {
    await gw?.close();
    await Promise.all(upstreams.map((u) => u.close()));
  });

  it.each(CONFORMANCE_TABLE)('$name', async (row) => {
    const allowed = Object.keys(row.expect);
    // Weighted rows draw at random: every request must land on an allowed destination, and each
    // destination of 10 % or more must be seen; enough requests that missing one has a chance
    // under one in a million (a 10 % share needs 132).
    const smallest = Math.min(...allowed.map((k) => row.expect[k] ?? 0).filter((w) => w >= 10)) / 100;
    const n = allowed.length > 1 ? Math.ceil(Math.log(1e-6) / Math.log(1 - smallest)) : 1;
    const seen = new Set<string>();
    for (let i = 0; i < n; i++) {
      const r = await send(gw.base, {
        host: row.host,
        method: row.method ?? 'GET',
        headers: row.headers ?? {},
      });
      if (allowed.length === 0) {
        expect(r.status).toBe(404);
        expect(r.headers['x-switchyard-error']).toBe('SY_GW_NO_POLICY');
        continue;
      }
      expect(r.status).toBe(200);
      const upstream = r.headers['x-switchyard-upstream'] as string;
      expect(allowed).toContain(upstream);
      // The server that answered is the one the header names.
      expect(JSON.parse(r.body).upstream).toBe(upstream);
      expect(cookieProblem(row, upstream, r.headers['set-cookie'])).toBeUndefined();
      seen.add(upstream);
    }
    if (allowed.length > 1)
      expect([...seen].sort()).toEqual(allowed.filter((k) => (row.expect[k] ?? 0) >= 10).sort());
  });
});
