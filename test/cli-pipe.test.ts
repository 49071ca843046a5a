/** The real `switchyard` process, its output piped to a reader that stops early (`| head`). */
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { expect, it } from 'vitest';
import { tempFiles } from './support/cli.js';
import { BIN } from './support/process.js';

it('stops quietly with exit 0 when the reader closes the pipe (render | head)', async () => {
  // Far more than a pipe holds (64 KiB), so the writes go on after the reader has gone.
  const policies = Array.from(
    { length: 400 },
    (_, i) =>
      `apiVersion: switchyard.dev/v1alpha1\nkind: TrafficPolicy\nmetadata: {name: svc-${i}, namespace: shop}\nspec: {service: svc-${i}, port: 80, stable: v1, canary: {version: v2, weight: 10}}\n`,
  ).join('---\n');
  const file = join(tempFiles({ 'policies.yaml': policies }), 'policies.yaml');
  const child = spawn(process.execPath, [BIN, 'render', '-f', file], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (d) => {
    stderr += d;
  });
  // Read the first chunk, then close the pipe as `head` does.
  await new Promise<void>((resolve) => child.stdout.once('data', () => resolve()));
  child.stdout.destroy();
  const code = await new Promise<number | null>((resolve) => child.once('exit', resolve));
  expect({ code, stderr }).toEqual({ code: 0, stderr: '' });
});
