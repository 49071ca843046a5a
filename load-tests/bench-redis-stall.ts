/**
 * `npm run bench:redis-stall`: the gateway under steady load (autocannon at a fixed rate, in its own
 * process), every request counted by a rate limit in Redis, while redis-server is SIGSTOPped for
 * 10 s and then continued. Passes when no request fails and none waits longer than the Redis
 * command timeout plus 50 ms; prints the figures (recorded in load-tests/README.md). Traffic stays
 * on loopback. Installs redis-server from Debian when missing.
 */
import { spawn } from 'node:child_process';
import { createServer } from 'node:http';
import { join } from 'node:path';
import { ensureTool, freePort, startGatewayProcess, startProcess } from './tools.js';

const STALL_SECONDS = Number(process.env.STALL_SECONDS ?? 10);
const RATE = Number(process.env.BENCH_RATE ?? 2000);
const TIMEOUT_MS = 100;
const HOST = 'stall.local';
const ROOT = join(import.meta.dirname, '..');

async function main(): Promise<number> {
  const redisServer = ensureTool('redis-server', 'redis-server');
  const redisPort = await freePort();
  const redis = startProcess(redisServer, [
    '--port',
    String(redisPort),
    '--bind',
    '127.0.0.1',
    '--save',
    '',
    '--appendonly',
    'no',
  ]);
  const upstream = createServer((_req, res) => res.end('ok\n'));
  await new Promise<void>((r) => upstream.listen(0, '127.0.0.1', r));
  const upstreamPort = (upstream.address() as { port: number }).port;
  const {
    url,
    adminUrl,
    child: gateway,
  } = await startGatewayProcess(
    `apiVersion: switchyard.dev/v1alpha1
kind: TrafficPolicy
metadata: {name: stall, namespace: bench}
spec:
  service: shop
  port: 80
  hosts: [${HOST}]
  stable: v1
  rateLimits:
    - {name: per-ip, key: {clientIp: {}}, limit: 1000000000, window: 1m}
---
apiVersion: switchyard.dev/v1alpha1
kind: GatewayConfig
metadata: {name: bench}
spec:
  upstreams: {shop/v1: 'http://127.0.0.1:${upstreamPort}'}
`,
    HOST,
    [
      '--redis',
      `redis://127.0.0.1:${redisPort}`,
      '--redis-timeout',
      `${TIMEOUT_MS}ms`,
      '--log-level',
      'error',
    ],
  );
  try {
    const seconds = STALL_SECONDS + 10;
    const bin = join(ROOT, 'node_modules', '.bin', 'autocannon');
    const load = spawn(
      bin,
      ['-j', '-c', '16', '-d', String(seconds), '-R', String(RATE), '-H', `host=${HOST}`, url],
      { stdio: ['ignore', 'pipe', 'ignore'] },
    );
    let out = '';
    load.stdout.on('data', (d) => {
      out += d;
    });
    const finished = new Promise<void>((r) => load.once('exit', () => r()));
    await new Promise((r) => setTimeout(r, 5000));
    redis.kill('SIGSTOP');
    console.log(`redis-server stopped (SIGSTOP) for ${STALL_SECONDS} s under ${RATE} requests/s`);
    await new Promise((r) => setTimeout(r, STALL_SECONDS * 1000));
    redis.kill('SIGCONT');
    await finished;
    const j = JSON.parse(out) as {
      requests: { total: number };
      latency: { p50: number; p99: number; max: number };
      errors: number;
      timeouts: number;
      non2xx: number;
    };
    const metrics = await (await fetch(`${adminUrl}/metrics`)).text();
    const metric = (name: string) =>
      [...metrics.matchAll(new RegExp(`^${name}(\\{[^}]*\\})? (\\d+)`, 'gm'))]
        .map((m) => `${m[1] ?? ''} ${m[2]}`)
        .join(', ');
    const failed = j.errors + j.timeouts + j.non2xx;
    console.log(
      [
        `requests ${j.requests.total}, failed ${failed} (errors ${j.errors}, timeouts ${j.timeouts}, non-2xx ${j.non2xx})`,
        `latency p50 ${j.latency.p50} ms, p99 ${j.latency.p99} ms, max ${j.latency.max} ms (bound ${TIMEOUT_MS} + 50 ms)`,
        `store errors: ${metric('switchyard_gateway_rate_limit_store_errors_total')}; counted in memory: ${metric('switchyard_gateway_rate_limit_fallback_total')}`,
      ].join('\n'),
    );
    const ok = failed === 0 && j.latency.max <= TIMEOUT_MS + 50;
    console.log(ok ? 'PASS' : 'FAIL');
    return ok ? 0 : 1;
  } finally {
    gateway.kill('SIGTERM');
    redis.kill('SIGCONT');
    redis.kill('SIGTERM');
    upstream.close();
  }
}

process.exitCode = await main();
