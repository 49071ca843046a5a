/**
 * `npm run bench:config`: configuration files of 64 KiB, 256 KiB and 1 MiB, valid (TrafficPolicies
 * with their GatewayConfig), malformed (YAML broken on every line) and nested (a `[` per byte), each
 * - through the CLI: `switchyard validate` as a process, wall time (budget 2 s), and
 * - as a reload of a running gateway: the longest the traffic port's event loop was held while the
 *   file was read, parsed, validated and applied (budget 50 ms; the file is parsed on a worker).
 * Issue 27, acceptance 3. Prints one row per file and exits 1 when a budget is missed.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { monitorEventLoopDelay, performance } from 'node:perf_hooks';
import { createLogger } from '../core/common/logger.js';
import { runGateway } from '../gateway/start.js';

const CLI_BUDGET_MS = 2000;
const LOOP_BUDGET_MS = 50;
const SIZES = { '64 KiB': 64 * 1024, '256 KiB': 256 * 1024, '1 MiB': 1024 * 1024 };
const BIN = join(import.meta.dirname, '..', 'bin', 'switchyard.js');

function validFile(bytes: number): string {
  const upstreams: string[] = [];
  let text = '';
  for (let i = 0; text.length < bytes - 40 * upstreams.length; i++) {
    text += `---\napiVersion: switchyard.dev/v1alpha1\nkind: TrafficPolicy\nmetadata: {name: s${i}}\nspec: {service: s${i}, port: 80, hosts: [s${i}.test], stable: v1, intercepts: [{name: a, match: {header: x-user, exact: alice}, to: {version: v2}}]}\n`;
    upstreams.push(`    s${i}/v1: http://127.0.0.1:9`, `    s${i}/v2: http://127.0.0.1:9`);
  }
  // A GatewayConfig holds at most 4096 upstreams: one per 4000.
  const configs: string[] = [];
  for (let i = 0; i < upstreams.length; i += 4000)
    configs.push(
      `---\napiVersion: switchyard.dev/v1alpha1\nkind: GatewayConfig\nspec:\n  upstreams:\n${upstreams.slice(i, i + 4000).join('\n')}\n`,
    );
  return `${text}${configs.join('')}`;
}

const malformedFile = (bytes: number) => 'a: [b, c\n'.repeat(Math.ceil(bytes / 9));
/** A `[` per byte: with the `yaml` library this was the slowest file of all (3.4 s at 1 MiB). */
const nestedFile = (bytes: number) => '['.repeat(bytes);

function cliMs(file: string): number {
  const t = performance.now();
  try {
    execFileSync(process.execPath, [BIN, 'validate', '-f', file], { stdio: 'ignore' });
  } catch {
    // exit 2 for the malformed files: what is timed is the answer
  }
  return performance.now() - t;
}

async function reloadLoopMs(dir: string, text: string): Promise<{ ms: number; applied: boolean }> {
  const file = join(dir, 'gateway.yaml');
  writeFileSync(file, validFile(1024));
  const gw = await runGateway({
    config: [file],
    port: 0,
    host: '127.0.0.1',
    watch: false,
    logger: createLogger({ level: 'silent' }),
  });
  try {
    writeFileSync(file, text);
    const delay = monitorEventLoopDelay({ resolution: 1 });
    delay.enable();
    const applied = await gw.reload();
    delay.disable();
    return { ms: delay.max / 1e6, applied };
  } finally {
    await gw.close();
  }
}

const dir = mkdtempSync(join(tmpdir(), 'switchyard-bench-config-'));
let missed = 0;
console.log('file                 CLI validate   reload: event loop held (max)');
try {
  for (const [size, bytes] of Object.entries(SIZES))
    for (const [kind, make] of [
      ['valid', validFile],
      ['malformed', malformedFile],
      ['nested', nestedFile],
    ] as const) {
      const text = make(bytes);
      const file = join(dir, `${kind}.yaml`);
      writeFileSync(file, text);
      const cli = Math.min(cliMs(file), cliMs(file));
      const reload = await reloadLoopMs(dir, text);
      const over = cli > CLI_BUDGET_MS || reload.ms > LOOP_BUDGET_MS;
      if (over) missed++;
      console.log(
        `${`${size} ${kind}`.padEnd(20)} ${cli.toFixed(0).padStart(7)} ms   ${reload.ms.toFixed(1).padStart(7)} ms${reload.applied !== (kind === 'valid') ? ' (unexpected reload result)' : ''}${over ? '  OVER BUDGET' : ''}`,
      );
    }
} finally {
  rmSync(dir, { recursive: true, force: true });
}
console.log(`budgets: CLI ${CLI_BUDGET_MS} ms, event loop ${LOOP_BUDGET_MS} ms per reload`);
process.exitCode = missed > 0 ? 1 : 0;
