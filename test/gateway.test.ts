/**
 * The gateway against real upstream servers in this process: intercepts, the canary split, sticky
 * cookies, mirroring, errors with reasons, hot reload keeping the last good plan, and retries.
 */

import { createServer } from 'node:http';
import { Readable } from 'node:stream';
import { propagation, ROOT_CONTEXT } from '@opentelemetry/api';
import { W3CBaggagePropagator } from '@opentelemetry/core';
import { request } from 'undici';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { eventually, gatewayConfig, startTestGateway, type TestGateway } from './support/gateway.js';
import { agent, header, rawExchange, send } from './support/http.js';
import { startUpstream, type TestUpstream, unusedPort } from './support/upstreams.js';

const policy = (spec: string) => `apiVersion: switchyard.dev/v1alpha1
kind: TrafficPolicy
metadata: {name: web, namespace: test}
spec:
  service: web
  port: 80
  hosts: [web.test]
  stable: v1
${spec}
`;

const preview = (pr: number, commit: string, created: string) => `---
apiVersion: switchyard.dev/v1alpha1
kind: Preview
metadata: {name: web-pr-${pr}-${commit.slice(0, 7)}, namespace: test, creationTimestamp: "${created}"}
spec: {policy: web, repository: acme/web, pullRequest: ${pr}, commit: ${commit}}
`;

const C1 = `${'a'.repeat(7)}${'1'.repeat(33)}`;
const C2 = `${'b'.repeat(7)}${'2'.repeat(33)}`;

