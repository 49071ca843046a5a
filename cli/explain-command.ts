/** `switchyard explain`: the flags; cli/explain.ts runs it (loaded only then). */
import type { Command } from 'commander';
import { type CommandContext, collect, fileOption, outputOption } from './options.js';

export function defineExplain(program: Command, { io, setExit }: CommandContext): void {
  program
    .command('explain')
    .description('show which rule a request hits and where it goes')
    .addOption(fileOption())
    .requiredOption('--host <host>', 'the Host (authority) of the request')
    .option('-X, --method <method>', 'the request method', 'GET')
    .option('-H, --header <name=value>', 'a request header (repeatable)', collect, [])
    .option('--cookie <name=value>', 'a request cookie (repeatable)', collect, [])
    .option('--claim <name=value>', 'a claim of a verified intercept token (repeatable)', collect, [])
    .addOption(outputOption(['text', 'json'], 'text'))
    .action(async (opts) => setExit(await (await import('./explain.js')).explainCommand(opts, io)));
}
