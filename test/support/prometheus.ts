/**
 * A real Prometheus server for the tests (Debian's `prometheus`, which .ci/run installs when
 * missing), on a free loopback port with a temporary TSDB, scraping the given targets every
 * `scrapeIntervalMs`.
 */
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { stopChild } from './envtest.js';
import { unusedPort } from './upstreams.js';

export interface TestPrometheus {
  url: string;
  /** Resolves once every target has been scraped successfully. */
  targetsUp(timeoutMs?: number): Promise<void>;
  stop(): Promise<void>;
}

const MISSING = 'skipping the Prometheus tests: no `prometheus` on PATH (apt-get install prometheus)';

/** Whether a prometheus binary is here; under CI=true its absence fails instead. */
export function prometheusGate(): boolean {
  if (spawnSync('prometheus', ['--version']).status === 0) return true;
  if (process.env.CI) throw new Error(`CI=true, but ${MISSING}`);
  console.warn(MISSING);
  return false;
}

export async function startPrometheus(opts: {
  /** `host:port` of each target, and the path of its metrics. */
  targets: { address: string; path: string; job: string }[];
  scrapeIntervalMs: number;
  /** The address to listen on (default loopback; the cluster tests' pods reach the node's). */
  host?: string;
}): Promise<TestPrometheus> {
  const dir = mkdtempSync(join(tmpdir(), 'switchyard-prometheus-'));
  const interval = `${opts.scrapeIntervalMs}ms`;
  const config = {
    global: { scrape_interval: interval, evaluation_interval: interval },
    scrape_configs: opts.targets.map((t) => ({
      job_name: t.job,
      metrics_path: t.path,
      scrape_interval: interval,
      scrape_timeout: interval,
      static_configs: [{ targets: [t.address] }],
    })),
  };
  writeFileSync(join(dir, 'prometheus.yml'), JSON.stringify(config));
  const port = await unusedPort();
  const host = opts.host ?? '127.0.0.1';
  const url = `http://${host}:${port}`;
  let log = '';
  const child: ChildProcess = spawn(
    'prometheus',
    [
      `--config.file=${join(dir, 'prometheus.yml')}`,
      `--storage.tsdb.path=${join(dir, 'data')}`,
      `--web.listen-address=${host}:${port}`,
      '--log.level=warn',
    ],
    { stdio: ['ignore', 'ignore', 'pipe'] },
  );
  child.stderr?.on('data', (d: Buffer) => {
    log = (log + d.toString()).slice(-20_000);
  });
  const until = Date.now() + 30_000;
  for (;;) {
    const ready = await fetch(`${url}/-/ready`).then(
      (r) => r.ok,
      () => false,
    );
    if (ready) break;
    if (child.exitCode !== null || Date.now() > until) throw new Error(`prometheus did not start:\n${log}`);
    await new Promise((r) => setTimeout(r, 100));
  }
  return {
    url,
    async targetsUp(timeoutMs = 20_000) {
      const end = Date.now() + timeoutMs;
      for (;;) {
        const body = (await (await fetch(`${url}/api/v1/targets`)).json()) as {
          data: { activeTargets: { health: string }[] };
        };
        const targets = body.data.activeTargets;
        if (targets.length === opts.targets.length && targets.every((t) => t.health === 'up')) return;
        if (Date.now() > end)
          throw new Error(`Prometheus targets not up: ${JSON.stringify(targets)}\n${log}`);
        await new Promise((r) => setTimeout(r, 100));
      }
    },
    async stop() {
      await stopChild(child);
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