describe('gateway routing', () => {
  let v1: TestUpstream;
  let v2: TestUpstream;
  let v3: TestUpstream;
  let p1: TestUpstream;
  let p2: TestUpstream;
  let gw: TestGateway;
  let upstreamMap: Record<string, string>;

  beforeAll(async () => {
    [v1, v2, v3, p1, p2] = (await Promise.all(
      ['web/v1', 'web/v2', 'web/v3', 'web/pr-5-aaaaaaa', 'web/pr-5-bbbbbbb'].map((n) => startUpstream(n)),
    )) as [TestUpstream, TestUpstream, TestUpstream, TestUpstream, TestUpstream];
    upstreamMap = Object.fromEntries([v1, v2, v3, p1, p2].map((u) => [u.name, u.url]));
    gw = await startTestGateway(
      policy(`  intercepts:
    - {name: exact, match: {header: x-user, exact: alice}, to: {version: v3}}
    - {name: prefix, match: {header: x-user, prefix: qa-}, to: {version: v2}}
    - {name: regex, match: {header: x-build, regex: '[0-9]+\\.[0-9]+-rc[0-9]'}, to: {version: v2}}
    - {name: tenant, match: {baggage: tenant, exact: acme}, to: {version: v3}}
  previews: {repository: acme/web}`) +
        preview(5, C1, '2026-01-01T00:00:00Z') +
        preview(5, C2, '2026-01-02T00:00:00Z') +
        gatewayConfig(upstreamMap),
    );
  });
  afterAll(async () => {
    await gw.close();
    await Promise.all([v1, v2, v3, p1, p2].map((u) => u.close()));
  });

  async function dest(headers: Record<string, string>): Promise<string | undefined> {
    const r = await send(gw.base, { host: 'web.test', headers });
    expect(r.status).toBe(200);
    return header(r, 'x-switchyard-upstream');
  }

  it('routes each kind of intercept, and only matching requests', async () => {
    expect(await dest({})).toBe('web/v1');
    expect(await dest({ 'x-user': 'alice' })).toBe('web/v3');
    expect(await dest({ 'x-user': 'alice2' })).toBe('web/v1');
    expect(await dest({ 'x-user': 'qa-bob' })).toBe('web/v2');
    expect(await dest({ 'x-user': 'bob-qa-' })).toBe('web/v1');
    expect(await dest({ 'x-build': '4.2-rc1' })).toBe('web/v2');
    expect(await dest({ 'x-build': '4.2-rc1-hotfix' })).toBe('web/v1');
    expect(await dest({ baggage: 'tenant=acme' })).toBe('web/v3');
    expect(await dest({ baggage: 'tenant=acme-2' })).toBe('web/v1');
    expect(await dest({ 'x-switchyard-preview': 'pr-5' })).toBe('web/pr-5-bbbbbbb');
    expect(await dest({ 'x-switchyard-preview': 'pr-5-aaaaaaa' })).toBe('web/pr-5-aaaaaaa');
    expect(await dest({ 'x-switchyard-preview': 'pr-6' })).toBe('web/v1');
  });

  it('matches a baggage member set by an OpenTelemetry client', async () => {
    const baggage = propagation.createBaggage({
      'user.id': { value: '7' },
      'switchyard-preview': { value: 'pr-5-aaaaaaa', metadata: undefined },
      tenant: { value: 'other' },
    });
    const carrier: Record<string, string> = {};
    new W3CBaggagePropagator().inject(propagation.setBaggage(ROOT_CONTEXT, baggage), carrier, {
      set: (c, k, v) => {
        c[k] = v;
      },
    });
    expect(carrier.baggage).toContain('switchyard-preview=pr-5-aaaaaaa');
    expect(await dest(carrier)).toBe('web/pr-5-aaaaaaa');
  });

  it('passes method, path, query and body through, drops hop-by-hop headers and adds x-forwarded-*', async () => {
    const raw = await rawExchange(
      gw.base,
      'POST /cart/items?id=7 HTTP/1.1\r\nHost: web.test:80\r\nContent-Type: application/json\r\nContent-Length: 9\r\n' +
        'Connection: close, x-secret\r\nX-Secret: hop\r\nKeep-Alive: timeout=5\r\n\r\n{"qty":2}',
    );
    expect(raw).toMatch(/^HTTP\/1\.1 200/);
    expect(raw).toMatch(/x-switchyard-upstream: web\/v1/i);
    const got = v1.received.at(-1);
    expect(got?.method).toBe('POST');
    expect(got?.url).toBe('/cart/items?id=7');
    expect(got?.body).toBe('{"qty":2}');
    expect(got?.headers.host).toBe('web.test:80');
    expect(got?.headers['x-forwarded-for']).toBe('127.0.0.1');
    expect(got?.headers['x-forwarded-host']).toBe('web.test:80');
    expect(got?.headers['x-secret']).toBeUndefined(); // named in Connection: hop-by-hop
    expect(got?.headers['keep-alive']).toBeUndefined();
  });

  it('routes methods beyond the common eight (WebDAV, PURGE) by the split, as Envoy does', async () => {
    for (const method of ['PROPFIND', 'PURGE', 'REPORT']) {
      const r = await send(gw.base, { host: 'web.test', method, path: '/files/' });
      expect(r.status).toBe(200);
      expect(header(r, 'x-switchyard-upstream')).toBe('web/v1');
      expect(v1.received.at(-1)).toMatchObject({ method, url: '/files/' });
    }
  });

  it('answers 404 with a reason for a host no policy serves, and reaches no upstream', async () => {
    const before = v1.received.length;
    const r = await send(gw.base, { host: 'other.test' });
    expect(r.status).toBe(404);
    expect(header(r, 'x-switchyard-error')).toBe('SY_GW_NO_POLICY');
    expect(JSON.parse(r.body).error.message).toMatch(/no TrafficPolicy serves host "other.test"/);
    expect(v1.received.length).toBe(before);
  });

  it('answers 400 to a malformed request without crashing', async () => {
    const reply = await rawExchange(gw.base, 'GARBAGE / HTTP/9.9\r\n\r\n');
    expect(reply).toMatch(/^HTTP\/1\.1 400/);
    expect((await send(gw.base, { host: 'web.test' })).status).toBe(200);
  });

  it('keeps the last good plan when the file turns invalid, and takes the next good one', async () => {
    const good = gw.holder.current?.generation;
    gw.write(policy('  canary: {version: v2, weight: 140}') + gatewayConfig(upstreamMap));
    const err = await eventually(async () => {
      const plan = JSON.parse((await send(gw.admin, { path: '/plan' })).body);
      return plan.lastError ?? undefined;
    });
    expect(err.problems[0].message).toMatch(/must be at most 100/);
    expect(err.problems[0].path).toBe('spec.canary.weight');
    expect(gw.holder.current?.generation).toBe(good);
    expect(await dest({ 'x-user': 'alice' })).toBe('web/v3'); // the old plan still serves
    const metrics = (await send(gw.admin, { path: '/metrics' })).body;
    expect(metrics).toMatch(/switchyard_gateway_config_reloads_total\{result="error"\} [1-9]/);
    // Latency by destination too, so a canary analysis can compare versions.
    expect(metrics).toMatch(
      /switchyard_gateway_request_duration_seconds_count\{policy="test\/web",upstream="web\/v3"\} [1-9]/,
    );

    gw.write(policy('  canary: {version: v2, weight: 100}') + gatewayConfig(upstreamMap));
    await eventually(async () => (await dest({})) === 'web/v2');
    expect(JSON.parse((await send(gw.admin, { path: '/plan' })).body).lastError).toBeNull();
  });
});

