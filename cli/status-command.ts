/** `switchyard status`: the flags; cli/status.ts runs it (loaded only then). */
import type { Command } from 'commander';
import { type CommandContext, kubeOptions, outputOption } from './options.js';

export function defineStatus(program: Command, { io, setExit }: CommandContext): void {
  kubeOptions(
    program
      .command('status')
      .description('every policy: stable, canary and weight, intercepts, previews, conditions'),
  )
    .addOption(outputOption(['text', 'json', 'yaml'], 'text'))
    .action(async (opts) => setExit(await (await import('./status.js')).statusCommand(opts, io)));
}
