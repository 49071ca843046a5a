/**
 * What the command definitions (cli/*-command.ts) share: flags that take the same values
 * everywhere, and parsers that check numbers and durations where they are parsed.
 */
import proxyAddr from '@fastify/proxy-addr';
import { type Command, InvalidArgumentError, Option } from 'commander';
import { CONTROLLER_MODES } from '../controllers/backends/backend.js';
import { parseDurationMs } from '../core/common/duration.js';
import {
  DEFAULT_ISTIO_ROOT_NAMESPACE,
  DEFAULT_TOKEN_GATEWAY_SELECTOR,
} from '../core/istio/request-authentication.js';
import type { CliIO } from './io.js';
import type { Settings } from './settings.js';

/** What each command definition is handed: where output goes, how the exit code is set, the environment read once. */
export interface CommandContext {
  io: CliIO;
  setExit: (code: number) => void;
  settings: Settings;
}

export const collect = (value: string, previous: string[]) => [...previous, value];

/**
 * Number and duration flags are checked where they are parsed: a bad value exits 2 naming the
 * flag (commander's "option '--port <port>' argument 'x' is invalid"), never a NaN port or a
 * timer that overflows. Values stay strings for the commands that read them.
 */
export function integerIn(min: number, max: number, what: string) {
  return (value: string) => {
    const n = Number(value);
    if (!/^\d+$/.test(value) || n < min || n > max)
      throw new InvalidArgumentError(`expected ${what}, an integer from ${min} to ${max}.`);
    return value;
  };
}
export const port = integerIn(0, 65535, 'a port');
export function trustProxyValue(value: string): string {
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
export function durationOption(flags: string, description: string, maxMs: number, fallback: string) {
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

export function fileOption() {
  return new Option('-f, --file <path>', 'a YAML/JSON file or a folder of them (repeatable)')
    .argParser(collect)
    .default([])
    .makeOptionMandatory();
}

/** --mode: which backend carries policies out (controllers/backends/ has one per mode). */
export function modeOption(description: string) {
  return new Option('--mode <mode>', description).choices(CONTROLLER_MODES).default('istio');
}

export function outputOption(choices: string[], fallback: string) {
  return new Option('-o, --output <format>', 'output format').choices(choices).default(fallback);
}

/** Mesh mode's RequestAuthentication for requireToken (cli/token.ts), for render and the controller. */
export function tokenAuthenticationOptions(c: Command, verb: string): void {
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

/** `-n` and `--kubeconfig`, for the commands that use the caller's kubeconfig. */
export const kubeOptions = (c: Command) =>
  c
    .option('-n, --namespace <ns>', 'namespace', 'default')
    .option('--kubeconfig <path>', 'kubeconfig file (default: $KUBECONFIG or ~/.kube/config)');
