/** `switchyard demo`: the flags; cli/demo.ts runs it (loaded only then). */
import type { Command } from 'commander';
import { type CommandContext, port } from './options.js';

export function defineDemo(program: Command, { io, setExit, settings }: CommandContext): void {
  program
    .command('demo')
    .description('run the gateway with three built-in upstreams and a demo policy; prints curl lines to try')
    .option('-p, --port <port>', 'traffic port', port, '8080')
    .option('--admin-port <port>', 'admin port', port, '9901')
    .option(
      '--host <address>',
      'address both ports listen on: loopback unless set (0.0.0.0 in a container, for `podman run -p`)',
      '127.0.0.1',
    )
    .option('--log-level <level>', 'pino log level', settings.logLevel ?? 'warn')
    .action(async (opts) => setExit(await (await import('./demo.js')).demoCommand(opts, io)));
}
