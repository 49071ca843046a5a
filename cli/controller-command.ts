/** `switchyard controller`: the flags; cli/controller.ts runs it (loaded only then). */
import { type Command, Option } from 'commander';
import {
  type CommandContext,
  collect,
  durationOption,
  integerIn,
  modeOption,
  port,
  tokenAuthenticationOptions,
} from './options.js';

export function defineController(program: Command, { io, setExit, settings }: CommandContext): void {
  const controller = program
    .command('controller')
    .description(
      'run in the cluster: TrafficPolicies into Istio objects or per-version Services, Previews into Deployments',
    )
    .option(
      '--kubeconfig <path>',
      'kubeconfig file (default: $KUBECONFIG, ~/.kube/config or the in-cluster ServiceAccount)',
    )
    .addOption(modeOption('what to write'))
    .option('-n, --namespace <ns>', 'watch only this namespace (repeatable; default all)', collect, [])
    .option('-p, --port <port>', 'HTTP port: /healthz /readyz /metrics', port, '8081')
    .option(
      '--workers <n>',
      'reconciles in flight per queue (policies, previews)',
      integerIn(1, 256, 'a worker count'),
      '8',
    )
    .option('--no-leader-elect', 'do not campaign for the leader Lease (only for a single replica)')
    .option(
      '--lease-namespace <ns>',
      'namespace of the leader Lease',
      settings.podNamespace ?? 'switchyard-system',
    )
    .addOption(
      durationOption(
        '--github-hold-limit <duration>',
        'how long a removed preview waits for an unreachable GitHub before it is let go',
        30 * 24 * 3_600_000,
        '24h',
      ),
    )
    .addOption(
      durationOption('--lease-duration <duration>', 'how long a Lease holds without renewal', 300_000, '15s'),
    )
    .option(
      '--prometheus <url>',
      'the Prometheus whose HTTP API progressive canary runs read their analysis from (e.g. http://prometheus.monitoring:9090)',
    )
    .addOption(
      new Option(
        '--mesh-metrics <series>',
        "mesh mode: the built-in analysis metrics read Istio's standard metrics (istio) or the proxies' own Envoy cluster statistics (envoy)",
      )
        .choices(['istio', 'envoy'])
        .default('istio'),
    )
    .option('--log-level <level>', 'pino log level', settings.logLevel ?? 'info');
  tokenAuthenticationOptions(controller, 'keep');
  controller.action(async (opts) =>
    setExit(await (await import('./controller.js')).controllerCommand(opts, io, settings)),
  );
}
