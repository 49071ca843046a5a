/**
 * What every cluster test file starts from: the binaries (built once per version into .cache), a
 * running cluster with the images imported, and helm pointed at it with its own folders. Gated on
 * root, Go, containerd and podman; under CI=true a missing part is a failure, not a skip.
 */
import { execFile, spawnSync } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { clientNodeKube, type Kube, kubeConfigFrom } from '../../kube/client.js';
import { envtestAssets, testBinaries } from '../support/envtest.js';
import { type Cluster, startCluster } from './cluster.js';
import { buildAndImportImages } from './images.js';

export const CLUSTER_RUN = join(tmpdir(), 'switchyard-cluster');

export interface ClusterGate {
  envtest: string;
  cluster: string;
  helm: string;
}

export function clusterGate(): ClusterGate | undefined {
  const why = missingPart();
  if (why) {
    const message = `skipping the cluster tests: ${why}`;
    if (process.env.CI) throw new Error(`CI=true, but ${message}`);
    console.warn(message);
    return undefined;
  }
  const envtest = envtestAssets();
  const cluster = testBinaries(
    'CLUSTER_ASSETS',
    ['kube-apiserver', 'kubelet', 'kube-controller-manager', 'kube-scheduler', 'pause'],
    'test/cluster/build.sh',
  );
  const helm = testBinaries('HELM_ASSETS', ['helm'], 'test/helm/build.sh');
  if (!envtest || !cluster || !helm) throw new Error('the cluster tests: building their binaries failed');
  return { envtest, cluster, helm: join(helm, 'helm') };
}

function missingPart(): string | undefined {
  if (process.getuid?.() !== 0) return 'a cluster needs root (CI runs as root)';
  for (const [tool, pkg] of [
    ['containerd', 'containerd'],
    ['ctr', 'containerd'],
    ['podman', 'podman'],
    ['go', 'Go'],
    ['openssl', 'openssl'],
    ['gcc', 'gcc'],
  ])
    if (spawnSync('sh', ['-c', `command -v ${tool}`]).status !== 0) return `no ${tool} (${pkg})`;
  if (spawnSync('sh', ['-c', 'test -x /usr/lib/cni/bridge']).status !== 0)
    return 'no CNI plugins (apt-get install containernetworking-plugins)';
  return undefined;
}

export interface RunningCluster {
  cluster: Cluster;
  adminKubeconfig: string;
  admin: Kube;
  adminKubeconfigText: string;
  /**
   * helm, as a child process the event loop does not wait on: `--wait` takes as long as a roll,
   * and a load running meanwhile (or a client following endpoints) must go on.
   */
  helm(args: string[]): Promise<{ code: number; stdout: string; stderr: string }>;
}

export async function startTestCluster(gate: ClusterGate): Promise<RunningCluster> {
  const cluster = await startCluster(CLUSTER_RUN, {
    envtest: gate.envtest,
    cluster: gate.cluster,
    cni: '/usr/lib/cni',
  });
  let images: ReturnType<typeof buildAndImportImages>;
  try {
    images = buildAndImportImages(CLUSTER_RUN, cluster.ctr);
  } catch (e) {
    await cluster.stop();
    throw e;
  }
  console.log(
    `test cluster: ${Object.entries({ ...cluster.timings, ...images.timings })
      .map(([k, v]) => `${k} ${(v / 1000).toFixed(1)} s`)
      .join(', ')}`,
  );
  const adminKubeconfigText = readFileSync(cluster.adminKubeconfig, 'utf8');
  const helmHome = join(CLUSTER_RUN, 'helm');
  mkdirSync(helmHome, { recursive: true });
  return {
    cluster,
    adminKubeconfig: cluster.adminKubeconfig,
    admin: clientNodeKube(kubeConfigFrom(adminKubeconfigText)),
    adminKubeconfigText,
    helm(args) {
      return new Promise((resolve) => {
        execFile(
          gate.helm,
          ['--kubeconfig', cluster.adminKubeconfig, ...args],
          {
            encoding: 'utf8',
            timeout: 300_000,
            // helm's Kubernetes client writes a discovery cache under $HOME/.kube, or under the
            // working directory when HOME is unset: both in the run folder.
            cwd: helmHome,
            env: {
              PATH: process.env.PATH,
              HOME: helmHome,
              HELM_CACHE_HOME: join(helmHome, 'cache'),
              HELM_CONFIG_HOME: join(helmHome, 'config'),
              HELM_DATA_HOME: join(helmHome, 'data'),
              KUBECACHEDIR: join(CLUSTER_RUN, 'kube-cache'),
            },
          },
          (error, stdout, stderr) =>
            resolve({ code: error ? (typeof error.code === 'number' ? error.code : -1) : 0, stdout, stderr }),
        );
      });
    },
  };
}

/**
 * After the suite: the cluster stopped, its processes' logs kept in the project's git-ignored
 * .test-results/cluster-logs (for a failed run in CI), and the run folder (about 900 MB: images,
 * containerd, etcd) removed.
 */
export async function removeTestCluster(c: RunningCluster | undefined): Promise<void> {
  await c?.cluster.stop();
  const logs = join(CLUSTER_RUN, 'logs');
  if (existsSync(logs)) {
    const kept = join(import.meta.dirname, '..', '..', '.test-results', 'cluster-logs');
    rmSync(kept, { recursive: true, force: true });
    mkdirSync(dirname(kept), { recursive: true });
    cpSync(logs, kept, { recursive: true });
  }
  rmSync(CLUSTER_RUN, { recursive: true, force: true });
}
