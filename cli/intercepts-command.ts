/** `switchyard intercept`: the flags; cli/intercepts.ts runs it (loaded only then). */
import type { Command } from 'commander';
import { type CommandContext, kubeOptions, outputOption } from './options.js';

export function defineIntercept(program: Command, { io, setExit }: CommandContext): void {
  const intercept = program
    .command('intercept')
    .description("a tester's route to another version or a preview (uses the kubeconfig)");
  kubeOptions(
    intercept
      .command('add')
      .description(
        'append an intercept: one of --header/--baggage, one of --exact/--prefix/--regex, one target',
      )
      .argument('<policy>')
      .argument('<name>'),
  )
    .option('--header <name>', 'match this request header')
    .option('--baggage <key>', 'match this W3C baggage member')
    .option('--exact <value>', 'the whole value')
    .option('--prefix <value>', 'a non-empty prefix')
    .option('--regex <re2>', 'an RE2 expression matching the whole value')
    .option('--to-version <version>', 'send to this version')
    .option('--to-preview <ref>', 'send to this preview (pr-42 or pr-42-7f3a2c1)')
    .option('--require-token', 'the value must come from a signed token (header matches only)')
    .action(async (policy, name, opts) =>
      setExit(await (await import('./intercepts.js')).interceptAddCommand(policy, name, opts, io)),
    );
  kubeOptions(
    intercept.command('remove').description('remove an intercept').argument('<policy>').argument('<name>'),
  ).action(async (policy, name, opts) =>
    setExit(await (await import('./intercepts.js')).interceptRemoveCommand(policy, name, opts, io)),
  );
  kubeOptions(
    intercept.command('list').description("a policy's intercepts, in the order tried").argument('<policy>'),
  )
    .addOption(outputOption(['text', 'json', 'yaml'], 'text'))
    .action(async (policy, opts) =>
      setExit(await (await import('./intercepts.js')).interceptListCommand(policy, opts, io)),
    );
}
