/**
 * The `switchyard` command. Exit codes (docs/cli.md): 0 success, 2 invalid input (one line per
 * problem: `file:document N: spec.path: what was expected`), 1 an internal failure. Never a stack
 * trace for bad input; SWITCHYARD_DEBUG=1 adds one for internal failures. Each command's module is
 * loaded when that command runs: `validate` and `render` never load the Kubernetes client (0.4 s of
 * start-up; load-tests/README.md, "Configuration files").
 */
import proxyAddr from '@fastify/proxy-addr';
import { Command, CommanderError, InvalidArgumentError, Option } from 'commander';
import { parseDurationMs } from '../src/core/duration.js';
import { formatProblem, problem } from '../src/core/errors.js';
import {
  DEFAULT_ISTIO_ROOT_NAMESPACE,
  DEFAULT_TOKEN_GATEWAY_SELECTOR,
} from '../src/istio/request-authentication.js';
import { type CliIO, EXIT_INTERNAL, EXIT_INVALID, processIO } from './io.js';
import { readSettings, type Settings } from './settings.js';

const collect = (value: string, previous: string[]) => [...previous, value];

/**
 * Number and duration flags are checked where they are parsed: a bad value exits 2 naming the
 * flag (commander's "option '--port <port>' argument 'x' is invalid"), never a NaN port or a
 * timer that overflows. Values stay strings for the commands that read them.
 */
function integerIn(min: number, max: number, what: string) {
  return (value: string) => {
    const n = Number(value);
    if (!/^\d+$/.test(value) || n < min || n > max)
      throw new InvalidArgumentError(`expected ${what}, an integer from ${min} to ${max}.`);
    return value;
  };
}
const port = integerIn(0, 65535, 'a port');
function trustProxyValue(value: string): string {
  if (/^(true|false|\d+)$/.test(value)) return value;
  try {
    proxyAddr.compile(value.split(',').map((s) => s.trim()));
  } catch (e) {
    throw new InvalidArgumentError(
      `expected true, a hop count, or addresses/CIDRs separated by "," (${(e as Error).message}).`,
    );
  }
  return value;
}
/** `--<name> <duration>`, checked above 0 and at most `maxMs`. */
function durationOption(flags: string, description: string, maxMs: number, fallback: string) {
  return new Option(flags, description).argParser(durationUpTo(maxMs)).default(fallback);
}
function durationUpTo(maxMs: number) {
  return (value: string) => {
    let ms: number;
    try {
      ms = parseDurationMs(value);
    } catch {
      throw new InvalidArgumentError('expected a duration such as 100ms, 15s or 1m.');
    }
    if (ms <= 0 || ms > maxMs)
      throw new InvalidArgumentError(`expected a duration above 0 and at most ${maxMs / 1000}s.`);
    return value;
  };
}

function fileOption() {
  return new Option('-f, --file <path>', 'a YAML/JSON file or a folder of them (repeatable)')
    .argParser(collect)
    .default([])
    .makeOptionMandatory();
}

function outputOption(choices: string[], fallback: string) {
  return new Option('-o, --output <format>', 'output format').choices(choices).default(fallback);
}

/** Mesh mode's RequestAuthentication for requireToken (cli/token.ts), for render and the controller. */
function tokenAuthenticationOptions(c: Command, verb: string): void {
  c.option(
    '--token-jwks <file>',
    `public keys (JWKS, from switchyard token-jwks) for intercept tokens: ${verb} the RequestAuthentication that has the ingress gateway verify them`,
  )
    .option(
      '--istio-root-namespace <ns>',
      "Istio's root namespace, where that RequestAuthentication lives",
      DEFAULT_ISTIO_ROOT_NAMESPACE,
    )
    .option(
      '--token-gateway-selector <labels>',
      'labels of the ingress gateway pods that verify tokens (key=value, comma-separated)',
      Object.entries(DEFAULT_TOKEN_GATEWAY_SELECTOR)
        .map(([k, v]) => `${k}=${v}`)
        .join(','),
    );
}

