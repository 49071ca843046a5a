/**
 * `npm run bench:gateway`: the gateway against nginx (one worker each, keep-alive to the same
 * upstream) and against the upstream direct, measured in one run with wrk; then the latency the
 * gateway adds at half of its maximum load (autocannon at a fixed rate), the cost of mirroring to
 * a dead or slow shadow, and http-proxy against undici for the proxy hot path. Budgets (load-tests/README.md):
 * gateway ≥ 0.5× nginx's requests/s; added p99 ≤ 2 ms at half load; mirroring p99 ≤ 1.1× none.
 * Installs nginx and wrk from Debian when missing.
 */

import { createServer } from 'node:http';
import { join } from 'node:path';
import { benchPlan, BENCH_HOST as HOST } from './bench-plan.js';
import {
  ensureTool,
  fixedRate,
  freePort,
  startGatewayProcess,
  startNginx,
  startProcess,
  waitForHttp,
  wrk,
} from './tools.js';

const SECONDS = Number(process.env.BENCH_SECONDS ?? 10);
const CONNECTIONS = 64;

async function startGateway(
  yaml: string,
  extraArgs: string[] = [],
): Promise<{ url: string; stop: () => void }> {
  const { url, child } = await startGatewayProcess(yaml, HOST, extraArgs);
  return { url, stop: () => child.kill('SIGKILL') };
}

function row(
  name: string,
  r: { rps: number; p50: number; p99: number },
  nginx?: number,
  direct?: number,
): string {
  const cells = [
    name.padEnd(28),
    r.rps.toFixed(0).padStart(8),
    r.p50.toFixed(2).padStart(8),
    r.p99.toFixed(2).padStart(8),
  ];
  cells.push(nginx ? `${(r.rps / nginx).toFixed(2)}x`.padStart(9) : ''.padStart(9));
  cells.push(direct ? `${(r.rps / direct).toFixed(2)}x`.padStart(10) : ''.padStart(10));
  return cells.join(' ');
}

