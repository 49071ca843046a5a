/** `switchyard crds`: the flags; cli/crds.ts runs it (loaded only then). */
import type { Command } from 'commander';
import { type CommandContext, outputOption } from './options.js';

export function defineCrds(program: Command, { io, setExit }: CommandContext): void {
  program
    .command('crds')
    .description('print the CustomResourceDefinitions for TrafficPolicy and Preview')
    .addOption(outputOption(['yaml', 'json'], 'yaml'))
    .action(async (opts) => setExit((await import('./crds.js')).crdsCommand(opts, io)));
}
