/** WebSocket upgrades through the gateway: routed by the plan, both directions joined, errors with reasons. */
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket, { WebSocketServer } from 'ws';
import { gatewayConfig, startTestGateway, type TestGateway } from './support/gateway.js';

async function echoServer(name: string) {
  const server = createServer();
  const wss = new WebSocketServer({ server });
  wss.on('connection', (ws, req) =>
    ws.on('message', (m) => ws.send(`${name} got ${m} for ${req.headers['x-forwarded-host']}`)),
  );
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    close: () =>
      new Promise((r) => {
        wss.close();
        server.close(r);
      }),
  };
}

function open(
  url: string,
  headers: Record<string, string>,
): Promise<{ ws: WebSocket; upstream: string | undefined }> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, { headers });
    ws.once('upgrade', (res) =>
      resolve({ ws, upstream: res.headers['x-switchyard-upstream'] as string | undefined }),
    );
    ws.once('unexpected-response', (_req, res) =>
      reject(new Error(`status ${res.statusCode} ${res.headers['x-switchyard-error']}`)),
    );
    ws.once('error', reject);
  });
}

describe('gateway WebSocket upgrades', () => {
  let stable: Awaited<ReturnType<typeof echoServer>>;
  let v2: Awaited<ReturnType<typeof echoServer>>;
  let gw: TestGateway;
  beforeAll(async () => {
    [stable, v2] = await Promise.all([echoServer('v1'), echoServer('v2')]);
    gw = await startTestGateway(`apiVersion: switchyard.dev/v1alpha1
kind: TrafficPolicy
metadata: {name: chat}
spec:
  service: chat
  port: 80
  hosts: [chat.test]
  stable: v1
  intercepts: [{name: beta, match: {header: x-beta, exact: '1'}, to: {version: v2}}]
${gatewayConfig({ 'chat/v1': stable.url, 'chat/v2': v2.url })}`);
  });
  afterAll(async () => {
    await gw.close();
    await Promise.all([stable.close(), v2.close()]);
  });

  it('routes the upgrade by the plan and relays messages both ways', async () => {
    const ws = gw.base.replace('http', 'ws');
    for (const [headers, want] of [
      [{ host: 'chat.test' }, 'v1'],
      [{ host: 'chat.test', 'x-beta': '1' }, 'v2'],
    ] as const) {
      const { ws: socket, upstream } = await open(`${ws}/room`, headers);
      expect(upstream).toBe(`chat/${want}`);
      const reply = new Promise<string>((r) => socket.once('message', (m) => r(String(m))));
      socket.send('hello');
      expect(await reply).toBe(`${want} got hello for chat.test`);
      socket.close();
    }
  });

  it('refuses an upgrade for a host no policy serves with 404 and the reason', async () => {
    await expect(open(`${gw.base.replace('http', 'ws')}/`, { host: 'nope.test' })).rejects.toThrow(
      'status 404 SY_GW_NO_POLICY',
    );
  });
});