export function buildProgram(
  io: CliIO,
  setExit: (code: number) => void,
  settings: Settings = readSettings(process.env),
): Command {
  const program = new Command('switchyard')
    .description(
      'Previews, intercepts, canaries and rate limits for Kubernetes, with Istio or without a mesh',
    )
    .version(settings.version)
    .exitOverride()
    .configureOutput({ writeOut: io.stdout, writeErr: io.stderr })
    .showHelpAfterError('(run with --help for usage)');

  const render = program
    .command('render')
    .description(
      'compile TrafficPolicies and Previews into Istio objects (VirtualService, DestinationRule, EnvoyFilter)',
    )
    .addOption(fileOption())
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

  program
    .command('validate')
    .description('check TrafficPolicies and Previews without writing anything')
    .addOption(fileOption())
    .action(async (opts) => setExit(await (await import('./validate.js')).validateCommand(opts, io)));

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

  program
    .command('demo')
    .description('run the gateway with three built-in upstreams and a demo policy; prints curl lines to try')
    .option('-p, --port <port>', 'traffic port', port, '8080')
    .option('--admin-port <port>', 'admin port', port, '9901')
    .option(
      '--host <address>',
      'address both ports listen on: loopback unless set (0.0.0.0 in a container, for `podman run -p`)',
      '127.0.0.1',
    )
    .option('--log-level <level>', 'pino log level', settings.logLevel ?? 'warn')
    .action(async (opts) => setExit(await (await import('./demo.js')).demoCommand(opts, io)));

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

  const controller = program
    .command('controller')
    .description(
      'run in the cluster: TrafficPolicies into Istio objects or per-version Services, Previews into Deployments',
    )
    .option(
      '--kubeconfig <path>',
      'kubeconfig file (default: $KUBECONFIG, ~/.kube/config or the in-cluster ServiceAccount)',
    )
    .addOption(new Option('--mode <mode>', 'what to write').choices(['istio', 'gateway']).default('istio'))
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

  const canary = program
    .command('canary')
    .description("shift a policy's canary traffic (uses the kubeconfig)");
  const kubeOptions = (c: Command) =>
    c
      .option('-n, --namespace <ns>', 'namespace', 'default')
      .option('--kubeconfig <path>', 'kubeconfig file (default: $KUBECONFIG or ~/.kube/config)');
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
  kubeOptions(
    canary
      .command('promote')
      .description('the canary becomes stable; no canary afterwards')
      .argument('<policy>'),
  ).action(async (policy, opts) =>
    setExit(await (await import('./canary.js')).canaryPromoteCommand(policy, opts, io)),
  );
  kubeOptions(
    canary
      .command('abort')
      .description(
        'all traffic back to stable: weight 0, sticky cookies no longer hold clients (a progressive run is rolled back)',
      )
      .argument('<policy>'),
  ).action(async (policy, opts) =>
    setExit(await (await import('./canary.js')).canaryAbortCommand(policy, opts, io)),
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
  kubeOptions(
    canary
      .command('resume')
      .description('move a progressive run on: lift a `canary pause`, or end a step without a pause')
      .argument('<policy>'),
  ).action(async (policy, opts) =>
    setExit(await (await import('./canary.js')).canaryResumeCommand(policy, opts, io)),
  );
  kubeOptions(
    canary
      .command('pause')
      .description('hold a progressive run at its step until `canary resume` (analyses go on)')
      .argument('<policy>'),
  ).action(async (policy, opts) =>
    setExit(await (await import('./canary.js')).canaryPauseCommand(policy, opts, io)),
  );

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

  kubeOptions(
    program
      .command('status')
      .description('every policy: stable, canary and weight, intercepts, previews, conditions'),
  )
    .addOption(outputOption(['text', 'json', 'yaml'], 'text'))
    .action(async (opts) => setExit(await (await import('./status.js')).statusCommand(opts, io)));

  program
    .command('install')
    .description('print everything a cluster needs (CRDs, RBAC, controller, gateway) as one manifest')
    .addOption(
      new Option('--mode <mode>', 'mesh (istio) or no mesh (gateway)')
        .choices(['istio', 'gateway'])
        .default('istio'),
    )
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

  program
    .command('crds')
    .description('print the CustomResourceDefinitions for TrafficPolicy and Preview')
    .addOption(outputOption(['yaml', 'json'], 'yaml'))
    .action(async (opts) => setExit((await import('./crds.js')).crdsCommand(opts, io)));

  return program;
}

export async function runCli(argv: readonly string[], io: CliIO): Promise<number> {
  let code = 0;
  const settings = readSettings(process.env);
  const program = buildProgram(
    io,
    (c) => {
      code = c;
    },
    settings,
  );
  try {
    await program.parseAsync([...argv], { from: 'user' });
    return code;
  } catch (e) {
    if (e instanceof CommanderError) {
      // --help and --version end here with exit code 0; a usage error is invalid input.
      return e.exitCode === 0 ? 0 : EXIT_INVALID;
    }
    io.stderr(
      `${formatProblem(problem('SY_INTERNAL', `internal error: ${e instanceof Error ? e.message : String(e)}`))}\n`,
    );
    if (settings.debug && e instanceof Error && e.stack) io.stderr(`${e.stack}\n`);
    return EXIT_INTERNAL;
  }
}

export async function main(): Promise<void> {
  // A reader that stops early (`switchyard render | head`) closes the pipe: stop quietly, as Unix
  // tools do, instead of an unhandled EPIPE.
  process.stdout.on('error', (e: NodeJS.ErrnoException) => {
    if (e.code === 'EPIPE') process.exit(process.exitCode ?? 0);
    throw e;
  });
  process.exitCode = await runCli(process.argv.slice(2), processIO());
}