describe('gateway canary split', () => {
  it('keeps the observed split over 20,000 requests within 1 point of the weight', async () => {
    const [v1, v2] = await Promise.all([startUpstream('web/v1'), startUpstream('web/v2')]);
    const gw = await startTestGateway(
      policy('  canary: {version: v2, weight: 30}') + gatewayConfig({ 'web/v1': v1.url, 'web/v2': v2.url }),
    );
    try {
      let canary = 0;
      const total = 20_000;
      const batch = 200;
      for (let i = 0; i < total; i += batch) {
        const replies = await Promise.all(
          Array.from({ length: batch }, () => send(gw.base, { host: 'web.test' })),
        );
        canary += replies.filter((r) => header(r, 'x-switchyard-upstream') === 'web/v2').length;
      }
      const share = (100 * canary) / total;
      expect(Math.abs(share - 30)).toBeLessThanOrEqual(1);
      expect(v2.received.length).toBe(canary);
      expect(v1.received.length).toBe(total - canary);
    } finally {
      await gw.close();
      await Promise.all([v1.close(), v2.close()]);
    }
  }, 120_000);
});

describe('gateway sticky canary', () => {
  it('sets the cookie on assignment and on moves only; clients move with the weight, once', async () => {
    const [v1, v2] = await Promise.all([startUpstream('web/v1'), startUpstream('web/v2')]);
    const yaml = (w: number) =>
      policy(`  canary: {version: v2, weight: ${w}, sticky: {cookie: sy, maxAge: 1h}}`) +
      gatewayConfig({ 'web/v1': v1.url, 'web/v2': v2.url });
    const gw = await startTestGateway(yaml(10));
    const clients = Array.from({ length: 4000 }, () => ({
      cookie: undefined as string | undefined,
      side: '',
    }));
    const round = async () => {
      let up = 0;
      let down = 0;
      let cookiesSent = 0;
      for (let i = 0; i < clients.length; i += 200) {
        await Promise.all(
          clients.slice(i, i + 200).map(async (c) => {
            const r = await send(gw.base, {
              host: 'web.test',
              headers: c.cookie ? { cookie: c.cookie } : {},
            });
            const side = header(r, 'x-switchyard-upstream') === 'web/v2' ? 'canary' : 'stable';
            const set = r.headers['set-cookie'];
            if (set) {
              cookiesSent++;
              c.cookie = String(Array.isArray(set) ? set[0] : set).split(';')[0];
            }
            if (c.side === 'stable' && side === 'canary') up++;
            if (c.side === 'canary' && side === 'stable') down++;
            c.side = side;
          }),
        );
      }
      return {
        up,
        down,
        cookiesSent,
        share: (100 * clients.filter((c) => c.side === 'canary').length) / clients.length,
      };
    };
    try {
      const first = await round();
      expect(first.cookiesSent).toBe(clients.length); // everyone assigned, with a cookie
      expect(Math.abs(first.share - 10)).toBeLessThan(2);
      const steady = await round();
      expect(steady).toMatchObject({ up: 0, down: 0, cookiesSent: 0 }); // stays, and no cookie is re-sent
      for (const [w, dir] of [
        [40, 'up'],
        [25, 'down'],
        [60, 'up'],
      ] as const) {
        const onCanary = clients.filter((c) => c.side === 'canary');
        gw.write(yaml(w));
        await eventually(() =>
          gw.holder.current?.plan.policies[0]?.routes.some(
            (r) => r.name === 'split' && r.destinations[1]?.weight === w,
          ),
        );
        const moved = await round();
        expect(dir === 'up' ? moved.down : moved.up, `clients moved against the change to ${w}`).toBe(0);
        expect(Math.abs(moved.share - w), `share at ${w}`).toBeLessThan(2.5);
        expect(await round()).toMatchObject({ up: 0, down: 0, cookiesSent: 0 }); // at most one move per change
        if (dir === 'up') expect(onCanary.every((c) => c.side === 'canary')).toBe(true); // canary clients stay as it grows
      }
    } finally {
      await gw.close();
      await Promise.all([v1.close(), v2.close()]);
    }
  }, 120_000);
});

