/**
 * `npm run profile:gateway`: a CPU profile of one gateway process (the bench's full plan) under
 * wrk for BENCH_SECONDS, written as a .cpuprofile (open it in Chrome DevTools or speedscope), and
 * the functions with the most self time printed, grouped by file. How the hot path was found:
 * load-tests/README.md.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { BENCH_HOST, benchPlan } from './bench-plan.js';
import { ensureTool, freePort, startGatewayProcess, startNginx, tempDir, waitForHttp, wrk } from './tools.js';

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  children?: number[];
}
interface Profile {
  nodes: ProfileNode[];
  samples: number[];
}

const SECONDS = Number(process.env.BENCH_SECONDS ?? 6);

const nginx = ensureTool('nginx', 'nginx');
ensureTool('wrk', 'wrk');
const upstreamPort = await freePort();
const stopNginx = startNginx(
  nginx,
  `server { listen 127.0.0.1:${upstreamPort}; location / { default_type application/json; return 200 '{"upstream":"ok"}\\n'; } }`,
);
const dir = tempDir('switchyard-profile-');
try {
  const upstream = `http://127.0.0.1:${upstreamPort}`;
  await waitForHttp(`${upstream}/`);
  const gw = await startGatewayProcess(benchPlan(upstream, { to: 'v2', percent: 10 }), BENCH_HOST, [], {
    NODE_OPTIONS: `--cpu-prof --cpu-prof-dir=${dir}`,
  });
  wrk(gw.url, { seconds: 2, connections: 64, host: BENCH_HOST });
  const r = wrk(gw.url, { seconds: SECONDS, connections: 64, host: BENCH_HOST });
  console.log(`gateway under wrk: ${r.rps.toFixed(0)} req/s (profiling slows it)`);
  gw.child.kill('SIGTERM');
  await new Promise((done) => gw.child.once('exit', done));
  const file = readdirSync(dir).find((f) => f.endsWith('.cpuprofile'));
  if (!file) throw new Error('the gateway wrote no profile');
  const profile = JSON.parse(readFileSync(join(dir, file), 'utf8')) as Profile;
  const self = new Map<number, number>();
  for (const s of profile.samples) self.set(s, (self.get(s) ?? 0) + 1);
  const byFunction = new Map<string, number>();
  const byFile = new Map<string, number>();
  for (const n of profile.nodes) {
    const count = self.get(n.id) ?? 0;
    if (!count) continue;
    const where = n.callFrame.url.replace(/^file:\/\//, '').replace(/.*node_modules\//, '');
    const key = `${n.callFrame.functionName || '(anonymous)'} ${where}:${n.callFrame.lineNumber + 1}`;
    byFunction.set(key, (byFunction.get(key) ?? 0) + count);
    const group = where.startsWith('node:')
      ? where
      : where.includes('/dist/')
        ? `switchyard ${where.replace(/.*\/dist\//, '')}`
        : where
            .split('/')
            .slice(0, where.startsWith('@') ? 2 : 1)
            .join('/') || n.callFrame.functionName;
    byFile.set(group, (byFile.get(group) ?? 0) + count);
  }
  const total = profile.samples.length;
  const top = (m: Map<string, number>, k: number) =>
    [...m.entries()]
      .sort((a, b) => b[1] - a[1])
      .slice(0, k)
      .map(([name, c]) => `${((100 * c) / total).toFixed(1).padStart(5)} %  ${name}`)
      .join('\n');
  console.log(`\nself time by file or package (${total} samples)\n${top(byFile, 25)}`);
  console.log(`\nself time by function\n${top(byFunction, 40)}`);
  console.log(`\nprofile: ${join(dir, file)}`);
} finally {
  stopNginx();
}
