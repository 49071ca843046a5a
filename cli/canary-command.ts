/** `switchyard canary`: the flags; cli/canary.ts runs it (loaded only then). */
import type { Command } from 'commander';
import { type CommandContext, durationOption, kubeOptions, outputOption } from './options.js';

export function defineCanary(program: Command, { io, setExit }: CommandContext): void {
  const canary = program
    .command('canary')
    .description("shift a policy's canary traffic (uses the kubeconfig)");
  kubeOptions(
    canary
      .command('set')
      .description('set the canary weight (0-100)')
      .argument('<policy>')
      .argument('<weight>'),
  ).action(async (policy, weight, opts) =>
    setExit(await (await import('./canary.js')).canarySetCommand(policy, weight, opts, io)),
  );
  kubeOptions(
    canary
      .command('status')
      .description('target and in-force canary weight, and the Ready condition')
      .argument('<policy>'),
  )
    .addOption(outputOption(['text', 'json', 'yaml'], 'text'))
    .action(async (policy, opts) =>
      setExit(await (await import('./canary.js')).canaryStatusCommand(policy, opts, io)),
    );
  // The commands that take a policy and nothing else, each run by its function in cli/canary.ts.
  const onPolicy = [
    ['promote', 'the canary becomes stable; no canary afterwards', 'canaryPromoteCommand'],
    [
      'abort',
      'all traffic back to stable: weight 0, sticky cookies no longer hold clients (a progressive run is rolled back)',
      'canaryAbortCommand',
    ],
    [
      'resume',
      'move a progressive run on: lift a `canary pause`, or end a step without a pause',
      'canaryResumeCommand',
    ],
    [
      'pause',
      'hold a progressive run at its step until `canary resume` (analyses go on)',
      'canaryPauseCommand',
    ],
  ] as const;
  for (const [name, description, run] of onPolicy)
    kubeOptions(canary.command(name).description(description).argument('<policy>')).action(
      async (policy, opts) => setExit(await (await import('./canary.js'))[run](policy, opts, io)),
    );
  kubeOptions(
    canary
      .command('watch')
      .description(
        'follow a progressive run until it ends: exit 0 when promoted (or every step passed), 3 when rolled back',
      )
      .argument('<policy>')
      .addOption(durationOption('--interval <duration>', 'how often to look', 60_000, '1s')),
  ).action(async (policy, opts) =>
    setExit(await (await import('./canary.js')).canaryWatchCommand(policy, opts, io)),
  );
}
