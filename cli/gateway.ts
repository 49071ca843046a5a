import cluster from 'node:cluster';
import { readFileSync } from 'node:fs';
import { createSecureContext } from 'node:tls';
import { parseDurationMs } from '../core/common/duration.js';
import { formatProblem, problem } from '../core/common/errors.js';
import { createLogger } from '../core/common/logger.js';
import type { TokenJwks } from '../core/tokens/keys.js';
import type { TrustProxy } from '../gateway/client-address.js';
import { loadGatewayFiles } from '../gateway/config-file.js';
import { InvalidConfigError, type RunningGateway, runGateway } from '../gateway/start.js';
import type { TrafficTls } from '../gateway/traffic-server.js';
import { runGatewayPrimary, serveAsWorker, usableCores } from '../gateway/workers.js';
import { kubeConfigFrom } from '../kube/client.js';
import { type CliIO, EXIT_INVALID, EXIT_OK } from './io.js';
import { connectRedis } from './redis.js';
import type { Settings } from './settings.js';
import { readTokenJwks } from './token.js';

export interface GatewayCliOptions {
  config: string[];
  kube?: boolean;
  namespace?: string[];
  kubeconfig?: string;
  port: string;
  adminPort: string;
  host: string;
  adminHost: string;
  redis?: string;
  redisTimeout?: string;
  drainTimeout?: string;
  trustProxy?: string;
  mirrorHostSuffix?: string;
  tokenJwks?: string;
  /** PEM files: TLS on the traffic port, HTTP/2 and HTTP/1.1 by ALPN. */
  tlsCert?: string;
  tlsKey?: string;
  /** Processes sharing the traffic port (default: the cores this process may use). */
  workers?: string;
  logLevel: string;
}

/** Resolves when SIGTERM or SIGINT has drained the gateway. */
export async function waitForShutdown(
  running: { close(): Promise<void> },
  log: (msg: string) => void,
  signal = nextStopSignal(),
): Promise<void> {
  log(`${await signal}: no longer accepting connections, finishing requests in flight`);
  await running.close();
}

/** The first SIGTERM or SIGINT from now on; `cancel()` gives the signals back (nothing started). */
function nextStopSignal(): Promise<string> & { cancel(): void } {
  let cancel: () => void = () => {};
  const signal = new Promise<string>((resolve) => {
    const on = (name: string) => () => {
      cancel();
      resolve(name);
    };
    const onTerm = on('SIGTERM');
    const onInt = on('SIGINT');
    cancel = () => {
      process.off('SIGTERM', onTerm);
      process.off('SIGINT', onInt);
    };
    process.once('SIGTERM', onTerm);
    process.once('SIGINT', onInt);
  });
  return Object.assign(signal, { cancel: () => cancel() });
}

/** `--trust-proxy`: true/false, a hop count, or addresses/CIDRs separated by ",". */
function trustProxy(value: string | undefined): TrustProxy | undefined {
  if (value === undefined) return undefined;
  if (value === 'true' || value === 'false') return value === 'true';
  if (/^\d+$/.test(value)) return Number(value);
  return value.split(',').map((s) => s.trim());
}

/**
 * What the flags and the environment ask for, checked before anything listens (and, with
 * --workers, before any worker starts, so a mistake is reported once): the token keys, or the
 * exit code after saying what is wrong.
 */
function checkGatewayFlags(
  opts: GatewayCliOptions,
  io: CliIO,
  settings: Settings,
): { jwks?: TokenJwks; tls?: TrafficTls } | number {
  if (opts.kube ? opts.config.length > 0 : opts.config.length === 0) {
    io.stderr(
      `${formatProblem(problem('SY_BAD_REQUEST', 'give either --config FILE (repeatable) or --kube, not both and not neither'))}\n`,
    );
    return EXIT_INVALID;
  }
  const jwks = readTokenJwks(opts.tokenJwks, io, settings);
  if (typeof jwks === 'number') {
    io.stderr('the gateway did not start: fix the token keys above\n');
    return jwks;
  }
  const tls = readTls(opts, io);
  if (typeof tls === 'number') return tls;
  return { ...(jwks ? { jwks } : {}), ...(tls ? { tls } : {}) };
}

