import { BENCH_HOST, benchPlan } from './bench-plan.js';
import {
  CPUS,
  ensureTool,
  freePort,
  median,
  sideBySide,
  startBenchUpstream,
  startGatewayProcess,
  startProxyEngine,
  waitForHttp,
  wrk,
} from './tools.js';

const SECONDS = Number(process.env.BENCH_SECONDS ?? 4);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 5);
const PLAN = process.env.BENCH_PLAN ?? 'full';

function planYaml(upstream: string): string {
  if (PLAN === 'full') return benchPlan(upstream, { to: 'v2', percent: 10 });
  if (PLAN === 'no-mirror') return benchPlan(upstream, undefined);
  if (PLAN === 'minimal')
    return `apiVersion: switchyard.dev/v1alpha1
kind: TrafficPolicy
metadata: {name: bench, namespace: bench}
spec: {service: shop, port: 80, hosts: [${BENCH_HOST}], stable: v1}
---
apiVersion: switchyard.dev/v1alpha1
kind: GatewayConfig
metadata: {name: bench}
spec:
  upstreams: {shop/v1: ${upstream}}
`;
  throw new Error(`BENCH_PLAN must be full, no-mirror or minimal, not ${PLAN}`);
}

interface Target {
  name: string;
  url: string;
  pid: number;
  stop(): void;
}

async function gateway(
  name: string,
  yaml: string,
  root?: string,
  env: NodeJS.ProcessEnv = {},
): Promise<Target> {
  const g = await startGatewayProcess(yaml, BENCH_HOST, [], env, root);
  return { name, url: g.url, pid: g.child.pid ?? 0, stop: () => g.child.kill('SIGKILL') };
}

const nginx = ensureTool('nginx', 'nginx');
ensureTool('wrk', 'wrk');
const { url: upstream, stop: stopUpstream } = await startBenchUpstream(nginx);
const targets: Target[] = [];
try {
  const yaml = planYaml(upstream);
  const forwarder = async (name: string, engine = 'undici-dispatch'): Promise<Target> => {
    const f = startProxyEngine(engine, await freePort(), upstream);
    return { name, url: f.url, pid: f.pid ?? 0, stop: f.stop };
  };
  targets.push(await forwarder('bare forwarder'));
  // The full plan mirrors 10 %: the bare forwarder doing the same mirror tells its cost apart.
  if (PLAN === 'full') targets.push(await forwarder('forwarder + mirror', 'undici-dispatch-mirror'));
  // A control: a second bare forwarder should read 1.00x, showing what the method itself adds.
  if (process.env.BENCH_CONTROL) targets.push(await forwarder('bare forwarder 2'));
  const nodeOptions = process.env.BENCH_GATEWAY_NODE_OPTIONS;
  targets.push(await gateway('gateway', yaml, undefined, nodeOptions ? { NODE_OPTIONS: nodeOptions } : {}));
  const baseline = process.env.BENCH_BASELINE;
  if (baseline) targets.push(await gateway('baseline gateway', yaml, baseline));
  for (const t of targets) await waitForHttp(t.url, { host: BENCH_HOST }, 20_000);
  for (const t of targets) wrk(t.url, { seconds: 2, connections: 64, host: BENCH_HOST });

  const cpu = await sideBySide(targets, { rounds: ROUNDS, seconds: SECONDS, host: BENCH_HOST });
  const bare = cpu.get('bare forwarder') ?? [];
  console.log(
    `plan ${PLAN}: ${ROUNDS} rounds of ${SECONDS}s, the ${targets.length} targets at once on ${CPUS ? `core ${CPUS.proxy}` : 'one core'}; Node ${process.version}`,
  );
  for (const t of targets) {
    const us = cpu.get(t.name) ?? [];
    console.log(
      `${t.name.padEnd(18)} CPU µs/req median ${median(us).toFixed(1)} (${us.map((v) => v.toFixed(1)).join(' ')})  bare forwarder / this: ${median(us.map((v, i) => (bare[i] ?? 0) / v)).toFixed(2)}x (rounds: ${us.map((v, i) => ((bare[i] ?? 0) / v).toFixed(2)).join(' ')})`,
    );
  }
  const base = cpu.get('baseline gateway');
  if (base) {
    // Two builds side by side: the ratio per round, which the machine's swings move least.
    const mine = cpu.get('gateway') ?? [];
    const r = mine.map((v, i) => (base[i] ?? 0) / v);
    console.log(
      `baseline / gateway: ${median(r).toFixed(3)}x (rounds: ${r.map((v) => v.toFixed(3)).join(' ')}; above 1: this build uses less CPU per request)`,
    );
  }
} finally {
  for (const t of targets) t.stop();
  stopUpstream();
}
