/** `switchyard preview`: the flags; cli/previews.ts runs it (loaded only then). */
import type { Command } from 'commander';
import { type CommandContext, kubeOptions, outputOption } from './options.js';

export function definePreview(program: Command, { io, setExit }: CommandContext): void {
  const preview = program.command('preview').description('pull-request previews (uses the kubeconfig)');
  kubeOptions(preview.command('list').description('repository, PR, SHA, phase, URL and age of each preview'))
    .option('-A, --all-namespaces', 'previews of every namespace')
    .option('--policy <name>', 'only the previews of this policy')
    .addOption(outputOption(['text', 'json', 'yaml'], 'text'))
    .action(async (opts) => setExit(await (await import('./previews.js')).previewListCommand(opts, io)));
  kubeOptions(
    preview
      .command('delete')
      .description('delete a preview (routes first, then its workload)')
      .argument('<name>'),
  ).action(async (name, opts) =>
    setExit(await (await import('./previews.js')).previewDeleteCommand(name, opts, io)),
  );
}
