/**
 * `switchyard gateway --workers 2` as a process (issue "Gateway data plane", acceptance 2): a
 * limit of N requests per window is admitted exactly N times across both workers (counted in the
 * primary, no Redis); a config edit is served by both within a second; /metrics aggregates both;
 * a worker killed with SIGKILL is replaced while traffic goes on, with no failed request beyond
 * the one in flight on it; SIGTERM finishes every request in flight and the process exits 0.
 * Every request opens its own connection, so the primary's round-robin spreads them over both
 * workers.
 */
import { execFileSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { tempFiles } from './support/cli.js';
import { eventually, gatewayConfig } from './support/gateway.js';
import { type Started, startProcess } from './support/process.js';
import { startUpstream, type TestUpstream, unusedPort } from './support/upstreams.js';

const LIMIT = 10;

function policy(stable: string): string {
  return `apiVersion: switchyard.dev/v1alpha1
kind: TrafficPolicy
metadata: {name: shop, namespace: demo}
spec:
  service: shop
  port: 80
  hosts: [shop.test]
  stable: ${stable}
  rateLimits:
    - {name: per-key, key: {header: x-api-key}, limit: ${LIMIT}, window: 1m}
`;
}

describe('gateway --workers 2', () => {
  let ups: TestUpstream[];
  let gw: Started;
  let file: string;
  let config: (stable: string) => string;
  let port: number;
  let admin: string;

  /** One request on a connection of its own. */
  const call = async (headers: Record<string, string> = {}) => {
    const res = await request(`http://127.0.0.1:${port}/`, {
      headers: { host: 'shop.test', connection: 'close', ...headers },
      // A connection handed to a worker as it is killed is lost with it: it fails, not hangs.
      headersTimeout: 5000,
      bodyTimeout: 5000,
    });
    const upstream = res.headers['x-switchyard-upstream'];
    return { status: res.statusCode, body: await res.body.text(), upstream };
  };
  const workerPids = () =>
    execFileSync('pgrep', ['-P', String(gw.child.pid)], { encoding: 'utf8' })
      .trim()
      .split('\n')
      .filter(Boolean);

  beforeAll(async () => {
    ups = [
      await startUpstream('shop/v1'),
      await startUpstream('shop/v2'),
      // Slow: answers after 800 ms (requests in flight at SIGTERM).
      await startUpstream('shop/slow', (_req, res) => {
        setTimeout(() => res.end('shop/slow'), 800);
      }),
    ];
    const upstreams = gatewayConfig({
      'shop/v1': ups[0]?.url as string,
      'shop/v2': ups[1]?.url as string,
      'shop/slow': ups[2]?.url as string,
    });
    config = (stable) => `${policy(stable)}${upstreams}`;
    file = join(tempFiles({ 'gateway.yaml': config('v1') }), 'gateway.yaml');
    port = await unusedPort();
    const adminPort = await unusedPort();
    admin = `http://127.0.0.1:${adminPort}`;
    gw = startProcess([
      'gateway',
      '-c',
      file,
      '--workers',
      '2',
      '--port',
      String(port),
      '--admin-port',
      String(adminPort),
      '--host',
      '127.0.0.1',
    ]);
    await eventually(
      async () => (await fetch(`${admin}/readyz`).catch(() => undefined))?.status === 200,
      20_000,
    );
  }, 30_000);

  afterAll(async () => {
    if (gw?.child.exitCode === null) gw.child.kill('SIGKILL');
    await Promise.all(ups.map((u) => u.close()));
  });

  it('runs two workers under one primary, serving one admin port', async () => {
    expect(workerPids()).toHaveLength(2);
    const plan = (await (await fetch(`${admin}/plan`)).json()) as { plan: { policies: { name: string }[] } };
    expect(plan.plan.policies.map((p) => p.name)).toEqual(['shop']);
  });

  it('admits a limit of N per window exactly N times across both workers', async () => {
    const answers = await Promise.all(Array.from({ length: 3 * LIMIT }, () => call({ 'x-api-key': 'k1' })));
    expect(answers.filter((a) => a.status === 200)).toHaveLength(LIMIT);
    expect(answers.filter((a) => a.status === 429)).toHaveLength(2 * LIMIT);
    // Another key has its own count.
    expect((await call({ 'x-api-key': 'k2' })).status).toBe(200);
  });

  it('aggregates both workers’ metrics on the one admin port', async () => {
    const before = await total();
    await Promise.all(Array.from({ length: 20 }, () => call()));
    expect((await total()) - before).toBe(20);
    async function total(): Promise<number> {
      const text = await (await fetch(`${admin}/metrics`)).text();
      return text
        .split('\n')
        .filter((l) => l.startsWith('switchyard_gateway_requests_total{'))
        .reduce((n, l) => n + Number(l.split(' ').at(-1)), 0);
    }
  });

  it('serves a config edit from both workers within a second', async () => {
    writeFileSync(file, config('v2'));
    const edited = Date.now();
    let last: string[] = [];
    await eventually(async () => {
      const answers = await Promise.all(Array.from({ length: 10 }, () => call()));
      last = answers.map((a) => `${a.status} ${a.upstream}`);
      return answers.every((a) => a.upstream === 'shop/v2');
    }, 5000).catch((e) => {
      throw new Error(`${e.message}: ${last.join(', ')}\n${gw.output()}`);
    });
    expect(Date.now() - edited).toBeLessThan(1000);
  });

  it('replaces a killed worker while traffic goes on, failing only what was in flight on it', async () => {
    const results: number[] = [];
    let running = true;
    const load = (async () => {
      while (running) {
        results.push(
          await call().then(
            (a) => a.status,
            () => 0,
          ),
        );
      }
    })();
    await new Promise((r) => setTimeout(r, 300));
    const [victim] = workerPids();
    process.kill(Number(victim), 'SIGKILL');
    await eventually(() => {
      const pids = workerPids();
      return pids.length === 2 && !pids.includes(victim as string);
    }, 10_000);
    await eventually(async () => (await fetch(`${admin}/readyz`)).status === 200, 10_000);
    await new Promise((r) => setTimeout(r, 300));
    running = false;
    await load;
    expect(results.length).toBeGreaterThan(20);
    // One request at a time: at most the one in flight on the killed worker failed.
    expect(results.filter((s) => s !== 200).length).toBeLessThanOrEqual(1);
    expect(gw.output()).toMatch(/gateway worker died; starting another/);
  });

  it('SIGTERM: every request in flight on either worker is finished, then it exits 0', async () => {
    writeFileSync(file, config('slow'));
    await eventually(async () => (await call()).body === 'shop/slow', 5000);
    const inFlight = Array.from({ length: 6 }, () => call());
    await new Promise((r) => setTimeout(r, 200));
    gw.child.kill('SIGTERM');
    const answers = await Promise.all(inFlight);
    expect(answers.map((a) => a.body)).toEqual(Array(6).fill('shop/slow'));
    expect(await gw.exited).toBe(0);
  });
});
