/** `switchyard install`: the flags; cli/install.ts runs it (loaded only then). */
import type { Command } from 'commander';
import { type CommandContext, collect, modeOption, outputOption } from './options.js';

export function defineInstall(program: Command, { io, setExit, settings }: CommandContext): void {
  program
    .command('install')
    .description('print everything a cluster needs (CRDs, RBAC, controller, gateway) as one manifest')
    .addOption(modeOption('mesh (istio) or no mesh (gateway)'))
    .option('--image <image>', 'the Switchyard image', undefined)
    .option(
      '--redis-secret <name>',
      "gateway mode: a Secret whose key 'url' is the Redis URL for shared rate limits",
    )
    .option(
      '--token-jwks <file>',
      'public keys of intercept tokens (switchyard token-jwks): a ConfigMap mounted into the controller (istio) or the gateway',
    )
    .option(
      '-n, --namespace <ns>',
      'watch only this namespace, with Roles there instead of ClusterRoles (repeatable; default all)',
      collect,
      [],
    )
    .addOption(outputOption(['yaml', 'json'], 'yaml'))
    .action(async (opts) => setExit((await import('./install.js')).installCommand(opts, io, settings)));
}
