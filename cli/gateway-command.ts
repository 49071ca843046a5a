/** `switchyard gateway`: the flags; cli/gateway.ts runs it (loaded only then). */
import type { Command } from 'commander';
import { type CommandContext, collect, durationOption, integerIn, port, trustProxyValue } from './options.js';

export function defineGateway(program: Command, { io, setExit, settings }: CommandContext): void {
  program
    .command('gateway')
    .description(
      'serve traffic by the TrafficPolicies and Previews in files, or in the cluster (--kube), without a mesh',
    )
    .option(
      '-c, --config <path>',
      'YAML file or folder with policies, previews and a GatewayConfig (repeatable)',
      collect,
      [],
    )
    .option('--kube', "follow the cluster's TrafficPolicies, Previews and per-version Services instead")
    .option('-n, --namespace <ns>', 'with --kube: only this namespace (repeatable; default all)', collect, [])
    .option('--kubeconfig <path>', 'with --kube: kubeconfig file (default: $KUBECONFIG or in-cluster)')
    .option('-p, --port <port>', 'traffic port', port, '8080')
    .option('--admin-port <port>', 'admin port: /healthz /readyz /metrics /plan', port, '9901')
    .option('--host <address>', 'address the traffic port listens on', '0.0.0.0')
    .option(
      '--workers <n>',
      'gateway processes sharing the traffic port, one per core (default: the cores this process may use, as its cgroup CPU limit allows)',
      integerIn(1, 256, 'a worker count'),
    )
    .option(
      '--admin-host <address>',
      'address the admin port (/plan, /metrics) listens on: loopback unless set (a cluster sets 0.0.0.0 for probes)',
      '127.0.0.1',
    )
    .option(
      '--redis <url>',
      'count rate limits in Redis, shared by every replica (default: $REDIS_URL, else in memory)',
    )
    .addOption(
      durationOption(
        '--redis-timeout <duration>',
        'the longest a request waits for Redis; past it, rate limits count in memory for a second',
        10_000,
        '100ms',
      ),
    )
    .option(
      '--trust-proxy <value>',
      'believe x-forwarded-* from these proxies: true, a hop count, or addresses/CIDRs separated by ","',
      trustProxyValue,
    )
    .option(
      '--mirror-host-suffix <suffix>',
      'append to the Host of mirrored copies (Istio before 1.28 used "-shadow")',
    )
    .addOption(
      durationOption(
        '--drain-timeout <duration>',
        'on SIGTERM, how long requests in flight and WebSockets may finish before they are closed',
        600_000,
        '20s',
      ),
    )
    .option(
      '--token-jwks <file>',
      'public keys (JWKS, from switchyard token-jwks) that intercept tokens are verified with; without it, token routes never match',
    )
    .option(
      '--tls-cert <file>',
      'PEM certificate (chain) for TLS on the traffic port: HTTP/2 and HTTP/1.1 by ALPN (without it: cleartext HTTP/1.1 and h2c)',
    )
    .option('--tls-key <file>', 'PEM private key of --tls-cert')
    .option('--log-level <level>', 'pino log level', settings.logLevel ?? 'info')
    .action(async (opts) => setExit(await (await import('./gateway.js')).gatewayCommand(opts, io, settings)));
}