describe('gateway mirror', () => {
  it('copies with the marker, keeps the Host, and never waits on a hanging shadow', async () => {
    const v1 = await startUpstream('web/v1');
    const hung: import('node:http').ServerResponse[] = [];
    let hang = true;
    const shadow = await startUpstream('web/v2', (_req, res) => {
      if (hang)
        hung.push(res); // never answers
      else res.end('shadow');
    });
    const gw = await startTestGateway(
      policy('  mirror: {to: {version: v2}, percent: 100, methods: [GET, POST], maxBodyBytes: 16}') +
        gatewayConfig({ 'web/v1': v1.url, 'web/v2': shadow.url }),
    );
    try {
      const replies = await Promise.all(
        Array.from({ length: 300 }, (_, i) => send(gw.base, { host: 'web.test', path: `/r${i}` })),
      );
      expect(replies.every((r) => r.status === 200 && header(r, 'x-switchyard-upstream') === 'web/v1')).toBe(
        true,
      );
      await eventually(() => shadow.received.length >= 100);
      const copy = shadow.received[0];
      expect(copy?.headers['x-switchyard-shadow']).toBe('1');
      expect(copy?.headers.host).toBe('web.test');
      // The shadow never answered, yet every primary did; copies beyond the cap were dropped and counted.
      const metrics = (await send(gw.admin, { path: '/metrics' })).body;
      expect(metrics).toMatch(/switchyard_gateway_mirror_total\{result="dropped"\} [1-9]/);
      // A body over maxBodyBytes is not copied; one under it is, whole.
      const before = shadow.received.length;
      hang = false;
      for (const res of hung.splice(0)) res.end(); // let the copies in flight finish
      await eventually(
        async () =>
          /switchyard_gateway_mirror_in_flight 0\n/.test((await send(gw.admin, { path: '/metrics' })).body),
        15_000,
      );
      await send(gw.base, {
        host: 'web.test',
        method: 'POST',
        path: '/small',
        body: 'tiny',
        headers: { 'content-type': 'text/plain' },
      });
      expect(v1.received.at(-1)?.body).toBe('tiny');
      await eventually(() => shadow.received.some((r) => r.url === '/small'));
      expect(shadow.received.find((r) => r.url === '/small')?.body).toBe('tiny');
      await send(gw.base, {
        host: 'web.test',
        method: 'POST',
        path: '/big',
        body: 'x'.repeat(100),
        headers: { 'content-type': 'text/plain' },
      });
      expect(v1.received.at(-1)?.body).toBe('x'.repeat(100));
      await new Promise((r) => setTimeout(r, 200));
      expect(shadow.received.some((r) => r.url === '/big')).toBe(false);
      expect(shadow.received.length).toBeGreaterThan(before);
    } finally {
      for (const res of hung) res.end();
      await gw.close();
      await Promise.all([v1.close(), shadow.close()]);
    }
  }, 60_000);

  it('leaves a shadow that refuses connections alone: one copy tries it per second, not one per request, and copies resume when it is back', async () => {
    const v1 = await startUpstream('web/v1');
    const shadowPort = await unusedPort(); // nothing listens there yet
    const gw = await startTestGateway(
      policy('  mirror: {to: {version: v2}, percent: 100, methods: [GET]}') +
        gatewayConfig({ 'web/v1': v1.url, 'web/v2': `http://127.0.0.1:${shadowPort}` }),
    );
    const count = async (result: string) =>
      Number(
        new RegExp(`switchyard_gateway_mirror_total\\{result="${result}"\\} (\\d+)`).exec(
          (await send(gw.admin, { path: '/metrics' })).body,
        )?.[1] ?? 0,
      );
    let shadow: import('node:http').Server | undefined;
    try {
      const started = performance.now();
      for (let i = 0; i < 200; i++) {
        const r = await send(gw.base, { host: 'web.test', path: `/r${i}` });
        expect(r.status).toBe(200);
      }
      const seconds = (performance.now() - started) / 1000;
      // Each refusal keeps copies away for a second; then one copy probes (and is refused again).
      await eventually(async () => (await count('failed')) + (await count('dropped')) === 200);
      expect(await count('failed')).toBeGreaterThanOrEqual(1);
      expect(await count('failed')).toBeLessThanOrEqual(Math.ceil(seconds) + 1);
      expect(await count('sent')).toBe(0);

      // The shadow comes up: within a second or so the next copies reach it.
      const copies: string[] = [];
      shadow = createServer((req, res) => {
        copies.push(req.url ?? '');
        res.end('shadow');
      });
      await new Promise<void>((r) => shadow?.listen(shadowPort, '127.0.0.1', r));
      await eventually(async () => {
        await send(gw.base, { host: 'web.test', path: '/back' });
        return copies.includes('/back');
      }, 5_000);
      expect(await count('sent')).toBeGreaterThanOrEqual(1);
    } finally {
      shadow?.close();
      await gw.close();
      await v1.close();
    }
  });

  it('counts each request under the route it took, though a mirrored split and the plain split share destinations', async () => {
    const v1 = await startUpstream('web/v1');
    const shadow = await startUpstream('web/v2');
    const gw = await startTestGateway(
      policy('  mirror: {to: {version: v2}, percent: 100, methods: [GET]}') +
        gatewayConfig({ 'web/v1': v1.url, 'web/v2': shadow.url }),
    );
    try {
      for (let i = 0; i < 3; i++) await send(gw.base, { host: 'web.test', path: '/get' });
      for (let i = 0; i < 2; i++)
        await send(gw.base, { host: 'web.test', method: 'POST', path: '/post', body: 'x' });
      const metrics = (await send(gw.admin, { path: '/metrics' })).body;
      const count = (route: string) =>
        Number(
          new RegExp(
            `switchyard_gateway_requests_total\\{policy="test/web",route="${route}",upstream="web/v1",status="200"\\} (\\d+)`,
          ).exec(metrics)?.[1],
        );
      expect(count('split-mirrored')).toBe(3);
      expect(count('split')).toBe(2);
    } finally {
      await gw.close();
      await Promise.all([v1.close(), shadow.close()]);
    }
  });

  it('buffers a mirrored body only when a mirror slot is free: concurrent large POSTs beyond the cap are not held', async () => {
    const v1 = await startUpstream('web/v1');
    const shadow = await startUpstream('web/v2');
    const gw = await startTestGateway(
      policy('  mirror: {to: {version: v2}, percent: 100, methods: [POST], maxBodyBytes: 1048576}') +
        gatewayConfig({ 'web/v1': v1.url, 'web/v2': shadow.url }),
      { maxMirrorsInFlight: 2 },
    );
    const { request } = await import('node:http');
    const url = new URL(gw.base);
    // Five uploads that send half their body and wait: each would be buffered for its copy.
    const uploads = Array.from({ length: 5 }, (_, i) => {
      const req = request({
        host: url.hostname,
        port: url.port,
        method: 'POST',
        path: `/upload${i}`,
        headers: { host: 'web.test', 'content-length': String(200_000) },
      });
      req.on('error', () => undefined);
      req.write('x'.repeat(100_000));
      return req;
    });
    try {
      const metrics = async () => (await send(gw.admin, { path: '/metrics' })).body;
      // Only two are buffered (two slots); three were dropped at once, before their bodies arrived.
      await eventually(async () =>
        /switchyard_gateway_mirror_total\{result="dropped"\} 3\n/.test(await metrics()),
      );
      expect(await metrics()).toMatch(/switchyard_gateway_mirror_in_flight 2\n/);
      for (const u of uploads) u.end('x'.repeat(100_000));
      await eventually(() => shadow.received.length === 2);
      await eventually(async () => /switchyard_gateway_mirror_in_flight 0\n/.test(await metrics()));
      expect(v1.received.filter((r) => r.url.startsWith('/upload'))).toHaveLength(5);
    } finally {
      for (const u of uploads) u.destroy();
      await gw.close();
      await Promise.all([v1.close(), shadow.close()]);
    }
  });
});

