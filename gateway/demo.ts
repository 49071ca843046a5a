/**
 * `switchyard demo`: three tiny built-in upstreams (stable v1, canary v2, the preview of PR 42) and
 * the gateway over a demo policy with an intercept, a 20 % canary, a mirror and a rate limit,
 * written to a temporary file so that editing it shows hot reload. No cluster, no Redis.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Logger } from '../core/common/logger.js';
import { type RunningGateway, runGateway } from './start.js';

export const DEMO_COMMIT = '7f3a2c1e9b0d4c2a8f6e5d4c3b2a1f0e9d8c7b6a';

interface DemoUpstream {
  version: string;
  server: Server;
  port: number;
  shadowCopies: number;
}

async function startUpstream(version: string): Promise<DemoUpstream> {
  const up: DemoUpstream = { version, server: createServer(), port: 0, shadowCopies: 0 };
  up.server.on('request', (req, res) => {
    if (req.url === '/__demo/stats') {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(`${JSON.stringify({ version, shadowCopies: up.shadowCopies })}\n`);
      return;
    }
    if (req.headers['x-switchyard-shadow'] === '1') up.shadowCopies++;
    req.resume();
    req.on('end', () => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(`${JSON.stringify({ service: 'shop', version, method: req.method, path: req.url })}\n`);
    });
  });
  await new Promise<void>((resolve) => up.server.listen(0, '127.0.0.1', resolve));
  up.port = (up.server.address() as AddressInfo).port;
  return up;
}

export function demoConfig(ports: { v1: number; v2: number; preview: number }): string {
  return `# The demo's configuration. Edit it while the demo runs (try canary weight 50):
# the gateway reloads it, and keeps the last good plan if the file is invalid.
apiVersion: switchyard.dev/v1alpha1
kind: TrafficPolicy
metadata: {name: shop, namespace: demo}
spec:
  service: shop
  port: 80
  hosts: [localhost, 127.0.0.1]
  stable: v1
  canary: {version: v2, weight: 20}
  intercepts:
    - name: alice
      match: {header: x-debug-user, exact: alice}
      to: {version: v2}
  mirror: {to: {version: v2}, percent: 100, methods: [GET]}
  rateLimits:
    - name: per-api-key
      key: {header: x-api-key}
      limit: 5
      window: 10s
  previews: {repository: acme/shop}
---
apiVersion: switchyard.dev/v1alpha1
kind: Preview
metadata: {name: shop-pr-42-7f3a2c1, namespace: demo}
spec: {policy: shop, repository: acme/shop, pullRequest: 42, commit: ${DEMO_COMMIT}}
---
apiVersion: switchyard.dev/v1alpha1
kind: GatewayConfig
metadata: {name: demo}
spec:
  upstreams:
    shop/v1: http://127.0.0.1:${ports.v1}
    shop/v2: http://127.0.0.1:${ports.v2}
    shop/pr-42-7f3a2c1: http://127.0.0.1:${ports.preview}
`;
}

export interface DemoLine {
  /** What the line shows, printed above it. */
  says: string;
  command: string;
}

export interface RunningDemo {
  gateway: RunningGateway;
  configFile: string;
  lines: DemoLine[];
  close(): Promise<void>;
}

export async function runDemo(opts: {
  port: number;
  adminPort: number;
  /** Where both ports listen: loopback, or 0.0.0.0 in a container whose ports are published. */
  host?: string;
  logger: Logger;
}): Promise<RunningDemo> {
  const upstreams = await Promise.all(['v1', 'v2', 'pr-42-7f3a2c1'].map(startUpstream));
  const [v1, v2, preview] = upstreams as [DemoUpstream, DemoUpstream, DemoUpstream];
  const dir = mkdtempSync(join(tmpdir(), 'switchyard-demo-'));
  const configFile = join(dir, 'demo.yaml');
  writeFileSync(configFile, demoConfig({ v1: v1.port, v2: v2.port, preview: preview.port }));
  const gateway = await runGateway({
    config: [configFile],
    port: opts.port,
    adminPort: opts.adminPort,
    host: opts.host ?? '127.0.0.1',
    adminHost: opts.host ?? '127.0.0.1',
    logger: opts.logger,
  });
  const port = new URL(gateway.trafficUrl).port;
  const admin = new URL(gateway.adminUrl).port;
  const base = `http://localhost:${port}`;
  const lines: DemoLine[] = [
    {
      says: 'no header: stable v1 or, one time in five, the canary v2 (see x-switchyard-upstream)',
      command: `curl -si ${base}/ | grep -i -e x-switchyard-upstream -e version`,
    },
    {
      says: 'the 80/20 split over 50 requests',
      command: `for i in $(seq 50); do curl -s -o /dev/null -w '%header{x-switchyard-upstream}\\n' ${base}/; done | sort | uniq -c`,
    },
    {
      says: 'the preview of PR 42, by intercept header',
      command: `curl -s -H 'x-switchyard-preview: pr-42' ${base}/`,
    },
    {
      says: 'the same preview through W3C baggage, as OpenTelemetry propagates it',
      command: `curl -s -H 'baggage: userId=7,switchyard-preview=pr-42' ${base}/`,
    },
    {
      says: "alice's requests go to v2 (header intercept)",
      command: `curl -s -H 'x-debug-user: alice' ${base}/`,
    },
    {
      says: 'the rate limit: 5 requests per 10 s per API key, then 429 with retry-after',
      command: `for i in $(seq 7); do curl -s -o /dev/null -w '%{http_code} retry-after=%header{retry-after}\\n' -H 'x-api-key: demo' ${base}/; done`,
    },
    {
      says: 'mirrored copies v2 has received (every GET on the stable/canary route is copied; answers discarded)',
      command: `curl -s http://127.0.0.1:${v2.port}/__demo/stats`,
    },
    {
      says: 'the RoutePlan in force, and the metrics',
      command: `curl -s http://localhost:${admin}/plan | head -c 400; echo; curl -s http://localhost:${admin}/metrics | grep '^switchyard_gateway_requests_total' | head -5`,
    },
  ];
  return {
    gateway,
    configFile,
    lines,
    async close() {
      await gateway.close();
      await Promise.all(upstreams.map((u) => new Promise((r) => u.server.close(r))));
      // The demo's configuration was written for this run only.
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
