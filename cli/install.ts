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
import { backendFor, type ControllerMode } from '../controllers/backends/index.js';
import { formatProblem, problem } from '../core/common/errors.js';
import { customResourceDefinitions } from '../core/resources/crds.js';
import type { TokenJwks } from '../core/tokens/keys.js';
import { type CliIO, EXIT_INVALID, EXIT_OK } from './io.js';
import { formatObjects } from './output.js';
import type { Settings } from './settings.js';
import { readTokenJwks } from './token.js';

export interface InstallOptions {
  mode: ControllerMode;
  image?: string;
  /** A Secret whose key `url` holds the Redis URL (never in args, where `ps` shows it). */
  redisSecret?: string;
  /** The public keys of intercept tokens, as a JWKS file (`switchyard token-jwks`). */
  tokenJwks?: string;
  /** Watch only these namespaces, with Roles there instead of ClusterRoles (empty: all). */
  namespace?: string[];
  output: string;
}

const TOKEN_JWKS_CONFIGMAP = 'switchyard-token-jwks';
const TOKEN_JWKS_DIR = '/etc/switchyard/tokens';

type Container = { image?: string; args?: string[]; env?: object[]; volumeMounts?: object[] };
type Manifest = {
  kind: string;
  metadata: { name: string; namespace?: string };
  rules?: { resources: string[] }[];
  roleRef?: { kind: string; name: string };
  spec?: { template?: { spec?: { containers?: Container[]; volumes?: object[] } } };
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

/**
 * The token JWKS as a ConfigMap, mounted into whichever part verifies tokens: the controller in mesh
 * mode (it keeps the RequestAuthentication), the gateway without a mesh. Public keys only: a
 * ConfigMap is fine, and `--token-jwks` refuses a file with a private key.
 */
function withTokenJwks(objects: Manifest[], mode: ControllerMode, jwks: TokenJwks): object[] {
  const verifier = `switchyard-${backendFor(mode).tokensCheckedBy}`;
  const deployment = objects.find((o) => o.kind === 'Deployment' && o.metadata.name === verifier);
  const pod = deployment?.spec?.template?.spec;
  const container = pod?.containers?.[0];
  if (!pod || !container) throw new Error(`deploy/install has no ${verifier} Deployment`);
  container.args = [...(container.args ?? []), '--token-jwks', `${TOKEN_JWKS_DIR}/jwks.json`];
  container.volumeMounts = [
    ...(container.volumeMounts ?? []),
    { name: 'token-jwks', mountPath: TOKEN_JWKS_DIR, readOnly: true },
  ];
  pod.volumes = [...(pod.volumes ?? []), { name: 'token-jwks', configMap: { name: TOKEN_JWKS_CONFIGMAP } }];
  return [
    {
      apiVersion: 'v1',
      kind: 'ConfigMap',
      metadata: {
        name: TOKEN_JWKS_CONFIGMAP,
        namespace: 'switchyard-system',
        labels: { 'app.kubernetes.io/part-of': 'switchyard' },
      },
      data: { 'jwks.json': `${JSON.stringify(jwks, null, 2)}\n` },
    },
    ...objects,
  ];
}

export function installManifests(
  opts: Omit<InstallOptions, 'output' | 'tokenJwks'>,
  jwks?: TokenJwks,
): object[] {
  const profile = backendFor(opts.mode).install;
  const files = ['rbac.yaml', profile.rbac, 'controller.yaml', ...profile.parts];
  const namespaces = opts.namespace ?? [];
  const objects = scopeRbac(files.flatMap(readManifests), namespaces);
  const namespaceArgs = namespaces.flatMap((ns) => ['--namespace', ns]);
  for (const o of objects) {
    const container = o.kind === 'Deployment' ? o.spec?.template?.spec?.containers?.[0] : undefined;
    if (!container) continue;
    if (opts.image) container.image = opts.image;
    if (o.metadata.name === 'switchyard-gateway') {
      const [command, kube, ...rest] = container.args ?? [];
      container.args = [command as string, kube as string, ...namespaceArgs, ...rest];
    }
    if (o.metadata.name === 'switchyard-controller') {
      container.args = (container.args ?? []).map((a, i, all) => (all[i - 1] === '--mode' ? opts.mode : a));
      container.args.push(...namespaceArgs, ...profile.controllerArgs);
    }
    if (o.metadata.name === 'switchyard-gateway' && opts.redisSecret)
      container.env = [
        ...(container.env ?? []),
        { name: 'REDIS_URL', valueFrom: { secretKeyRef: { name: opts.redisSecret, key: 'url' } } },
      ];
  }
  return [...customResourceDefinitions(), ...(jwks ? withTokenJwks(objects, opts.mode, jwks) : objects)];
}

/** Kinds a Role cannot grant: their ClusterRoles stay cluster-wide whatever is watched. */
const CLUSTER_SCOPED_RESOURCES = new Set(['namespaces', 'customresourcedefinitions']);

/**
 * Watching only some namespaces, each ClusterRole of namespaced kinds becomes a Role of the same
 * name and rules in every one of them, and its ClusterRoleBinding a RoleBinding there: the
 * controller and the gateway can then touch nothing outside the namespaces they were given.
 */
function scopeRbac(objects: Manifest[], namespaces: string[]): Manifest[] {
  if (namespaces.length === 0) return objects;
  const clusterWide = (name: string) =>
    objects.some(
      (o) =>
        o.kind === 'ClusterRole' &&
        o.metadata.name === name &&
        o.rules?.some((r) => r.resources.some((res) => CLUSTER_SCOPED_RESOURCES.has(res))),
    );
  return objects.flatMap((o) => {
    const scoped =
      (o.kind === 'ClusterRole' && !clusterWide(o.metadata.name)) ||
      (o.kind === 'ClusterRoleBinding' && !clusterWide(o.roleRef?.name ?? ''));
    if (!scoped) return [o];
    return namespaces.map((namespace) => {
      const copy = structuredClone(o);
      copy.kind = o.kind === 'ClusterRole' ? 'Role' : 'RoleBinding';
      const { name, ...rest } = copy.metadata;
      copy.metadata = { name, namespace, ...rest };
      if (copy.roleRef) copy.roleRef.kind = 'Role';
      return copy;
    });
  });
}

export function installCommand(opts: InstallOptions, io: CliIO, settings: Settings): number {
  if (opts.tokenJwks && backendFor(opts.mode).tokensCheckedBy === 'none') {
    io.stderr(
      `${formatProblem(problem('SY_BAD_REQUEST', `--token-jwks: --mode ${opts.mode} does not carry intercept tokens yet (docs/gateway-api.md); leave the keys out`))}\n`,
    );
    return EXIT_INVALID;
  }
  const jwks = readTokenJwks(opts.tokenJwks, io, settings);
  if (typeof jwks === 'number') return jwks;
  io.stdout(formatObjects(installManifests(opts, jwks), opts.output));
  return EXIT_OK;
}
