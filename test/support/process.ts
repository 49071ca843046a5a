/** Runs the real `switchyard` binary as a child process, collecting what it writes (stderr and pino logs on stdout). */
import { type ChildProcess, spawn } from 'node:child_process';
import { join } from 'node:path';

export const BIN = join(import.meta.dirname, '..', '..', 'bin', 'switchyard.js');

export interface Started {
  child: ChildProcess;
  output: () => string;
  exited: Promise<number | null>;
}

export function startProcess(
  args: string[],
  env: Record<string, string> = {},
  nodeArgs: string[] = [],
): Started {
  const child = spawn(process.execPath, [...nodeArgs, BIN, ...args], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, SWITCHYARD_LOG_LEVEL: 'warn', ...env },
  });
  let output = '';
  child.stderr?.on('data', (d) => {
    output += d;
  });
  child.stdout?.on('data', (d) => {
    output += d;
  });
  return { child, output: () => output, exited: new Promise((r) => child.once('exit', (code) => r(code))) };
}
