import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { backendFor, type ControllerMode } from '../controllers/backends/index.js';
import { prometheusReader } from '../controllers/canary-metrics.js';
import { parseDurationMs } from '../core/common/duration.js';
import { formatProblem, isProblem, problem } from '../core/common/errors.js';
import { createLogger } from '../core/common/logger.js';
import { kubeConfigFrom } from '../kube/client.js';
import { githubClients } from '../pr-bot/github-client.js';
import { redisDeliveryLog } from '../pr-bot/webhook-deliveries.js';
import { waitForShutdown } from './gateway.js';
import { type CliIO, EXIT_INTERNAL, EXIT_INVALID, EXIT_OK } from './io.js';
import { connectRedis } from './redis.js';
import type { Settings } from './settings.js';
import { startController } from './start-controller.js';
import { type TokenAuthenticationFlags, tokenAuthenticationOf } from './token.js';

export interface ControllerCliOptions extends TokenAuthenticationFlags {
  kubeconfig?: string;
  mode: ControllerMode;
  namespace: string[];
  port: string;
  workers: string;
  leaderElect: boolean;
  leaseNamespace: string;
  leaseDuration: string;
  githubHoldLimit: string;
  prometheus?: string;
  meshMetrics: 'istio' | 'envoy';
  logLevel: string;
}

export async function controllerCommand(
  opts: ControllerCliOptions,
  io: CliIO,
  settings: Settings,
): Promise<number> {
  let leaseMs: number;
  try {
    leaseMs = parseDurationMs(opts.leaseDuration);
  } catch {
    io.stderr(
      `${formatProblem(problem('SY_BAD_REQUEST', `--lease-duration ${opts.leaseDuration}: expected a duration such as 15s`))}\n`,
    );
    return EXIT_INVALID;
  }
  // KUBECONFIG / in-cluster ServiceAccount unless --kubeconfig names a file.
  const kubeconfig = kubeConfigFrom(opts.kubeconfig ? readFileSync(opts.kubeconfig, 'utf8') : undefined);
  const logger = createLogger({ level: opts.logLevel });
  // From the environment or a mounted file, never a flag (flags show in `ps`).
  const githubWebhookSecret = settings.githubWebhookSecret();
  const github = settings.github();
  if (isProblem(github)) {
    io.stderr(`${formatProblem(github)}\n`);
    return EXIT_INVALID;
  }
  const tokens = controllerTokens(opts, io, settings);
  if (typeof tokens === 'number') return tokens;
  let lost = false;
  const running = await startController({
    kubeconfig,
    logger,
    mode: opts.mode,
    namespaces: opts.namespace,
    port: Number(opts.port),
    ...(githubWebhookSecret ? { githubWebhookSecret } : {}),
    ...(github ? { github: githubClients(github) } : {}),
    // Redeliveries are recognised by every replica when the delivery ids are kept in Redis.
    ...(settings.redisUrl
      ? {
          deliveries: redisDeliveryLog(
            connectRedis(
              settings.redisUrl,
              logger,
              undefined,
              'webhook deliveries are remembered by each replica until it is back',
            ),
          ),
        }
      : {}),
    workers: Number(opts.workers),
    ...(opts.prometheus ? { metrics: prometheusReader(opts.prometheus) } : {}),
    meshMetrics: opts.meshMetrics,
    tokenAuthentication: { namespace: opts.istioRootNamespace, ...(tokens ? { tokens } : {}) },
    githubHoldLimitMs: parseDurationMs(opts.githubHoldLimit),
    ...(opts.leaderElect
      ? {
          leaderElection: {
            namespace: opts.leaseNamespace,
            name: `switchyard-controller-${opts.mode}`,
            // The pod name in a cluster (HOSTNAME), made unique for two processes on one machine.
            identity: `${hostname()}-${process.pid}-${randomBytes(3).toString('hex')}`,
            leaseDurationMs: leaseMs,
            renewDeadlineMs: Math.round(leaseMs * (2 / 3)),
            retryPeriodMs: Math.max(200, Math.round(leaseMs / 7.5)),
          },
          // A replica that lost its Lease may hold stale work: exit and let Kubernetes restart it.
          onLeadershipLost: () => {
            lost = true;
            process.kill(process.pid, 'SIGTERM');
          },
        }
      : {}),
  });
  await waitForShutdown({ close: () => running.stop() }, (m) => io.stderr(`${m}\n`));
  return lost ? EXIT_INTERNAL : EXIT_OK;
}

/**
 * The intercept-token keys the controller keeps the mesh's token rules with, when its backend
 * checks tokens there; an exit code when keys are given to a mode that cannot use them.
 */
function controllerTokens(opts: ControllerCliOptions, io: CliIO, settings: Settings) {
  const checkedBy = backendFor(opts.mode).tokensCheckedBy;
  if (checkedBy === 'none' && opts.tokenJwks) {
    io.stderr(
      `${formatProblem(problem('SY_BAD_REQUEST', `--token-jwks: --mode ${opts.mode} does not carry intercept tokens yet (docs/gateway-api.md); leave the keys out`))}\n`,
    );
    return EXIT_INVALID;
  }
  return checkedBy === 'controller' ? tokenAuthenticationOf(opts, io, settings) : undefined;
}
