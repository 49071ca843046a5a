/**
 * Headers a client should not control: `x-switchyard-shadow` is the gateway's own, and
 * `x-forwarded-*` are believed only from a trusted proxy (`--trust-proxy`: a hop count or
 * addresses/CIDRs), for plain requests and WebSocket upgrades alike, and for per-client limits.
 */
import { createServer, type IncomingHttpHeaders } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket, { WebSocketServer } from 'ws';
import type { TrustProxy } from '../gateway/client-address.js';
import { gatewayConfig, startTestGateway } from './support/gateway.js';
import { send } from './support/http.js';

const SPOOF = {
  'x-forwarded-for': '203.0.113.7',
  'x-forwarded-proto': 'https',
  'x-forwarded-host': 'evil.test',
  'x-switchyard-shadow': '1',
};

/** One server that records the headers of plain requests and of WebSocket upgrades. */
async function recordingUpstream() {
  const seen: IncomingHttpHeaders[] = [];
  const server = createServer((req, res) => {
    seen.push(req.headers);
    res.end('ok');
  });
  const wss = new WebSocketServer({ server });
  wss.on('connection', (ws, req) => {
    seen.push(req.headers);
    ws.close();
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    seen,
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    close: () =>
      new Promise((r) => {
        wss.close();
        server.close(r);
      }),
  };
}

const config = (upstream: string) => `apiVersion: switchyard.dev/v1alpha1
kind: TrafficPolicy
metadata: {name: web}
spec:
  service: web
  port: 80
  hosts: [web.test]
  stable: v1
  rateLimits: [{name: per-client, key: {clientIp: {}}, limit: 2, window: 1m}]
${gatewayConfig({ 'web/v1': upstream })}`;

describe('client address and forwarded headers', () => {
  let upstream: Awaited<ReturnType<typeof recordingUpstream>>;
  beforeAll(async () => {
    upstream = await recordingUpstream();
  });
  afterAll(async () => {
    await upstream.close();
  });

  async function through(trustProxy: TrustProxy | undefined) {
    const gw = await startTestGateway(config(upstream.url), trustProxy === undefined ? {} : { trustProxy });
    try {
      upstream.seen.length = 0;
      await send(gw.base, { host: 'web.test', headers: SPOOF });
      await new Promise<void>((resolve, reject) => {
        const ws = new WebSocket(`${gw.base.replace('http', 'ws')}/chat`, {
          headers: { host: 'web.test', 'x-forwarded-for': '198.51.100.9', 'x-switchyard-shadow': '1' },
        });
        ws.once('close', () => resolve());
        ws.once('error', reject);
      });
      // Per-client limit of 2 a minute: two clients behind the proxy, three requests each.
      const statuses = [];
      for (const ip of ['192.0.2.1', '192.0.2.2'])
        for (let i = 0; i < 3; i++)
          statuses.push(
            (await send(gw.base, { host: 'web.test', headers: { 'x-forwarded-for': ip } })).status,
          );
      return {
        plain: upstream.seen[0] as IncomingHttpHeaders,
        upgrade: upstream.seen[1] as IncomingHttpHeaders,
        statuses,
      };
    } finally {
      await gw.close();
    }
  }

  it('by default the peer is the client: spoofed x-forwarded-* and x-switchyard-shadow are replaced or dropped', async () => {
    const { plain, upgrade, statuses } = await through(undefined);
    expect(plain['x-forwarded-for']).toBe('127.0.0.1');
    expect(plain['x-forwarded-proto']).toBe('http');
    expect(plain['x-forwarded-host']).toBe('web.test');
    expect(plain['x-switchyard-shadow']).toBeUndefined();
    expect(upgrade['x-forwarded-for']).toBe('127.0.0.1');
    expect(upgrade['x-switchyard-shadow']).toBeUndefined();
    // Every request comes from 127.0.0.1: one count (the two above used it up), whatever clients claim.
    expect(statuses).toEqual([429, 429, 429, 429, 429, 429]);
  });

  for (const trust of [1, ['127.0.0.0/8']] as TrustProxy[])
    it(`behind a trusted proxy (--trust-proxy ${trust}), x-forwarded-* are kept and the client is the address it reports`, async () => {
      const { plain, upgrade, statuses } = await through(trust);
      expect(plain['x-forwarded-for']).toBe('203.0.113.7, 127.0.0.1');
      expect(plain['x-forwarded-proto']).toBe('https');
      expect(plain['x-forwarded-host']).toBe('evil.test');
      expect(plain['x-switchyard-shadow']).toBeUndefined(); // never a client's to set
      expect(upgrade['x-forwarded-for']).toBe('198.51.100.9, 127.0.0.1');
      // Two clients, each with a count of its own: the third request of each is refused.
      expect(statuses).toEqual([200, 200, 429, 200, 200, 429]);
    });
});
