/**
 * `switchyard install [--mode istio|gateway]`: everything a cluster needs, as one manifest to pipe
 * into `kubectl apply --server-side -f -` or commit to a GitOps repository: the CRDs, the
 * ServiceAccounts and least-privilege RBAC of the mode, the controller (and in gateway mode the
 * gateway) with probes, resource requests and a PodDisruptionBudget. The pieces live in
 * deploy/install/, read from the installed package.
 */
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { parseAllDocuments } from 'yaml';
import { customResourceDefinitions } from '../src/resources/crds.js';
import { type CliIO, EXIT_OK } from './io.js';
import { formatObjects } from './output.js';

export type InstallMode = 'istio' | 'gateway';

export interface InstallOptions {
  mode: InstallMode;
  image?: string;
  /** A Secret whose key `url` holds the Redis URL (never in args, where `ps` shows it). */
  redisSecret?: string;
  output: string;
}

type Manifest = {
  kind: string;
  metadata: { name: string };
  spec?: {
    template?: { spec?: { containers?: { image?: string; args?: string[]; env?: object[] }[] } };
  };
};

/** deploy/install of this package (dist/cli or cli, one or two levels up). */
export function installDir(from = import.meta.dirname): string {
  for (let dir = from; dir !== dirname(dir); dir = dirname(dir)) {
    const candidate = join(dir, 'deploy', 'install');
    if (existsSync(join(candidate, 'rbac.yaml'))) return candidate;
  }
  throw new Error(`deploy/install not found above ${from}: the package is incomplete`);
}

function readManifests(file: string): Manifest[] {
  return parseAllDocuments(readFileSync(join(installDir(), file), 'utf8'))
    .map((d) => d.toJSON() as Manifest | null)
    .filter((d): d is Manifest => d !== null);
}

export function installManifests(opts: Omit<InstallOptions, 'output'>): object[] {
  const files = [
    'rbac.yaml',
    opts.mode === 'istio' ? 'rbac-istio.yaml' : 'rbac-gateway.yaml',
    'controller.yaml',
    ...(opts.mode === 'gateway' ? ['gateway.yaml'] : []),
  ];
  const objects = files.flatMap(readManifests);
  for (const o of objects) {
    const container = o.kind === 'Deployment' ? o.spec?.template?.spec?.containers?.[0] : undefined;
    if (!container) continue;
    if (opts.image) container.image = opts.image;
    if (o.metadata.name === 'switchyard-controller')
      container.args = (container.args ?? []).map((a, i, all) => (all[i - 1] === '--mode' ? opts.mode : a));
    if (o.metadata.name === 'switchyard-gateway' && opts.redisSecret)
      container.env = [
        ...(container.env ?? []),
        { name: 'REDIS_URL', valueFrom: { secretKeyRef: { name: opts.redisSecret, key: 'url' } } },
      ];
  }
  return [...customResourceDefinitions(), ...objects];
}

export function installCommand(opts: InstallOptions, io: CliIO): number {
  io.stdout(formatObjects(installManifests(opts), opts.output));
  return EXIT_OK;
}
