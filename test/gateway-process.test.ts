/**
 * The `switchyard gateway` process itself: SIGTERM under load finishes every request in flight and
 * exits 0; an invalid file at start exits 2 with the problems; the demo's printed lines do what
 * they say (acceptance 3).
 */
import { execFile } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, describe, expect, it } from 'vitest';
import WebSocket, { WebSocketServer } from 'ws';
import { createLogger } from '../core/common/logger.js';
import { runDemo } from '../gateway/demo.js';
import { runGateway } from '../gateway/start.js';
import { tempFiles } from './support/cli.js';
import { eventually, gatewayConfig } from './support/gateway.js';
import { agent, send } from './support/http.js';
import { BIN, startProcess } from './support/process.js';
import { startUpstream, unusedPort } from './support/upstreams.js';

const run = promisify(execFile);

describe('gateway process', () => {
  afterAll(async () => {
    await agent.close();
  });

  it('finishes every request in flight on SIGTERM, then exits 0', async () => {
    const slow = await startUpstream('web/v1', (_req, res) => setTimeout(() => res.end('done'), 400));
    const port = await unusedPort();
    const adminPort = await unusedPort();
    const dir = tempFiles({
      'gw.yaml': `apiVersion: switchyard.dev/v1alpha1\nkind: TrafficPolicy\nmetadata: {name: web}\nspec: {service: web, port: 80, hosts: [web.test], stable: v1}\n${gatewayConfig({ 'web/v1': slow.url })}`,
    });
    const gw = startProcess([
      'gateway',
      '-c',
      join(dir, 'gw.yaml'),
      '--port',
      String(port),
      '--admin-port',
      String(adminPort),
      '--host',
      '127.0.0.1',
    ]);
    const base = `http://127.0.0.1:${port}`;
    try {
      await eventually(
        async () =>
          (await send(`http://127.0.0.1:${adminPort}`, { path: '/readyz' }).catch(() => undefined))
            ?.status === 200,
        10_000,
      );
      const inFlight = Array.from({ length: 50 }, () => send(base, { host: 'web.test' }));
      await eventually(() => slow.received.length >= 50);
      gw.child.kill('SIGTERM');
      const replies = await Promise.all(inFlight);
      expect(replies.map((r) => `${r.status} ${r.body}`)).toEqual(Array(50).fill('200 done'));
      expect(await gw.exited).toBe(0);
      expect(gw.output()).toContain('SIGTERM: no longer accepting connections');
      await expect(send(base, { host: 'web.test' })).rejects.toThrow();
    } finally {
      gw.child.kill('SIGKILL');
      await slow.close();
    }
  }, 30_000);

  it('SIGTERM drain has a deadline: a hung request and an open WebSocket are closed at it, and it exits 0', async () => {
    const hung = await startUpstream('web/v1', () => undefined); // never answers
    const echo = createServer();
    const wss = new WebSocketServer({ server: echo });
    wss.on('connection', (ws) => ws.on('message', (m) => ws.send(m)));
    await new Promise<void>((r) => echo.listen(0, '127.0.0.1', r));
    const port = await unusedPort();
    const adminPort = await unusedPort();
    const dir = tempFiles({
      'gw.yaml': `apiVersion: switchyard.dev/v1alpha1
kind: TrafficPolicy
metadata: {name: web}
spec: {service: web, port: 80, hosts: [web.test], stable: v1, timeout: 1h}
---
apiVersion: switchyard.dev/v1alpha1
kind: TrafficPolicy
metadata: {name: chat}
spec: {service: chat, port: 80, hosts: [chat.test], stable: v1}
${gatewayConfig({ 'web/v1': hung.url, 'chat/v1': `http://127.0.0.1:${(echo.address() as AddressInfo).port}` })}`,
    });
    const gw = startProcess([
      'gateway',
      '-c',
      join(dir, 'gw.yaml'),
      '--port',
      String(port),
      '--admin-port',
      String(adminPort),
      '--host',
      '127.0.0.1',
      '--drain-timeout',
      '1s',
    ]);
    try {
      await eventually(
        async () =>
          (await send(`http://127.0.0.1:${adminPort}`, { path: '/readyz' }).catch(() => undefined))
            ?.status === 200,
        10_000,
      );
      const stuck = send(`http://127.0.0.1:${port}`, { host: 'web.test' }).catch((e: Error) => e);
      const ws = new WebSocket(`ws://127.0.0.1:${port}/`, { headers: { host: 'chat.test' } });
      await new Promise((r, j) => ws.once('open', r).once('error', j));
      const wsClosed = new Promise((r) => ws.once('close', r));
      await eventually(() => hung.received.length >= 1);
      const t = performance.now();
      gw.child.kill('SIGTERM');
      expect(await gw.exited, gw.output()).toBe(0);
      const tookMs = performance.now() - t;
      expect(tookMs).toBeGreaterThan(900); // it waited for them …
      expect(tookMs).toBeLessThan(5000); // … until the deadline, not for ever
      expect(await stuck).toBeInstanceOf(Error); // the hung request was closed
      await wsClosed;
      expect(gw.output()).toMatch(/drain deadline reached/);
    } finally {
      gw.child.kill('SIGKILL');
      await hung.close();
      wss.close();
      echo.close();
    }
  }, 30_000);

  it('the admin port listens on loopback unless told otherwise, wherever the traffic port listens', async () => {
    const up = await startUpstream('web/v1');
    const dir = tempFiles({
      'gw.yaml': `apiVersion: switchyard.dev/v1alpha1\nkind: TrafficPolicy\nmetadata: {name: web}\nspec: {service: web, port: 80, hosts: [web.test], stable: v1}\n${gatewayConfig({ 'web/v1': up.url })}`,
    });
    const running = await runGateway({
      config: [join(dir, 'gw.yaml')],
      port: 0,
      adminPort: 0,
      host: '0.0.0.0',
      logger: createLogger({ level: 'silent' }),
    });
    try {
      expect(new URL(running.adminUrl).hostname).toBe('127.0.0.1');
      expect((running.gateway.admin.server.address() as AddressInfo).address).toBe('127.0.0.1');
      expect((running.gateway.traffic.server.address() as AddressInfo).address).toBe('0.0.0.0');
    } finally {
      await running.close();
      await up.close();
    }
  });

  it('refuses to start on an invalid file: exit 2 and the problems', async () => {
    const dir = tempFiles({
      'gw.yaml':
        'apiVersion: switchyard.dev/v1alpha1\nkind: TrafficPolicy\nmetadata: {name: web}\nspec: {service: web, port: 80, stable: v1, canary: {version: v2, weight: 20}}\n',
    });
    const r = await run(process.execPath, [
      BIN,
      'gateway',
      '-c',
      join(dir, 'gw.yaml'),
      '--port',
      '0',
      '--admin-port',
      '0',
    ]).catch((e) => e);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(
      /route split of default\/web goes to web\/v1, which has no URL in GatewayConfig spec\.upstreams \[SY_GW_NO_UPSTREAM\]/,
    );
    expect(r.stderr).toMatch(/web\/v2, which has no URL/);
  });

  it('demo: every printed curl line shows what it says', async () => {
    const demo = await runDemo({ port: 0, adminPort: 0, logger: createLogger({ level: 'silent' }) });
    try {
      const out: Record<string, string> = {};
      for (const line of demo.lines) {
        // The demo's limit counts in fixed 10 s windows aligned to the clock: its seven requests must
        // not straddle two windows (5 + 2 would all pass), so they start early in one.
        if (line.command.includes('x-api-key')) {
          const into = Date.now() % 10_000;
          if (into > 6000) await new Promise((r) => setTimeout(r, 10_000 - into + 50));
        }
        out[line.says] = (await run('bash', ['-c', line.command])).stdout;
      }
      const [noHeader, split, preview, baggage, alice, limit, mirror, plan] = demo.lines.map(
        (l) => out[l.says] as string,
      );
      expect(noHeader).toMatch(/x-switchyard-upstream: shop\/v[12]/i);
      expect(noHeader).toMatch(/"version":"v[12]"/);
      const counts = Object.fromEntries(
        [...(split as string).matchAll(/(\d+) (shop\/v\d)/g)].map((m) => [m[2], Number(m[1])]),
      );
      expect((counts['shop/v1'] ?? 0) + (counts['shop/v2'] ?? 0)).toBe(50);
      expect(counts['shop/v1']).toBeGreaterThan(counts['shop/v2'] ?? 0);
      expect(preview).toContain('"version":"pr-42-7f3a2c1"');
      expect(baggage).toContain('"version":"pr-42-7f3a2c1"');
      expect(alice).toContain('"version":"v2"');
      expect(
        (limit as string)
          .trim()
          .split('\n')
          .map((l) => l.split(' ')[0]),
      ).toEqual(['200', '200', '200', '200', '200', '429', '429']);
      expect(limit).toMatch(/429 retry-after=\d+/);
      expect(JSON.parse(mirror as string).shadowCopies).toBeGreaterThanOrEqual(50);
      expect(plan).toContain('"generation":1');
      expect(plan).toMatch(/switchyard_gateway_requests_total\{policy="demo\/shop"/);
      // Editing the file is picked up: weight 100 sends everything to v2.
      writeFileSync(
        demo.configFile,
        (await import('node:fs')).readFileSync(demo.configFile, 'utf8').replace('weight: 20', 'weight: 100'),
      );
      await eventually(async () =>
        (
          await run('bash', ['-c', `curl -s ${demo.gateway.trafficUrl.replace('127.0.0.1', 'localhost')}/`])
        ).stdout.includes('"version":"v2"'),
      );
    } finally {
      await demo.close();
    }
  }, 60_000);
});
