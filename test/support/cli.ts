/** Runs the `switchyard` CLI in-process and captures what it prints. */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { runCli } from '../../cli/main.js';
import { tempDir } from './temp.js';

export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

export async function cli(...args: string[]): Promise<CliResult> {
  let stdout = '';
  let stderr = '';
  const code = await runCli(args, {
    stdout: (t) => {
      stdout += t;
    },
    stderr: (t) => {
      stderr += t;
    },
  });
  return { code, stdout, stderr };
}

/** Writes files into a fresh temporary folder and returns its path. */
export function tempFiles(files: Record<string, string>): string {
  const dir = tempDir('switchyard-test-');
  for (const [name, text] of Object.entries(files)) writeFileSync(join(dir, name), text);
  return dir;
}

export const EXAMPLES = join(import.meta.dirname, '..', '..', 'deploy', 'examples');

/** The example files that hold resources (each also rendered and served in the tests). */
export const EXAMPLE_FILES = [
  'intercept',
  'baggage-intercept',
  'canary',
  'sticky-canary',
  'mirror',
  'rate-limits',
  'previews',
];
