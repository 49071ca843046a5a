/** `switchyard validate`: the flags; cli/validate.ts runs it (loaded only then). */
import type { Command } from 'commander';
import { type CommandContext, fileOption } from './options.js';

export function defineValidate(program: Command, { io, setExit }: CommandContext): void {
  program
    .command('validate')
    .description('check TrafficPolicies and Previews without writing anything')
    .addOption(fileOption())
    .action(async (opts) => setExit(await (await import('./validate.js')).validateCommand(opts, io)));
}
