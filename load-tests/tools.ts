/** Helpers for the benchmarks: tools from Debian, processes, free ports, wrk and h2load runs. */
import { type ChildProcess, execFile, execFileSync, spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { availableParallelism, tmpdir } from 'node:os';
import { join } from 'node:path';

/**
 * Where each process runs: the proxy under test alone on one core, the load generator and the
 * upstream on the other, so a proxy's figure is what one core of it does rather than how the
 * scheduler shared two cores among three processes (runs are far steadier so). One core: unpinned.
 */
export const CPUS =
  availableParallelism() >= 2 && spawnSync('taskset', ['-c', '0', 'true']).status === 0
    ? { proxy: '1', load: '0' }
    : undefined;

/** `cmd args` on the given cores (taskset), or anywhere. */
function pinned(cpus: string | undefined, cmd: string, args: string[]): [string, string[]] {
  return cpus ? ['taskset', ['-c', cpus, cmd, ...args]] : [cmd, args];
}

/** Installs a Debian package when its command is missing (the bench runs as root on these machines). */
export function ensureTool(command: string, pkg: string): string {
  const found = spawnSync('sh', ['-c', `command -v ${command} || ls /usr/sbin/${command} 2>/dev/null`], {
    encoding: 'utf8',
  })
    .stdout.trim()
    .split('\n')[0];
  if (found) return found;
  console.log(`installing ${pkg} (apt-get) for the benchmark`);
  execFileSync(
    'sh',
    [
      '-c',
      `apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends ${pkg}`,
    ],
    { stdio: 'inherit' },
  );
  return ensureTool(command, pkg);
}

/** Ports handed out in this run: the OS may offer a just-closed port twice, before anyone binds it. */
const handedOut = new Set<number>();

export async function freePort(): Promise<number> {
  for (;;) {
    const s = createServer();
    await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
    const port = (s.address() as { port: number }).port;
    await new Promise((r) => s.close(r));
    if (handedOut.has(port)) continue;
    handedOut.add(port);
    return port;
  }
}

export function tempDir(prefix: string): string {
  return mkdtempSync(join(tmpdir(), prefix));
}

/** One nginx master with one worker, from a server block; returns a stop function. */
export function startNginx(
  nginx: string,
  serverBlock: string,
  extraHttp = '',
  cpus: string | undefined = CPUS?.load,
): () => void {
  const dir = tempDir('switchyard-nginx-');
  const conf = `worker_processes 1;
daemon off;
pid ${dir}/nginx.pid;
error_log ${dir}/error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  keepalive_requests 1000000;
  client_body_temp_path ${dir}/body;
  proxy_temp_path ${dir}/proxy;
  fastcgi_temp_path ${dir}/fastcgi;
  uwsgi_temp_path ${dir}/uwsgi;
  scgi_temp_path ${dir}/scgi;
  ${extraHttp}
  ${serverBlock}
}
`;
  writeFileSync(join(dir, 'nginx.conf'), conf);
  const child = spawn(...pinned(cpus, nginx, ['-c', join(dir, 'nginx.conf'), '-p', dir]), {
    stdio: 'inherit',
  });
  return () => child.kill('SIGQUIT');
}

export function startProcess(
  cmd: string,
  args: string[],
  env: NodeJS.ProcessEnv = {},
  cpus?: string,
): ChildProcess {
  return spawn(...pinned(cpus, cmd, args), {
    stdio: ['ignore', 'ignore', 'inherit'],
    env: { ...process.env, ...env },
  });
}

export async function waitForHttp(
  url: string,
  headers: Record<string, string> = {},
  ms = 10_000,
): Promise<void> {
  const until = Date.now() + ms;
  for (;;) {
    try {
      const r = await fetch(url, { headers });
      await r.arrayBuffer();
      if (r.status < 500) return;
    } catch {
      // not up yet
    }
    if (Date.now() > until) throw new Error(`${url} did not come up`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

export interface WrkResult {
  rps: number;
  p50: number;
  p99: number;
  non2xx: number;
}

function ms(text: string): number {
  const m = /([0-9.]+)(us|ms|s)/.exec(text);
  if (!m) return Number.NaN;
  const v = Number(m[1]);
  return m[2] === 'us' ? v / 1000 : m[2] === 's' ? v * 1000 : v;
}

/** Maximum throughput: wrk, one thread, `connections` keep-alive connections. */
export function wrk(url: string, opts: { seconds: number; connections: number; host?: string }): WrkResult {
  const args = ['-t1', `-c${opts.connections}`, `-d${opts.seconds}s`, '--latency'];
  if (opts.host) args.push('-H', `Host: ${opts.host}`);
  const out = execFileSync(...pinned(CPUS?.load, 'wrk', [...args, url]), { encoding: 'utf8' });
  const rps = Number(/Requests\/sec:\s+([0-9.]+)/.exec(out)?.[1]);
  const p50 = ms(/^\s+50%\s+(\S+)/m.exec(out)?.[1] ?? '');
  const p99 = ms(/^\s+99%\s+(\S+)/m.exec(out)?.[1] ?? '');
  const non2xx = Number(/Non-2xx or 3xx responses:\s+(\d+)/.exec(out)?.[1] ?? 0);
  return { rps, p50, p99, non2xx };
}

/** The benches' upstream: nginx answering `return 200` with a short JSON body, on the load core, once it answers. */
export async function startBenchUpstream(
  nginx: string,
): Promise<{ port: number; url: string; stop(): void }> {
  const port = await freePort();
  const stop = startNginx(
    nginx,
    `server { listen 127.0.0.1:${port}; location / { default_type application/json; return 200 '{"upstream":"ok"}\\n'; } }`,
  );
  const url = `http://127.0.0.1:${port}`;
  await waitForHttp(`${url}/`);
  return { port, url, stop };
}

/**
 * One of load-tests/proxy-engine.ts's forwarders (`undici-dispatch`, `http-proxy`, …) on the proxy
 * core, run by Node itself (its type stripping), not through tsx: tsx's transform names every
 * function it creates (`__name`), which cost the bare forwarder about 1 µs per request
 * (load-tests/README.md).
 */
export function startProxyEngine(
  engine: string,
  port: number,
  upstream: string,
  env: NodeJS.ProcessEnv = {},
): { name: string; url: string; pid?: number; child: ChildProcess; stop(): void } {
  const child = startProcess(
    process.execPath,
    [join(import.meta.dirname, 'proxy-engine.ts'), engine, String(port), upstream],
    env,
    CPUS?.proxy,
  );
  return {
    name: engine,
    url: `http://127.0.0.1:${port}/`,
    pid: child.pid,
    child,
    stop: () => child.kill('SIGKILL'),
  };
}

/** wrk as `wrk` runs it, without blocking: for loads run side by side (pair-gateway.ts). The requests answered in all. */
export async function wrkConcurrent(
  url: string,
  opts: { seconds: number; connections: number; host?: string },
): Promise<{ requests: number; non2xx: number }> {
  const args = ['-t1', `-c${opts.connections}`, `-d${opts.seconds}s`];
  if (opts.host) args.push('-H', `Host: ${opts.host}`);
  const out = await new Promise<string>((resolve, reject) =>
    execFile(...pinned(CPUS?.load, 'wrk', [...args, url]), { encoding: 'utf8' }, (err, stdout) =>
      err ? reject(err) : resolve(stdout),
    ),
  );
  return {
    requests: Number(/(\d+) requests in/.exec(out)?.[1] ?? 0),
    non2xx: Number(/Non-2xx or 3xx responses:\s+(\d+)/.exec(out)?.[1] ?? 0),
  };
}

export function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? (sorted[mid] ?? 0) : ((sorted[mid - 1] ?? 0) + (sorted[mid] ?? 0)) / 2;
}

/** CPU time (user + system) a process has used so far, in ms; undefined without /proc. */
export function cpuMs(pid: number | undefined): number | undefined {
  if (!pid) return undefined;
  try {
    // Fields after the command's closing parenthesis: utime and stime are the 12th and 13th, in clock ticks (100/s).
    const f = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]?.split(' ') ?? [];
    return (Number(f[11]) + Number(f[12])) * 10;
  } catch {
    return undefined;
  }
}

/**
 * Every target under load at once, each by its own wrk, all on the proxy core, for `rounds` rounds:
 * the CPU µs each process spent per request in each round. The machine's swings (other tenants of
 * this VM) then hit every target alike, so the ratios between them hold still where back-to-back
 * runs spread by 2x (two identical forwarders read 0.98–1.02x: load-tests/README.md).
 */
export async function sideBySide(
  targets: readonly { name: string; url: string; pid?: number }[],
  opts: { rounds: number; seconds: number; host?: string },
): Promise<Map<string, number[]>> {
  const cpu = new Map<string, number[]>();
  for (let round = 0; round < opts.rounds; round++) {
    const before = targets.map((t) => cpuMs(t.pid));
    const results = await Promise.all(
      targets.map((t) => wrkConcurrent(t.url, { seconds: opts.seconds, connections: 32, host: opts.host })),
    );
    targets.forEach((t, i) => {
      const r = results[i] as { requests: number; non2xx: number };
      if (r.non2xx || r.requests === 0)
        throw new Error(`${t.name}: ${r.requests} answers, ${r.non2xx} non-2xx`);
      const spent = (cpuMs(t.pid) ?? Number.NaN) - (before[i] ?? Number.NaN);
      cpu.set(t.name, [...(cpu.get(t.name) ?? []), (spent * 1000) / r.requests]);
    });
  }
  return cpu;
}

/**
 * Latency at a fixed request rate, by h2load (nghttp2's load generator, C: installed from Debian
 * when missing) in its own process on the load core (several may run at once, side by side):
 * `connections` HTTP/1.1 clients sharing the rate, one request in flight each, and every request's
 * time read from its per-request log, so the percentiles are exact to the microsecond (autocannon,
 * used before, reports whole milliseconds, which cannot tell a 1 ms budget from noise).
 * Milliseconds.
 */
export async function fixedRate(
  url: string,
  opts: { rate: number; seconds: number; connections: number; host?: string },
): Promise<{ p50: number; p99: number; rps: number }> {
  ensureTool('h2load', 'nghttp2-client');
  const log = join(tempDir('switchyard-h2load-'), 'requests.tsv');
  const perClient = Math.max(1, Math.round(opts.rate / opts.connections));
  const args = ['--h1', '-c', String(opts.connections), '--rps', String(perClient)];
  args.push('-D', String(opts.seconds), '--warm-up-time', '1', '--log-file', log);
  // h2load's Host is its :authority (a `host` header would be sent as a second Host).
  if (opts.host) args.push('-H', `:authority: ${opts.host}`);
  await new Promise<void>((resolve, reject) =>
    execFile(...pinned(CPUS?.load, 'h2load', [...args, url]), (err) => (err ? reject(err) : resolve())),
  );
  // Columns: start (µs since the epoch), status, µs to the end of the response.
  const rows = readFileSync(log, 'utf8').trim().split('\n');
  const failed = rows.filter((r) => !/^\d+\t2\d\d\t/.test(r)).length;
  if (failed > 0)
    throw new Error(`${url}: ${failed} of ${rows.length} requests failed under fixed-rate load`);
  const us = rows.map((r) => Number(r.split('\t')[2])).sort((a, b) => a - b);
  const at = (q: number) => (us[Math.min(us.length - 1, Math.floor(q * us.length))] ?? Number.NaN) / 1000;
  return { p50: at(0.5), p99: at(0.99), rps: us.length / opts.seconds };
}

export async function startGatewayProcess(
  yaml: string,
  host: string,
  extraArgs: string[] = [],
  env: NodeJS.ProcessEnv = {},
  /** The checkout whose built gateway runs (another build's, to compare two); this one by default. */
  root = join(import.meta.dirname, '..'),
): Promise<{ url: string; adminUrl: string; child: ChildProcess }> {
  const file = join(tempDir('switchyard-bench-'), 'gateway.yaml');
  writeFileSync(file, yaml);
  const port = await freePort();
  const admin = await freePort();
  const child = startProcess(
    process.execPath,
    [
      join(root, 'bin', 'switchyard.js'),
      'gateway',
      '-c',
      file,
      '--port',
      String(port),
      '--admin-port',
      String(admin),
      '--host',
      '127.0.0.1',
      '--log-level',
      'warn',
      // One process unless the bench asks for more (the gateway's own default is one per core).
      ...(extraArgs.includes('--workers') ? [] : ['--workers', '1']),
      ...extraArgs,
    ],
    env,
    // One process on the proxy's core; several workers get every core.
    extraArgs.includes('--workers') ? undefined : CPUS?.proxy,
  );
  const url = `http://127.0.0.1:${port}/`;
  await waitForHttp(url, { host });
  return { url, adminUrl: `http://127.0.0.1:${admin}`, child };
}
