/**
 * `npm run profile:gateway`: CPU profiles of the gateway (the bench's full plan; BENCH_PLAN as in
 * pair-gateway.ts) and of the bare undici dispatch forwarder under the same wrk load, written as
 * .cpuprofile files (open them in Chrome DevTools or speedscope). Printed: where each spends its
 * time, by file or package and by function, in µs of CPU per request (samples × interval ÷
 * requests, start-up excluded), side by side, largest difference first: what the gateway costs
 * beyond forwarding, and where. How the hot path was found: load-tests/README.md.
 */
import type { ChildProcess } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { BENCH_HOST, benchPlan } from './bench-plan.js';
import {
  ensureTool,
  freePort,
  startBenchUpstream,
  startGatewayProcess,
  startProxyEngine,
  tempDir,
  waitForHttp,
  wrk,
} from './tools.js';

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  children?: number[];
}
interface Profile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
}

const SECONDS = Number(process.env.BENCH_SECONDS ?? 6);
/** Sampling interval in µs (V8's default is 1,000: too coarse for a request of some 40 µs). */
const INTERVAL_US = 250;
/** Frames of start-up, not of requests: left out of the per-request figures. */
const STARTUP = /^(compileSourceTextModule|wrapSafe|executeUserEntryPoint|compileForInternalLoader)$/;

/** µs of self time per request, by function and by file or package. */
function perRequest(
  profile: Profile,
  requests: number,
): { byFunction: Map<string, number>; byFile: Map<string, number> } {
  const self = new Map<number, number>();
  for (let i = 0; i < profile.samples.length; i++) {
    const id = profile.samples[i] as number;
    self.set(id, (self.get(id) ?? 0) + (profile.timeDeltas[i] ?? INTERVAL_US));
  }
  const byFunction = new Map<string, number>();
  const byFile = new Map<string, number>();
  for (const n of profile.nodes) {
    const us = self.get(n.id) ?? 0;
    const fn = n.callFrame.functionName || '(anonymous)';
    if (!us || fn === '(idle)' || STARTUP.test(fn)) continue;
    const where = n.callFrame.url
      .replace(/^file:\/\//, '')
      .replace(/.*node_modules\//, '')
      .replace(/.*\/(dist|load-tests)\//, '');
    const key = `${fn} ${where}:${n.callFrame.lineNumber + 1}`;
    byFunction.set(key, (byFunction.get(key) ?? 0) + us / requests);
    const group = where.startsWith('node:')
      ? where
      : /^(gateway|core)\//.test(where)
        ? `switchyard ${where}`
        : where
            .split('/')
            .slice(0, where.startsWith('@') ? 2 : 1)
            .join('/') || fn;
    byFile.set(group, (byFile.get(group) ?? 0) + us / requests);
  }
  return { byFunction, byFile };
}

function sideBySide(
  title: string,
  gateway: Map<string, number>,
  bare: Map<string, number>,
  rows: number,
): void {
  const keys = [...new Set([...gateway.keys(), ...bare.keys()])];
  const diff = (k: string) => (gateway.get(k) ?? 0) - (bare.get(k) ?? 0);
  keys.sort((a, b) => Math.abs(diff(b)) - Math.abs(diff(a)));
  const sum = (m: Map<string, number>) => [...m.values()].reduce((a, b) => a + b, 0);
  console.log(
    `\n${title} (µs of CPU per request; total: gateway ${sum(gateway).toFixed(1)}, bare forwarder ${sum(bare).toFixed(1)})`,
  );
  console.log(`${'gateway'.padStart(8)} ${'bare'.padStart(8)} ${'diff'.padStart(8)}`);
  for (const k of keys.slice(0, rows))
    console.log(
      `${(gateway.get(k) ?? 0).toFixed(2).padStart(8)} ${(bare.get(k) ?? 0).toFixed(2).padStart(8)} ${diff(k).toFixed(2).padStart(8)}  ${k}`,
    );
}

async function profiled(
  child: ChildProcess,
  url: string,
  dir: string,
): Promise<{ profile: Profile; requests: number; rps: number }> {
  await waitForHttp(url, { host: BENCH_HOST }, 20_000);
  const warm = wrk(url, { seconds: 2, connections: 64, host: BENCH_HOST });
  const r = wrk(url, { seconds: SECONDS, connections: 64, host: BENCH_HOST });
  child.kill('SIGTERM');
  await new Promise((done) => child.once('exit', done));
  const file = readdirSync(dir).find((f) => f.endsWith('.cpuprofile'));
  if (!file) throw new Error(`no profile written in ${dir}`);
  console.log(`profile: ${join(dir, file)}`);
  return {
    profile: JSON.parse(readFileSync(join(dir, file), 'utf8')) as Profile,
    requests: warm.rps * 2 + r.rps * SECONDS,
    rps: r.rps,
  };
}

const nginx = ensureTool('nginx', 'nginx');
ensureTool('wrk', 'wrk');
const { url: upstream, stop: stopNginx } = await startBenchUpstream(nginx);
try {
  const prof = (dir: string) => `--cpu-prof --cpu-prof-dir=${dir} --cpu-prof-interval=${INTERVAL_US}`;

  const gwDir = tempDir('switchyard-profile-');
  const plan = process.env.BENCH_PLAN === 'no-mirror' ? undefined : { to: 'v2', percent: 10 };
  const gw = await startGatewayProcess(benchPlan(upstream, plan), BENCH_HOST, [], {
    NODE_OPTIONS: prof(gwDir),
  });
  const gateway = await profiled(gw.child, gw.url, gwDir);

  const bareDir = tempDir('switchyard-profile-');
  const engine = startProxyEngine('undici-dispatch', await freePort(), upstream, {
    NODE_OPTIONS: prof(bareDir),
  });
  const bare = await profiled(engine.child, engine.url, bareDir);

  console.log(
    `\nunder wrk while profiled: gateway ${gateway.rps.toFixed(0)} req/s, bare forwarder ${bare.rps.toFixed(0)} req/s (profiling slows both)`,
  );
  const g = perRequest(gateway.profile, gateway.requests);
  const b = perRequest(bare.profile, bare.requests);
  sideBySide('by file or package', g.byFile, b.byFile, 25);
  sideBySide('by function', g.byFunction, b.byFunction, 45);
} finally {
  stopNginx();
}
