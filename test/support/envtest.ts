/**
 * A real etcd + kube-apiserver for the tests (the controller-runtime envtest convention), RBAC on.
 * Binaries come from KUBEBUILDER_ASSETS, or are built once by test/envtest/build.sh from their Go
 * modules into .cache/envtest. Where neither is possible (no Go), the caller skips with one line;
 * under CI=true their absence is a failure.
 */
import { type ChildProcess, execFileSync, spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { unusedPort } from './upstreams.js';

const ROOT = join(import.meta.dirname, '..', '..');

/**
 * A folder of test-only binaries: the one `variable` names when it holds every file, else the one
 * `script` builds (once, cached; it prints the folder); undefined when Go is missing to build it.
 */
export function testBinaries(variable: string, files: string[], script: string): string | undefined {
  const fromEnv = process.env[variable];
  if (fromEnv && files.every((f) => existsSync(join(fromEnv, f)))) return fromEnv;
  if (spawnSync('go', ['version']).status !== 0) return undefined;
  return execFileSync('bash', [join(ROOT, script)], {
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'inherit'],
  }).trim();
}

/** The folder with kube-apiserver and etcd, building them when needed; undefined when impossible. */
export function envtestAssets(): string | undefined {
  return testBinaries('KUBEBUILDER_ASSETS', ['kube-apiserver', 'etcd'], 'test/envtest/build.sh');
}

export const ENVTEST_SKIP_REASON =
  'skipping the Kubernetes API tests: set KUBEBUILDER_ASSETS to a folder with kube-apiserver and etcd (setup-envtest), or install Go so test/envtest/build.sh can build them';

/** Users with a static token (fixed when the API server starts), for RBAC tests. */
export const STATIC_USERS = [
  'system:serviceaccount:switchyard-system:switchyard',
  'system:serviceaccount:switchyard-system:switchyard-gateway',
  'envtest-limited',
];

export interface Envtest {
  server: string;
  /** Admin kubeconfig (system:masters), for the test's own set-up. */
  adminKubeconfig: string;
  /** A kubeconfig for a user that gets only what RBAC grants it. */
  kubeconfigFor(user: string, groups?: string[]): string;
  /** The API server's audit log (started with `audit: true`). */
  auditEvents?(): AuditEvent[];
  /** Stops only the kube-apiserver (etcd keeps the data); `startApiServer` brings it back. */
  stopApiServer?(): Promise<void>;
  startApiServer?(): Promise<void>;
  stop(): Promise<void>;
}

/** SIGTERM, then SIGKILL after 5 s. */
export async function stopChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((r) => child.once('exit', r));
  child.kill('SIGTERM');
  await Promise.race([exited, new Promise((r) => setTimeout(r, 5000))]);
  child.kill('SIGKILL');
}

/** kube-apiserver exited before it was ready: its last words. */
class ApiserverExited extends Error {
  constructor(stderr: string) {
    super(`kube-apiserver exited before it was ready: ${stderr.trim().split('\n').slice(-5).join(' | ')}`);
  }
}

/** Polls `check` every 100 ms until it holds; fails naming `what` after `ms`. */
export async function waitFor(check: () => Promise<boolean>, what: string, ms: number): Promise<void> {
  const until = Date.now() + ms;
  while (Date.now() < until) {
    // A check that knows waiting is in vain (the process exited) ends the wait at once.
    const ready = await check().catch((e: unknown) => {
      if (e instanceof ApiserverExited) throw e;
      return false;
    });
    if (ready) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`${what} did not become ready in ${ms} ms`);
}

export interface AuditEvent {
  requestURI: string;
  verb: string;
  user: { username: string };
  objectRef?: {
    apiGroup?: string;
    resource?: string;
    subresource?: string;
    namespace?: string;
    name?: string;
  };
  responseStatus?: { code?: number };
  requestReceivedTimestamp?: string;
}