describe('gateway upstream failures', () => {
  let gw: TestGateway | undefined;
  const servers: TestUpstream[] = [];
  afterEach(async () => {
    await gw?.close();
    await Promise.all(servers.splice(0).map((s) => s.close()));
  });

  it('answers 503 with a reason when the upstream is down', async () => {
    const port = await unusedPort();
    gw = await startTestGateway(policy('') + gatewayConfig({ 'web/v1': `http://127.0.0.1:${port}` }));
    const r = await send(gw.base, { host: 'web.test' });
    expect(r.status).toBe(503);
    expect(header(r, 'x-switchyard-error')).toBe('SY_GW_UPSTREAM_UNAVAILABLE');
    expect(header(r, 'x-switchyard-upstream')).toBe('web/v1');
    expect(JSON.parse(r.body).error.message).toContain('ECONNREFUSED');
  });

  it('answers 504 when the upstream is slower than the timeout', async () => {
    const slow = await startUpstream('web/v1', (_req, res) => setTimeout(() => res.end('late'), 2000));
    servers.push(slow);
    gw = await startTestGateway(policy('  timeout: 200ms') + gatewayConfig({ 'web/v1': slow.url }));
    const r = await send(gw.base, { host: 'web.test' });
    expect(r.status).toBe(504);
    expect(header(r, 'x-switchyard-error')).toBe('SY_GW_UPSTREAM_TIMEOUT');
  });

  it('answers 502 when the upstream resets the connection', async () => {
    const broken = await startUpstream('web/v1', (req) => req.socket.destroy());
    servers.push(broken);
    gw = await startTestGateway(policy('') + gatewayConfig({ 'web/v1': broken.url }));
    const r = await send(gw.base, { host: 'web.test' });
    expect(r.status).toBe(502);
    expect(header(r, 'x-switchyard-error')).toBe('SY_GW_UPSTREAM_FAILED');
  });

  it('retries on a retryable status as Envoy does: any method, a body sent whole again; not a body it could not keep', async () => {
    let calls = 0;
    const bodies: number[] = [];
    const flaky = await startUpstream('web/v1', (_req, res, body) => {
      calls++;
      bodies.push(body.length);
      res.writeHead(calls % 2 === 1 ? 503 : 200);
      res.end(String(calls));
    });
    servers.push(flaky);
    gw = await startTestGateway(
      policy('  retries: {attempts: 2, perTryTimeout: 1s, on: ["503"]}') +
        gatewayConfig({ 'web/v1': flaky.url }),
    );
    const get = await send(gw.base, { host: 'web.test' });
    expect(get.status).toBe(200);
    expect(calls).toBe(2);
    const post = await send(gw.base, {
      host: 'web.test',
      method: 'POST',
      body: 'x',
      headers: { 'content-type': 'text/plain' },
    });
    expect(post.status).toBe(200);
    expect(calls).toBe(4);
    expect(bodies.slice(2)).toEqual([1, 1]); // the body, on both tries
    // Over Envoy's 1 MiB retry buffer, or of unknown length (chunked): streamed once, not retried.
    const big = await send(gw.base, { host: 'web.test', method: 'PUT', body: 'x'.repeat(1024 * 1024 + 1) });
    expect(big.status).toBe(503);
    expect(calls).toBe(5);
    calls = 0; // the next answer is 503 again
    const chunked = await request(`${gw.base}/`, {
      method: 'POST',
      headers: { host: 'web.test' },
      body: Readable.from([Buffer.from('a'), Buffer.from('b')]),
      dispatcher: agent,
    });
    await chunked.body.text();
    expect(chunked.statusCode).toBe(503);
    expect(calls).toBe(1);
    expect(bodies.at(-1)).toBe(2);
  });

  it('closes a slowloris connection that never finishes its headers', async () => {
    const ok = await startUpstream('web/v1');
    servers.push(ok);
    gw = await startTestGateway(policy('') + gatewayConfig({ 'web/v1': ok.url }), {
      headersTimeoutMs: 300,
      requestTimeoutMs: 300,
    });
    const closed = await rawExchange(gw?.base ?? '', 'GET / HTTP/1.1\r\nHost: web.test\r\nX-Slow: ');
    expect(closed).toMatch(/^HTTP\/1\.1 408/);
    expect((await send(gw.base, { host: 'web.test' })).status).toBe(200);
  });
});

afterAll(async () => {
  await agent.close();
});