/** `--tls-cert` and `--tls-key`: both or neither, readable PEM that Node accepts as a pair. */
function readTls(opts: GatewayCliOptions, io: CliIO): TrafficTls | undefined | number {
  if (!opts.tlsCert && !opts.tlsKey) return undefined;
  const fail = (message: string) => {
    io.stderr(`${formatProblem(problem('SY_BAD_REQUEST', message))}\n`);
    return EXIT_INVALID;
  };
  if (!opts.tlsCert || !opts.tlsKey) return fail('give --tls-cert and --tls-key together (PEM files)');
  try {
    const tls = { cert: readFileSync(opts.tlsCert), key: readFileSync(opts.tlsKey) };
    createSecureContext(tls);
    return tls;
  } catch (e) {
    return fail(
      `--tls-cert ${opts.tlsCert} / --tls-key ${opts.tlsKey}: ${(e as Error).message} (expected a PEM certificate and its private key)`,
    );
  }
}

export async function startGatewayFromCli(
  opts: GatewayCliOptions,
  io: CliIO,
  settings: Settings,
): Promise<RunningGateway | number> {
  const logger = createLogger({ level: opts.logLevel });
  const checked = checkGatewayFlags(opts, io, settings);
  if (typeof checked === 'number') return checked;
  const { jwks, tls } = checked;
  const redisUrl = opts.redis ?? settings.redisUrl;
  try {
    const tp = trustProxy(opts.trustProxy);
    return await runGateway({
      config: opts.config,
      ...(opts.kube
        ? {
            kube: {
              kubeconfig: kubeConfigFrom(opts.kubeconfig ? readFileSync(opts.kubeconfig, 'utf8') : undefined),
              namespaces: opts.namespace ?? [],
            },
          }
        : {}),
      port: Number(opts.port),
      // A worker of --workers N has no admin port: the primary serves it.
      ...(cluster.isWorker ? { clusterWorker: true } : { adminPort: Number(opts.adminPort) }),
      host: opts.host,
      adminHost: opts.adminHost,
      logger,
      ...(redisUrl
        ? {
            openRedis: () =>
              connectRedis(
                redisUrl,
                logger,
                opts.redisTimeout ? parseDurationMs(opts.redisTimeout) : undefined,
              ),
          }
        : {}),
      ...(opts.drainTimeout ? { drainTimeoutMs: parseDurationMs(opts.drainTimeout) } : {}),
      ...(tp !== undefined ? { trustProxy: tp } : {}),
      ...(opts.mirrorHostSuffix ? { mirrorHostSuffix: opts.mirrorHostSuffix } : {}),
      ...(jwks ? { tokenJwks: jwks } : {}),
      ...(tls ? { tls } : {}),
    });
  } catch (e) {
    if (e instanceof InvalidConfigError) {
      for (const p of e.problems) io.stderr(`${formatProblem(p)}\n`);
      io.stderr('the gateway did not start: fix the configuration above\n');
      return EXIT_INVALID;
    }
    throw e;
  }
}

export async function gatewayCommand(
  opts: GatewayCliOptions,
  io: CliIO,
  settings: Settings,
): Promise<number> {
  const workers = opts.workers === undefined ? usableCores() : Number(opts.workers);
  if (workers > 1 && cluster.isPrimary) {
    // Flags and files are checked once here, so a mistake is reported once, not by every worker.
    const checked = checkGatewayFlags(opts, io, settings);
    if (typeof checked === 'number') return checked;
    if (!opts.kube) {
      const checked = await loadGatewayFiles(opts.config, 0, new Date());
      if (!checked.ok) {
        for (const p of checked.problems) io.stderr(`${formatProblem(p)}\n`);
        io.stderr('the gateway did not start: fix the configuration above\n');
        return EXIT_INVALID;
      }
    }
    // Listen for the signal before the workers start: a SIGTERM while they do (PID 1 in a
    // container ignores a signal it has no handler for) stops them as soon as they are up.
    const signal = nextStopSignal();
    const primary = await runGatewayPrimary({
      workers,
      adminPort: Number(opts.adminPort),
      adminHost: opts.adminHost,
      redis: Boolean(opts.redis || settings.redisUrl),
      logger: createLogger({ level: opts.logLevel }),
    });
    if ('exitCode' in primary) {
      signal.cancel();
      return primary.exitCode;
    }
    await waitForShutdown(primary, (m) => io.stderr(`${m}\n`), signal);
    return EXIT_OK;
  }
  const signal = nextStopSignal();
  const running = await startGatewayFromCli(opts, io, settings);
  if (typeof running === 'number') {
    signal.cancel();
    // A worker that cannot start lets go of the primary (whose IPC would keep it alive) and ends.
    if (cluster.isWorker && process.connected) process.disconnect?.();
    return running;
  }
  const worker = cluster.isWorker ? serveAsWorker(running) : undefined;
  await waitForShutdown(running, (m) => (worker ? undefined : io.stderr(`${m}\n`)), signal);
  worker?.drained();
  return EXIT_OK;
}
