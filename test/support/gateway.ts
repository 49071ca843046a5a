/** Starts the real gateway on free ports over a configuration written to a temporary file. */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { connectRedis } from '../../cli/redis.js';
import { createLogger } from '../../core/common/logger.js';
import { type RunGatewayOptions, type RunningGateway, runGateway } from '../../gateway/start.js';
import { tempDir } from './temp.js';

export interface TestGateway extends RunningGateway {
  file: string;
  base: string;
  admin: string;
  write(yaml: string): void;
}

export async function startTestGateway(
  yaml: string,
  options: Partial<RunGatewayOptions> & {
    /** Count rate limits in this Redis, connected as `switchyard gateway --redis` does. */
    redisUrl?: string;
    redisCommandTimeoutMs?: number;
  } = {},
): Promise<TestGateway> {
  const dir = tempDir('switchyard-gw-');
  const file = join(dir, 'gateway.yaml');
  writeFileSync(file, yaml);
  const { redisUrl, redisCommandTimeoutMs, ...rest } = options;
  const logger = createLogger({ level: process.env.SWITCHYARD_TEST_LOG ?? 'silent' });
  const running = await runGateway({
    config: [file],
    port: 0,
    adminPort: 0,
    host: '127.0.0.1',
    logger,
    ...(redisUrl ? { openRedis: () => connectRedis(redisUrl, logger, redisCommandTimeoutMs) } : {}),
    ...rest,
  });
  return {
    ...running,
    file,
    base: running.trafficUrl,
    admin: running.adminUrl,
    write: (text: string) => writeFileSync(file, text),
  };
}

export function gatewayConfig(upstreams: Record<string, string>): string {
  const lines = Object.entries(upstreams).map(([k, v]) => `    ${k}: ${v}`);
  return `---\napiVersion: switchyard.dev/v1alpha1\nkind: GatewayConfig\nmetadata: {name: test}\nspec:\n  upstreams:\n${lines.join('\n')}\n`;
}

/** Polls until `check` holds (for effects that follow a file change), or throws after `ms`. */
export async function eventually<T>(
  check: () => Promise<T | undefined> | T | undefined,
  ms = 5000,
): Promise<T> {
  const until = Date.now() + ms;
  for (;;) {
    const v = await check();
    if (v !== undefined && v !== false) return v as T;
    if (Date.now() > until) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 25));
  }
}