export async function startEnvtest(assets: string, options: { audit?: boolean } = {}): Promise<Envtest> {
  const dir = mkdtempSync(join(tmpdir(), 'switchyard-envtest-'));
  const [ep, pp] = [await unusedPort(), await unusedPort()];
  let ap = await unusedPort();
  const etcd = spawn(
    join(assets, 'etcd'),
    [
      '--name=envtest',
      `--data-dir=${dir}/etcd-data`,
      `--listen-client-urls=http://127.0.0.1:${ep}`,
      `--advertise-client-urls=http://127.0.0.1:${ep}`,
      `--listen-peer-urls=http://127.0.0.1:${pp}`,
      `--initial-advertise-peer-urls=http://127.0.0.1:${pp}`,
      `--initial-cluster=envtest=http://127.0.0.1:${pp}`,
      '--initial-cluster-state=new',
      '--unsafe-no-fsync=true',
      '--log-level=warn',
    ],
    { stdio: 'ignore' },
  );
  await waitFor(async () => (await fetch(`http://127.0.0.1:${ep}/health`)).ok, 'etcd', 20_000);

  execFileSync('openssl', ['genrsa', '-out', `${dir}/sa.key`, '2048'], { stdio: 'ignore' });
  execFileSync('openssl', ['rsa', '-in', `${dir}/sa.key`, '-pubout', '-out', `${dir}/sa.pub`], {
    stdio: 'ignore',
  });
  const tokens = new Map<string, string>();
  const adminToken = randomBytes(24).toString('hex');
  const lines = [`${adminToken},envtest-admin,envtest-admin-uid,"system:masters"`];
  // Users are fixed at start (static token file): a few named ones for RBAC tests.
  for (const user of STATIC_USERS) {
    const t = randomBytes(24).toString('hex');
    tokens.set(user, t);
    lines.push(`${t},${user},${user}-uid,"system:authenticated"`);
  }
  writeFileSync(`${dir}/tokens.csv`, `${lines.join('\n')}\n`);
  const argsFor = (port: number) => {
    const args = [
      '--bind-address=127.0.0.1',
      '--advertise-address=127.0.0.1',
      `--secure-port=${port}`,
      `--cert-dir=${dir}/certs`,
      `--etcd-servers=http://127.0.0.1:${ep}`,
      '--service-cluster-ip-range=10.0.0.0/16',
      `--service-account-issuer=https://127.0.0.1:${port}`,
      `--service-account-key-file=${dir}/sa.pub`,
      `--service-account-signing-key-file=${dir}/sa.key`,
      `--token-auth-file=${dir}/tokens.csv`,
      '--authorization-mode=RBAC',
      '--disable-admission-plugins=ServiceAccount',
      '--allow-privileged=true',
      '--endpoint-reconciler-type=none',
    ];
    if (options.audit) {
      // Every request, with who made it: what test/rbac.test.ts compares the RBAC rules with.
      writeFileSync(
        `${dir}/audit-policy.yaml`,
        'apiVersion: audit.k8s.io/v1\nkind: Policy\nrules:\n- level: Metadata\n',
      );
      args.push(
        `--audit-policy-file=${dir}/audit-policy.yaml`,
        `--audit-log-path=${dir}/audit.log`,
        '--audit-log-mode=blocking',
      );
    }
    return args;
  };
  const { Agent, fetch: undiciFetch } = await import('undici');
  /** Starts kube-apiserver on `port` and waits until it is ready; its last words if it exits first. */
  const launch = async (port: number) => {
    const child = spawn(join(assets, 'kube-apiserver'), argsFor(port), {
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    let said = '';
    child.stderr?.on('data', (d) => {
      said = (said + String(d)).slice(-2000);
    });
    const exited = () => child.exitCode !== null || child.signalCode !== null;
    try {
      await waitFor(
        async () => {
          if (exited()) throw new ApiserverExited(said);
          return existsSync(`${dir}/certs/apiserver.crt`);
        },
        'kube-apiserver certificate',
        30_000,
      );
      const tls = new Agent({ connect: { ca: readFileSync(`${dir}/certs/apiserver.crt`) } });
      try {
        await waitFor(
          async () => {
            if (exited()) throw new ApiserverExited(said);
            return (
              (await undiciFetch(`https://127.0.0.1:${port}/readyz`, { dispatcher: tls })).status === 200
            );
          },
          'kube-apiserver',
          60_000,
        );
      } finally {
        await tls.close();
      }
    } catch (e) {
      // Not ready in time: the process goes too, not left running after the test.
      await stopChild(child);
      throw e;
    }
    child.stderr?.removeAllListeners('data');
    child.stderr?.resume();
    return child;
  };
  // Another test may take the port between unusedPort and the bind: then a new one, up to 3 times.
  let apiserver: ChildProcess | undefined;
  for (let attempt = 1; !apiserver; attempt++) {
    try {
      apiserver = await launch(ap);
    } catch (e) {
      if (!(e instanceof ApiserverExited) || !/address already in use/.test(e.message) || attempt === 3) {
        // Nothing of this envtest is left behind: etcd and its folder go with the failure.
        await stopChild(etcd);
        rmSync(dir, { recursive: true, force: true });
        throw e;
      }
      ap = await unusedPort();
    }
  }
  const server = `https://127.0.0.1:${ap}`;
  const ca = readFileSync(`${dir}/certs/apiserver.crt`);

  const kubeconfig = (user: string, token: string) => `apiVersion: v1
kind: Config
clusters:
- name: envtest
  cluster: {server: "${server}", certificate-authority-data: "${ca.toString('base64')}"}
users:
- name: ${JSON.stringify(user)}
  user: {token: "${token}"}
contexts:
- name: envtest
  context: {cluster: envtest, user: ${JSON.stringify(user)}}
current-context: envtest
`;
  return {
    server,
    adminKubeconfig: kubeconfig('envtest-admin', adminToken),
    kubeconfigFor(user) {
      const t = tokens.get(user);
      if (!t) throw new Error(`envtest has no static token for ${user}; add it in test/support/envtest.ts`);
      return kubeconfig(user, t);
    },
    auditEvents() {
      if (!existsSync(`${dir}/audit.log`)) return [];
      return readFileSync(`${dir}/audit.log`, 'utf8')
        .split('\n')
        .filter(Boolean)
        .map((l) => JSON.parse(l) as AuditEvent);
    },
    async stopApiServer() {
      await stopChild(apiserver as ChildProcess);
    },
    async startApiServer() {
      // Same port, certificates and etcd: clients see the same server come back.
      apiserver = await launch(ap);
    },
    async stop() {
      await stopChild(apiserver as ChildProcess);
      await stopChild(etcd);
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** Applies CRDs server-side and waits until each is Established. */
export async function installCrds(kubeconfig: string, crdYaml: string[]): Promise<void> {
  const { KubeConfig, KubernetesObjectApi, loadAllYaml } = await import('@kubernetes/client-node');
  const kc = new KubeConfig();
  kc.loadFromString(kubeconfig);
  const api = KubernetesObjectApi.makeApiClient(kc);
  type Crd = {
    kind?: string;
    metadata?: { name?: string };
    status?: { conditions?: { type: string; status: string }[] };
  };
  const crds = crdYaml
    .flatMap((y) => loadAllYaml(y) as Crd[])
    .filter((o) => o?.kind === 'CustomResourceDefinition');
  for (const crd of crds)
    await api.patch(
      crd as never,
      undefined,
      undefined,
      'switchyard-tests',
      true,
      'application/apply-patch+yaml' as never,
    );
  for (const crd of crds) {
    for (let i = 0; ; i++) {
      const live = (await api.read(crd as never)) as Crd;
      if (live.status?.conditions?.some((c) => c.type === 'Established' && c.status === 'True')) break;
      if (i > 100) throw new Error(`${crd.metadata?.name} not Established`);
      await new Promise((r) => setTimeout(r, 100));
    }
  }
  // The first create within 2 s of a CRD becoming Established waits 2 s (apiextensions, for HA).
  await new Promise((r) => setTimeout(r, 2100));
}

/**
 * Whether a test file can reach a real API server: the envtest binaries, and Istio's CRDs when the
 * file needs them. Without them it is skipped with one line; under CI=true that is a failure.
 */
export function envtestGate(options: {
  istio: boolean;
}): { assets: string; istio: string | undefined } | undefined {
  const assets = envtestAssets();
  const istio = process.env.ISTIO_CRDS || undefined;
  const missing = !assets
    ? ENVTEST_SKIP_REASON
    : options.istio && !istio
      ? "skipping: set ISTIO_CRDS to Istio's crd-all.gen.yaml"
      : undefined;
  if (missing && process.env.CI) throw new Error(`CI=true, but ${missing}`);
  if (missing) {
    console.warn(missing);
    return undefined;
  }
  return { assets: assets as string, istio };
}

/**
 * An API server with Switchyard's CRDs (as `switchyard crds` prints them), Istio's when given, and
 * the Gateway API's (experimental channel) when they can be had.
 */
export async function startEnvtestWithCrds(
  gate: {
    assets: string;
    istio: string | undefined;
  },
  options: { audit?: boolean } = {},
): Promise<Envtest> {
  const env = await startEnvtest(gate.assets, options);
  const { customResourceDefinitions } = await import('../../core/resources/crds.js');
  const { toYamlDocuments } = await import('../../cli/output.js');
  // The Gateway API's experimental channel (gateway-api mode), when it can be fetched.
  const { gatewayApiCrdFolder, gatewayApiCrds } = await import('./gateway-api-crds.js');
  const gatewayApi = gatewayApiCrdFolder();
  await installCrds(env.adminKubeconfig, [
    toYamlDocuments(customResourceDefinitions()),
    ...(gate.istio ? [readFileSync(gate.istio, 'utf8')] : []),
    ...(gatewayApi ? gatewayApiCrds(gatewayApi, 'experimental') : []),
  ]);
  return env;
}

/**
 * The run's shared API server (test/support/envtest-global.ts), or undefined when the file is to be
 * skipped: no envtest binaries, or Istio's CRDs needed and ISTIO_CRDS unset (a failure under CI).
 */
export async function sharedEnvtest(options: { istio: boolean }): Promise<Envtest | undefined> {
  const { inject } = await import('vitest');
  const shared = inject('envtest');
  const missing = !shared
    ? ENVTEST_SKIP_REASON
    : options.istio && !shared.istio
      ? "skipping: set ISTIO_CRDS to Istio's crd-all.gen.yaml"
      : undefined;
  if (missing && process.env.CI) throw new Error(`CI=true, but ${missing}`);
  if (missing || !shared) {
    console.warn(missing);
    return undefined;
  }
  return {
    server: shared.server,
    adminKubeconfig: shared.adminKubeconfig,
    kubeconfigFor(user) {
      const k = shared.kubeconfigs[user];
      if (!k) throw new Error(`envtest has no static token for ${user}; add it to STATIC_USERS`);
      return k;
    },
    async stop() {
      // shared by the run: stopped by the global setup's teardown
    },
  };
}
