/** `switchyard token, token-key and token-jwks`: the flags; cli/token.ts runs it (loaded only then). */
import { type Command, Option } from 'commander';
import type { CommandContext } from './options.js';

export function defineToken(program: Command, { io, setExit, settings }: CommandContext): void {
  program
    .command('token')
    .description('sign an intercept token for a requireToken route (key from SWITCHYARD_INTERCEPT_TOKEN_KEY)')
    .requiredOption('--policy <name>', 'the TrafficPolicy the token is for (its audience)')
    .option('-n, --namespace <ns>', 'the namespace of the policy', 'default')
    .option('--header <name>', 'the intercept header the token is sent in', 'x-switchyard-preview')
    .requiredOption('--value <value>', 'the value the token vouches for, e.g. pr-42')
    .option('--ttl <duration>', 'how long the token is valid (at most 168h)', '8h')
    .action(async (opts) => setExit(await (await import('./token.js')).tokenCommand(opts, io, settings)));

  program
    .command('token-key')
    .description('print a new private key (PEM) for signing intercept tokens: keep it secret')
    .addOption(
      new Option('--algorithm <alg>', 'the signature algorithm').choices(['ES256', 'EdDSA']).default('ES256'),
    )
    .action(async (opts) => setExit((await import('./token.js')).tokenKeyCommand(opts, io)));

  program
    .command('token-jwks')
    .description('print the public keys of these key files (PEM) as the JWKS gateways verify tokens with')
    .argument('<key-file...>', 'the current key first, then keys still accepted during a rotation')
    .action(async (files) => setExit(await (await import('./token.js')).tokenJwksCommand(files, io)));
}
