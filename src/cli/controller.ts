import { readFileSync } from 'node:fs';
import { kubeConfigFrom } from '../../controllers/kube.js';
import { startController } from '../../controllers/manager.js';
import { formatProblem, problem } from '../core/errors.js';
import { createLogger } from '../core/logger.js';
import { waitForShutdown } from './gateway.js';
import { type CliIO, EXIT_INVALID, EXIT_OK } from './io.js';

export interface ControllerCliOptions {
  kubeconfig?: string;
  mode: string;
  namespace: string[];
  port: string;
  logLevel: string;
}

export async function controllerCommand(opts: ControllerCliOptions, io: CliIO): Promise<number> {
  if (opts.mode !== 'istio') {
    io.stderr(
      `${formatProblem(problem('SY_BAD_REQUEST', `--mode ${opts.mode}: only istio is available in this version; gateway mode (per-version Services for \`switchyard gateway --kube\`) is not built yet`))}\n`,
    );
    return EXIT_INVALID;
  }
  // KUBECONFIG / in-cluster ServiceAccount unless --kubeconfig names a file.
  const kubeconfig = kubeConfigFrom(opts.kubeconfig ? readFileSync(opts.kubeconfig, 'utf8') : undefined);
  const running = await startController({
    kubeconfig,
    logger: createLogger({ level: opts.logLevel }),
    namespaces: opts.namespace,
    port: Number(opts.port),
  });
  await waitForShutdown({ close: () => running.stop() }, (m) => io.stderr(`${m}\n`));
  return EXIT_OK;
}
