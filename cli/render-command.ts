/** `switchyard render`: the flags; cli/render.ts runs it (loaded only then). */
import { type Command, Option } from 'commander';
import {
  type CommandContext,
  collect,
  fileOption,
  modeOption,
  outputOption,
  tokenAuthenticationOptions,
} from './options.js';

export function defineRender(program: Command, { io, setExit, settings }: CommandContext): void {
  const render = program
    .command('render')
    .description(
      'compile TrafficPolicies and Previews into what the controller would write: Istio objects (VirtualService, DestinationRule, EnvoyFilter), Gateway API routes, or per-version Services',
    )
    .addOption(fileOption())
    .addOption(modeOption('what to write, as the controller of that mode would'))
    .addOption(
      new Option(
        '--gateway-api-channel <channel>',
        'gateway-api mode: the channel of the Gateway API CRDs on the cluster (retries need experimental)',
      )
        .choices(['standard', 'experimental'])
        .default('standard'),
    )
    .option(
      '--envoy-gateway',
      "gateway-api mode: the cluster has Envoy Gateway's CRDs; write rate limits as its BackendTrafficPolicy",
      false,
    )
    .option(
      '--token-gateway <namespace/name>',
      'with --envoy-gateway and --token-jwks: a Gateway that verifies intercept tokens (its SecurityPolicy and ClientTrafficPolicy are written; repeatable)',
      collect,
      [],
    )
    .addOption(outputOption(['yaml', 'json'], 'yaml'))
    .option(
      '--out-dir <dir>',
      'write one file per object to <dir>/<namespace>/<kind>-<name>.yaml (for GitOps)',
    )
    .option(
      '--ambient-namespace <ns>',
      'a namespace in Istio ambient mode (repeatable): rate limits there are an error',
      collect,
      [],
    )
    .option('--cluster-domain <domain>', 'the cluster DNS domain', 'cluster.local');
  tokenAuthenticationOptions(render, 'also write');
  render.action(async (opts) =>
    setExit(await (await import('./render.js')).renderCommand(opts, io, settings)),
  );
}
