/**
 * A real redis-server for the tests: REDIS_URL when set, else one started here on a free port
 * (no persistence). Tests use their own key prefixes and never flush keys they did not write.
 */
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { unusedPort } from './upstreams.js';

export interface TestRedis {
  url: string;
  /** Kills a server started here (for the "Redis goes away" test); unavailable with REDIS_URL. */
  kill?(): Promise<void>;
  /** SIGSTOP / SIGCONT a server started here: it keeps its connections and answers nothing. */
  pause?(): void;
  resume?(): void;
  stop(): Promise<void>;
}

export function redisAvailable(): boolean {
  return Boolean(process.env.REDIS_URL) || spawnSync('redis-server', ['--version']).status === 0;
}

export async function startRedis(options: { own?: boolean } = {}): Promise<TestRedis> {
  if (process.env.REDIS_URL && !options.own)
    return { url: process.env.REDIS_URL, stop: async () => undefined };
  const port = await unusedPort();
  const child: ChildProcess = spawn(
    'redis-server',
    ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'],
    { stdio: 'ignore' },
  );
  const url = `redis://127.0.0.1:${port}`;
  const { Redis } = await import('ioredis');
  const probe = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null });
  probe.on('error', () => undefined); // refused until the server is up: retried below
  for (let i = 0; ; i++) {
    try {
      await probe.connect();
      await probe.ping();
      break;
    } catch (e) {
      if (i > 100) throw new Error(`redis-server did not start on ${url}: ${e}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  }
  probe.disconnect();
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  return {
    url,
    pause: () => child.kill('SIGSTOP'),
    resume: () => child.kill('SIGCONT'),
    kill: async () => {
      child.kill('SIGKILL');
      await exited;
    },
    stop: async () => {
      if (child.exitCode === null) {
        child.kill('SIGCONT'); // a stopped server cannot act on SIGTERM
        child.kill('SIGTERM');
      }
      await exited;
    },
  };
}