async function main(): Promise<void> {
  const nginx = ensureTool('nginx', 'nginx');
  ensureTool('wrk', 'wrk');
  const upstreamPort = await freePort();
  const proxyPort = await freePort();
  const stops: (() => void)[] = [];
  try {
    stops.push(
      startNginx(
        nginx,
        `server { listen 127.0.0.1:${upstreamPort}; location / { default_type application/json; return 200 '{"upstream":"ok"}\\n'; } }`,
      ),
    );
    stops.push(
      startNginx(
        nginx,
        `server { listen 127.0.0.1:${proxyPort}; location / { proxy_pass http://up; proxy_http_version 1.1; proxy_set_header Connection ""; proxy_set_header Host $host; } }`,
        `upstream up { server 127.0.0.1:${upstreamPort}; keepalive 128; }`,
      ),
    );
    const upstream = `http://127.0.0.1:${upstreamPort}`;
    await waitForHttp(`${upstream}/`);
    await waitForHttp(`http://127.0.0.1:${proxyPort}/`);
    const gw = await startGateway(benchPlan(upstream, { to: 'v2', percent: 10 }));
    stops.push(gw.stop);

    const measure = (url: string, host?: string) => {
      wrk(url, { seconds: 2, connections: CONNECTIONS, ...(host ? { host } : {}) }); // warm-up (JIT, pools)
      return wrk(url, { seconds: SECONDS, connections: CONNECTIONS, ...(host ? { host } : {}) });
    };
    console.log(
      `max throughput: wrk -t1 -c${CONNECTIONS} -d${SECONDS}s, one nginx worker / one Node process each, ${new Date().toISOString()}`,
    );
    const direct = measure(`${upstream}/`);
    const viaNginx = measure(`http://127.0.0.1:${proxyPort}/`, HOST);
    const viaGateway = measure(gw.url, HOST);
    // Every core: two workers sharing the port (on this 2-core machine wrk and the upstream share
    // the same two cores, so this shows what a second process buys when cores are contended).
    const gw2 = await startGateway(benchPlan(upstream, { to: 'v2', percent: 10 }), ['--workers', '2']);
    const viaGateway2 = measure(gw2.url, HOST);
    gw2.stop();
    console.log(
      `${'target'.padEnd(28)} ${'req/s'.padStart(8)} ${'p50 ms'.padStart(8)} ${'p99 ms'.padStart(8)} ${'vs nginx'.padStart(9)} ${'vs direct'.padStart(10)}`,
    );
    console.log(row('upstream direct', direct, viaNginx.rps, direct.rps));
    console.log(row('nginx proxy_pass', viaNginx, viaNginx.rps, direct.rps));
    console.log(row('switchyard gateway', viaGateway, viaNginx.rps, direct.rps));
    console.log(row('switchyard gateway x2 workers', viaGateway2, viaNginx.rps, direct.rps));
    if (viaGateway.non2xx > 0) console.log(`  (gateway answered ${viaGateway.non2xx} non-2xx)`);

    const rate = Math.floor(viaGateway.rps / 2);
    console.log(
      `\nlatency at half of the gateway's maximum (${rate} req/s, autocannon -c 16 for ${SECONDS}s)`,
    );
    const halfDirect = fixedRate(`${upstream}/`, { rate, seconds: SECONDS, connections: 16 });
    const halfGateway = fixedRate(gw.url, { rate, seconds: SECONDS, connections: 16, host: HOST });
    console.log(
      `  direct p50 ${halfDirect.p50} ms p99 ${halfDirect.p99} ms; gateway p50 ${halfGateway.p50} ms p99 ${halfGateway.p99} ms; added p99 ${(halfGateway.p99 - halfDirect.p99).toFixed(2)} ms`,
    );
    gw.stop();

    // Mirroring to a dead or a slow shadow, against no mirror, at the same fixed rate.
    const deadPort = await freePort();
    const slow = createServer((_req, res) => setTimeout(() => res.end('slow'), 2000));
    await new Promise<void>((r) => slow.listen(0, '127.0.0.1', r));
    const slowUrl = `http://127.0.0.1:${(slow.address() as { port: number }).port}`;
    const mirrorRate = Math.floor(rate / 2);
    const results: Record<string, number> = {};
    for (const [name, yaml] of [
      ['no mirror', benchPlan(upstream, undefined)],
      [
        'mirror 100% to a dead shadow',
        benchPlan(upstream, { to: 'shadow', percent: 100 }, `http://127.0.0.1:${deadPort}`),
      ],
      ['mirror 100% to a 2 s shadow', benchPlan(upstream, { to: 'shadow', percent: 100 }, slowUrl)],
    ] as const) {
      const g = await startGateway(yaml);
      fixedRate(g.url, { rate: mirrorRate, seconds: 2, connections: 16, host: HOST });
      const r = fixedRate(g.url, { rate: mirrorRate, seconds: SECONDS, connections: 16, host: HOST });
      results[name] = r.p99;
      g.stop();
    }
    slow.close();
    console.log(
      `\nmirroring at ${mirrorRate} req/s: p99 ${Object.entries(results)
        .map(([k, v]) => `${k} ${v} ms`)
        .join('; ')}`,
    );

    // The proxy hot path alone: http-proxy against undici.
    const engines: Record<string, number> = {};
    for (const engine of ['http-proxy', 'undici', 'undici-stream', 'none']) {
      const port = await freePort();
      const child = startProcess(process.execPath, [
        '--import',
        'tsx',
        join(import.meta.dirname, 'proxy-engine.ts'),
        engine,
        String(port),
        upstream,
      ]);
      await waitForHttp(`http://127.0.0.1:${port}/`);
      const r = measure(`http://127.0.0.1:${port}/`);
      engines[engine] = r.rps;
      console.log(
        `\nproxy engine ${engine.padEnd(10)} ${r.rps.toFixed(0)} req/s, p50 ${r.p50.toFixed(2)} ms, p99 ${r.p99.toFixed(2)} ms`,
      );
      child.kill('SIGKILL');
    }

    const okThroughput = viaGateway.rps >= 0.5 * viaNginx.rps;
    const added = halfGateway.p99 - halfDirect.p99;
    const noMirror = results['no mirror'] ?? 1;
    const mirrorOk = Object.values(results).every((p99) => p99 <= Math.max(1.1 * noMirror, noMirror + 1));
    console.log('\nbudgets');
    console.log(
      `  throughput ${(viaGateway.rps / viaNginx.rps).toFixed(2)}x nginx (>= 0.5): ${okThroughput ? 'ok' : 'MISSED'}`,
    );
    console.log(`  added p99 at half load ${added.toFixed(2)} ms (<= 2): ${added <= 2 ? 'ok' : 'MISSED'}`);
    console.log(
      `  mirroring p99 within 1.1x of none (or 1 ms, autocannon's resolution): ${mirrorOk ? 'ok' : 'MISSED'}`,
    );
    console.log(
      `  proxy engines: undici request ${((engines.undici ?? 0) / (engines['http-proxy'] ?? 1)).toFixed(2)}x, undici stream ${((engines['undici-stream'] ?? 0) / (engines['http-proxy'] ?? 1)).toFixed(2)}x http-proxy (the gateway uses undici stream)`,
    );
    // What no one-process Node gateway can beat here: Node's own http server, proxying nothing.
    console.log(
      `  ceiling: node http answering by itself ${(engines.none ?? 0).toFixed(0)} req/s = ${((engines.none ?? 0) / viaNginx.rps).toFixed(2)}x nginx proxy_pass`,
    );
    process.exitCode = okThroughput && added <= 2 && mirrorOk ? 0 : 1;
  } finally {
    for (const stop of stops) stop();
  }
}

await main();
