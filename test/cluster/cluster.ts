/**
 * A real single-node Kubernetes cluster for the cluster tests: etcd, kube-apiserver,
 * kube-controller-manager, kube-scheduler, containerd and kubelet, each a process of this run,
 * everything they write under one run folder, and nothing of it left on the machine after `stop`
 * (docs/testing.md, "The cluster tests").
 *
 * Network: a bridge the run makes, `sy-k8s0`, with 198.19.0.1/17 (RFC 2544's test range): the node
 * address, and the pods' network (CNI bridge plugin, no gateway, no masquerade: no iptables rule
 * and no route outside the bridge). Services get 198.19.128.0/17 addresses, which nothing routes:
 * there is no kube-proxy, as it would write the machine's iptables. So the API server listens on
 * the bridge address, and pods that call it (the controller, the gateway) are told that address
 * (KUBERNETES_SERVICE_HOST/PORT, through the chart's `extraEnv`); pods reach one another, and the
 * host reaches pods, by pod address, which is what the gateway routes to (EndpointSlices).
 */
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import {
  existsSync,
  mkdirSync,
  openSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { makePki, type Pki } from './pki.js';

export const BRIDGE = 'sy-k8s0';
export const NODE_IP = '198.19.0.1';
export const POD_CIDR = '198.19.0.0/17';
export const SERVICE_CIDR = '198.19.128.0/17';
export const NODE_NAME = 'switchyard-test-node';
export const API_PORT = 26443;
const ETCD_CLIENT = 'http://127.0.0.1:23790';
const ETCD_PEER = 'http://127.0.0.1:23800';
/** Where containerd finds images by these names (no registry): `ctr images import`. */
export const PAUSE_IMAGE = 'localhost/switchyard-test/pause:1';

/**
 * Settings kubelet changes on start (it sets what it needs for its OOM and panic handling); saved
 * before and written back after.
 */
const KUBELET_SYSCTLS = [
  'vm/overcommit_memory',
  'vm/panic_on_oom',
  'kernel/panic',
  'kernel/panic_on_oops',
  'kernel/keys/root_maxkeys',
  'kernel/keys/root_maxbytes',
];

/**
 * Paths outside the run folder that the components write whatever they are told: each removed
 * after the run if it did not exist before (and holds nothing else by then).
 */
const FIXED_PATHS = [
  '/var/lib/kubelet/device-plugins',
  '/var/lib/kubelet',
  '/var/log/containers',
  '/var/log/pods',
  '/run/containerd/s',
  '/run/containerd/fifo',
  '/run/containerd',
  '/var/lib/cni/results',
  '/var/lib/cni',
  '/run/mount',
];

/** Folders others write too, where the run adds entries of its own. */
const SHARED_FOLDERS = ['/var/lib/cni/results', '/var/log/containers', '/var/log/pods'];

export interface ClusterAssets {
  /** etcd (test/envtest/build.sh). */
  envtest: string;
  /** kube-apiserver, kubelet, kube-controller-manager, kube-scheduler, pause (test/cluster/build.sh). */
  cluster: string;
  /** The CNI plugins (Debian's containernetworking-plugins). */
  cni: string;
}

export interface Cluster {
  run: string;
  pki: Pki;
  adminKubeconfig: string;
  /** The API server as pods reach it (and as the host does). */
  server: string;
  /** ms from the first process to the node's Ready, per step. */
  timings: Record<string, number>;
  /** `ctr` against this run's containerd. */
  ctr(args: string[]): string;
  stop(): Promise<void>;
}

export interface RunState {
  /** FIXED_PATHS that did not exist before the run. */
  created: string[];
  sysctls: Record<string, string>;
  /** The machine's network links before the run. */
  links: string[];
  /** What SHARED_FOLDERS held before the run. */
  shared: Record<string, string[]>;
}

const log = (run: string) => (name: string) => openSync(join(run, 'logs', `${name}.log`), 'a');

/** Starts the cluster in `run` (made empty first, after stopping whatever a crashed run left there). */
export async function startCluster(run: string, assets: ClusterAssets): Promise<Cluster> {
  await stopRun(run);
  rmSync(run, { recursive: true, force: true });
  for (const d of ['logs', 'pids', 'etcd', 'containerd', 'cni/conf', 'cni/networks', 'kubelet/root'])
    mkdirSync(join(run, d), { recursive: true });
  const state = saveHostState();
  writeFileSync(join(run, 'host-state.json'), JSON.stringify(state));
  try {
    return await startComponents(run, assets);
  } catch (e) {
    // A start that failed half-way leaves nothing either (its logs stay in the run folder).
    await stopRun(run);
    throw e;
  }
}

async function startComponents(run: string, assets: ClusterAssets): Promise<Cluster> {
  const t0 = performance.now();
  const timings: Record<string, number> = {};
  const mark = (step: string) => {
    timings[step] = Math.round(performance.now() - t0);
  };
  const server = `https://${NODE_IP}:${API_PORT}`;

  makeBridge();
  const pki = makePki(join(run, 'pki'), server, NODE_IP, NODE_NAME);
  mark('certificates');
  const daemon = startDaemon(run);
  daemon('etcd', join(assets.envtest, 'etcd'), etcdArgs(run));
  await waitFor('etcd', () => httpOk(`${ETCD_CLIENT}/health`));
  mark('etcd');
  daemon('kube-apiserver', join(assets.cluster, 'kube-apiserver'), apiserverArgs(pki));
  await waitFor('kube-apiserver', () => apiReady(pki));
  mark('kube-apiserver');
  daemon(
    'kube-controller-manager',
    join(assets.cluster, 'kube-controller-manager'),
    controllerManagerArgs(run, pki),
  );
  daemon('kube-scheduler', join(assets.cluster, 'kube-scheduler'), schedulerArgs(pki));
  writeContainerdConfig(run, assets);
  daemon('containerd', 'containerd', ['--config', join(run, 'containerd', 'config.toml')]);
  const ctr = (args: string[]) =>
    execFileSync('ctr', ['--address', join(run, 'containerd', 'containerd.sock'), '-n', 'k8s.io', ...args], {
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'pipe'],
    });
  await waitFor('containerd', () => tryRun(() => ctr(['version'])));
  mark('containerd');
  importPauseImage(run, assets, ctr);
  mark('pause image');
  writeKubeletConfig(run, pki);
  daemon('kubelet', join(assets.cluster, 'kubelet'), kubeletArgs(run, pki));
  await waitFor('the node to be Ready', () => nodeReady(pki), 120_000);
  mark('node Ready');

  return {
    run,
    pki,
    adminKubeconfig: pki.kubeconfigs.admin,
    server,
    timings,
    ctr,
    stop: () => stopRun(run),
  };
}

// ---- start: one step each -------------------------------------------------------------------

function saveHostState(): RunState {
  const busy = [BRIDGE].filter((l) => spawnSync('ip', ['link', 'show', l], { stdio: 'ignore' }).status === 0);
  if (busy.length > 0) throw new Error(`another test cluster holds ${busy.join(', ')}: stop it first`);
  for (const h of cgroupHierarchies())
    if (existsSync(join(h, 'kubepods')))
      throw new Error(
        `${h}/kubepods exists: another kubelet runs on this machine, and the test cluster would share it`,
      );
  const sysctls: Record<string, string> = {};
  for (const k of KUBELET_SYSCTLS) sysctls[k] = readFileSync(`/proc/sys/${k}`, 'utf8').trim();
  const shared = Object.fromEntries(
    SHARED_FOLDERS.map((d) => [d, existsSync(d) ? readdirSync(d) : []] as [string, string[]]),
  );
  return { created: FIXED_PATHS.filter((p) => !existsSync(p)), sysctls, links: networkLinks(), shared };
}

function makeBridge(): void {
  ip('link', 'add', BRIDGE, 'type', 'bridge');
  ip('addr', 'add', `${NODE_IP}/17`, 'dev', BRIDGE);
  ip('link', 'set', BRIDGE, 'up');
}

function startDaemon(run: string) {
  const logFile = log(run);
  return (name: string, command: string, args: string[]): void => {
    const child = spawn(command, args, {
      detached: true, // its own session: it outlives a crashed test process, and stopRun finds it by pid
      stdio: ['ignore', logFile(name), logFile(name)],
      cwd: run,
      env: {
        PATH: process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin',
        HOME: run,
        KUBECACHEDIR: join(run, 'kube-cache'),
      },
    });
    child.unref();
    writeFileSync(join(run, 'pids', `${name}.pid`), String(child.pid));
  };
}

function etcdArgs(run: string): string[] {
  return [
    '--name=test',
    `--data-dir=${join(run, 'etcd')}`,
    `--listen-client-urls=${ETCD_CLIENT}`,
    `--advertise-client-urls=${ETCD_CLIENT}`,
    `--listen-peer-urls=${ETCD_PEER}`,
    `--initial-advertise-peer-urls=${ETCD_PEER}`,
    `--initial-cluster=test=${ETCD_PEER}`,
    '--unsafe-no-fsync', // a test's etcd: its data is thrown away
  ];
}

function apiserverArgs(pki: Pki): string[] {
  const f = pki.file;
  return [
    `--etcd-servers=${ETCD_CLIENT}`,
    `--bind-address=${NODE_IP}`,
    `--advertise-address=${NODE_IP}`,
    `--secure-port=${API_PORT}`,
    `--tls-cert-file=${f('apiserver.crt')}`,
    `--tls-private-key-file=${f('apiserver.key')}`,
    `--client-ca-file=${pki.ca}`,
    '--service-account-issuer=https://kubernetes.default.svc.cluster.local',
    `--service-account-key-file=${f('sa.pub')}`,
    `--service-account-signing-key-file=${f('sa.key')}`,
    `--service-cluster-ip-range=${SERVICE_CIDR}`,
    '--authorization-mode=Node,RBAC',
    `--kubelet-client-certificate=${f('apiserver-kubelet-client.crt')}`,
    `--kubelet-client-key=${f('apiserver-kubelet-client.key')}`,
    '--kubelet-preferred-address-types=InternalIP',
    '--allow-privileged=true',
    `--requestheader-client-ca-file=${pki.ca}`,
    '--requestheader-allowed-names=front-proxy-client',
    '--requestheader-username-headers=X-Remote-User',
    '--requestheader-group-headers=X-Remote-Group',
    '--requestheader-extra-headers-prefix=X-Remote-Extra-',
    `--proxy-client-cert-file=${f('front-proxy-client.crt')}`,
    `--proxy-client-key-file=${f('front-proxy-client.key')}`,
  ];
}

function controllerManagerArgs(run: string, pki: Pki): string[] {
  const k = pki.kubeconfigs.controllerManager;
  return [
    `--kubeconfig=${k}`,
    `--authentication-kubeconfig=${k}`,
    `--authorization-kubeconfig=${k}`,
    '--bind-address=127.0.0.1',
    '--secure-port=20257',
    `--service-account-private-key-file=${pki.file('sa.key')}`,
    `--root-ca-file=${pki.ca}`,
    `--cluster-signing-cert-file=${pki.ca}`,
    `--cluster-signing-key-file=${pki.file('ca.key')}`,
    '--use-service-account-credentials=true',
    '--controllers=*',
    '--allocate-node-cidrs=false',
    `--service-cluster-ip-range=${SERVICE_CIDR}`,
    '--leader-elect=false',
    // Its default is a fixed path outside the run folder, which it creates.
    `--flex-volume-plugin-dir=${join(run, 'kcm-volume-plugins')}`,
  ];
}

function schedulerArgs(pki: Pki): string[] {
  const k = pki.kubeconfigs.scheduler;
  return [
    `--kubeconfig=${k}`,
    `--authentication-kubeconfig=${k}`,
    `--authorization-kubeconfig=${k}`,
    '--bind-address=127.0.0.1',
    '--secure-port=20259',
    '--leader-elect=false',
  ];
}

function writeContainerdConfig(run: string, assets: ClusterAssets): void {
  const c = join(run, 'containerd');
  mkdirSync(join(run, 'cni', 'bin'), { recursive: true });
  for (const plugin of ['bridge', 'host-local', 'loopback'])
    execFileSync('cp', [join(assets.cni, plugin), join(run, 'cni', 'bin', plugin)]);
  writeFileSync(
    join(run, 'cni', 'conf', '10-switchyard-test.conflist'),
    JSON.stringify({
      cniVersion: '1.0.0',
      name: 'switchyard-test',
      plugins: [
        {
          type: 'bridge',
          bridge: BRIDGE,
          // No gateway, no masquerade: the plugin then writes no iptables rule and no ip_forward.
          isGateway: false,
          isDefaultGateway: false,
          ipMasq: false,
          hairpinMode: false,
          ipam: {
            type: 'host-local',
            dataDir: join(run, 'cni', 'networks'),
            ranges: [[{ subnet: POD_CIDR, rangeStart: '198.19.1.1', gateway: NODE_IP }]],
          },
        },
      ],
    }),
  );
  const cri = 'plugins."io.containerd.grpc.v1.cri"';
  writeFileSync(
    join(c, 'config.toml'),
    `version = 2
root = "${c}/root"
state = "${c}/state"
[grpc]
  address = "${c}/containerd.sock"
[ttrpc]
  address = "${c}/containerd.sock.ttrpc"
[metrics]
  address = ""
disabled_plugins = [
  "io.containerd.snapshotter.v1.btrfs",
  "io.containerd.snapshotter.v1.zfs",
  "io.containerd.snapshotter.v1.devmapper",
  "io.containerd.snapshotter.v1.aufs",
  "io.containerd.tracing.processor.v1.otlp",
  "io.containerd.internal.v1.tracing",
]
[plugins."io.containerd.internal.v1.opt"]
  path = "${c}/opt"
[${cri}]
  sandbox_image = "${PAUSE_IMAGE}"
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  enable_selinux = false
  disable_apparmor = true
  netns_mounts_under_state_dir = true
  # Root here lacks CAP_SYS_RESOURCE: runc cannot lower a process's oom_score_adj, and without this
  # no pod sandbox starts.
  restrict_oom_score_adj = true
  [${cri}.containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [${cri}.containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [${cri}.containerd.runtimes.runc.options]
        SystemdCgroup = false
        Root = "${c}/runc"
  [${cri}.cni]
    bin_dir = "${run}/cni/bin"
    conf_dir = "${run}/cni/conf"
    max_conf_num = 1
`,
  );
}

/** The sandbox image: `pause` alone in one layer, as an OCI archive `ctr` imports. */
function importPauseImage(run: string, assets: ClusterAssets, ctr: (args: string[]) => string): void {
  const dir = join(run, 'images', 'pause');
  mkdirSync(join(dir, 'rootfs'), { recursive: true });
  execFileSync('cp', [join(assets.cluster, 'pause'), join(dir, 'rootfs', 'pause')]);
  const archive = ociArchive(dir, join(dir, 'rootfs'), PAUSE_IMAGE, {
    Entrypoint: ['/pause'],
    User: '65535',
  });
  ctr(['images', 'import', archive]);
}

function writeKubeletConfig(run: string, pki: Pki): void {
  const k = join(run, 'kubelet');
  writeFileSync(
    join(k, 'config.yaml'),
    JSON.stringify({
      apiVersion: 'kubelet.config.k8s.io/v1beta1',
      kind: 'KubeletConfiguration',
      containerRuntimeEndpoint: `unix://${run}/containerd/containerd.sock`,
      address: NODE_IP,
      readOnlyPort: 0,
      healthzBindAddress: '127.0.0.1',
      healthzPort: 20248,
      authentication: {
        anonymous: { enabled: false },
        webhook: { enabled: true },
        x509: { clientCAFile: pki.ca },
      },
      authorization: { mode: 'Webhook' },
      cgroupDriver: 'cgroupfs',
      cgroupsPerQOS: true,
      failSwapOn: false,
      // No KUBE-* iptables chains: nothing of the run outside its folder and its bridge.
      makeIPTablesUtilChains: false,
      hairpinMode: 'none',
      resolvConf: '',
      podLogsDir: join(k, 'pod-logs'),
      volumePluginDir: join(k, 'volume-plugins'),
      oomScoreAdj: 0,
      evictionHard: {
        'memory.available': '100Mi',
        'nodefs.available': '1%',
        'imagefs.available': '1%',
        'nodefs.inodesFree': '1%',
      },
      imageGCHighThresholdPercent: 100,
      imageGCLowThresholdPercent: 99,
      maxPods: 40,
      nodeStatusUpdateFrequency: '10s',
      shutdownGracePeriod: '0s',
    }),
  );
}

function kubeletArgs(run: string, pki: Pki): string[] {
  return [
    `--config=${join(run, 'kubelet', 'config.yaml')}`,
    `--kubeconfig=${pki.kubeconfigs.kubelet}`,
    `--root-dir=${join(run, 'kubelet', 'root')}`,
    `--cert-dir=${join(run, 'kubelet', 'pki')}`,
    `--node-ip=${NODE_IP}`,
    `--hostname-override=${NODE_NAME}`,
  ];
}

// ---- stop: one step each --------------------------------------------------------------------

/**
 * Stops what a run started and removes what it made outside its folder: processes, containers,
 * mounts, the bridge, kubelet's cgroups, the fixed paths it created, the kernel settings kubelet
 * changed. Safe to call on a run that crashed half-way, or that never started.
 */
export async function stopRun(run: string): Promise<void> {
  if (!existsSync(join(run, 'pids'))) return;
  const state = readState(run);
  await stopDaemons(run, ['kubelet', 'kube-scheduler', 'kube-controller-manager']);
  stopContainers(run);
  await stopDaemons(run, ['containerd', 'kube-apiserver', 'etcd']);
  stopShims(run);
  unmountUnder(run);
  if (spawnSync('ip', ['link', 'show', BRIDGE], { stdio: 'ignore' }).status === 0) ip('link', 'del', BRIDGE);
  removeCgroups();
  if (state) {
    removeFixedPaths(state.created, state.shared ?? {});
    restoreSysctls(state.sysctls);
  }
  rmSync(join(run, 'pids'), { recursive: true, force: true });
}

export function networkLinks(): string[] {
  return readdirSync('/sys/class/net').sort();
}

export function readState(run: string): RunState | undefined {
  try {
    return JSON.parse(readFileSync(join(run, 'host-state.json'), 'utf8')) as RunState;
  } catch {
    return undefined;
  }
}

async function stopDaemons(run: string, names: string[]): Promise<void> {
  const pids = names.flatMap((n) => {
    const file = join(run, 'pids', `${n}.pid`);
    return existsSync(file) ? [Number(readFileSync(file, 'utf8'))] : [];
  });
  for (const pid of pids) signal(pid, 'SIGTERM');
  for (let i = 0; i < 100 && pids.some(alive); i++) await sleep(100);
  for (const pid of pids.filter(alive)) signal(pid, 'SIGKILL');
  for (let i = 0; i < 50 && pids.some(alive); i++) await sleep(100);
}

/** Containers left by kubelet: stopped through containerd while it still runs. */
function stopContainers(run: string): void {
  const sock = join(run, 'containerd', 'containerd.sock');
  if (!existsSync(sock)) return;
  const ctr = (args: string[]) =>
    spawnSync('ctr', ['--address', sock, '-n', 'k8s.io', ...args], { encoding: 'utf8', timeout: 20_000 });
  const ids = (ctr(['containers', 'list', '-q']).stdout ?? '').split('\n').filter(Boolean);
  for (const id of ids) ctr(['tasks', 'kill', '-s', 'SIGKILL', id]);
  for (const id of ids) ctr(['tasks', 'delete', '-f', id]);
  for (const id of ids) ctr(['containers', 'delete', id]);
}

/** containerd's shims outlive it; this run's are those whose command line names its socket. */
function stopShims(run: string): void {
  for (const pid of processesMentioning(run)) signal(pid, 'SIGKILL');
}

export function processesMentioning(text: string): number[] {
  const out: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const cmd = readFileSync(`/proc/${entry}/cmdline`, 'utf8');
      if (cmd.includes(text) && alive(Number(entry))) out.push(Number(entry));
    } catch {
      // gone meanwhile
    }
  }
  return out;
}

export function mountsUnder(run: string): string[] {
  return readFileSync('/proc/self/mountinfo', 'utf8')
    .split('\n')
    .map((line) => line.split(' ')[4] ?? '')
    .map((p) => p.replace(/\\040/g, ' '))
    .filter((p) => p === run || p.startsWith(`${run}/`));
}

function unmountUnder(run: string): void {
  for (let round = 0; round < 5; round++) {
    const mounts = mountsUnder(run).sort((a, b) => b.length - a.length);
    if (mounts.length === 0) return;
    for (const m of mounts) spawnSync('umount', [m], { stdio: 'ignore' });
  }
  for (const m of mountsUnder(run)) spawnSync('umount', ['-l', m], { stdio: 'ignore' });
}

function cgroupHierarchies(): string[] {
  const base = '/sys/fs/cgroup';
  if (existsSync(join(base, 'cgroup.controllers'))) return [base];
  return readdirSync(base)
    .map((d) => join(base, d))
    .filter((d) => {
      try {
        return statSync(d).isDirectory() && existsSync(join(d, 'cgroup.procs'));
      } catch {
        return false;
      }
    });
}

/** kubelet's `kubepods` tree in every hierarchy, deepest first (saveHostState refused a shared one). */
export function leftoverCgroups(): string[] {
  return cgroupHierarchies()
    .map((h) => join(h, 'kubepods'))
    .filter((p) => existsSync(p));
}

function removeCgroups(): void {
  for (const top of leftoverCgroups()) {
    const dirs: string[] = [];
    const walk = (d: string) => {
      for (const e of readdirSync(d, { withFileTypes: true })) if (e.isDirectory()) walk(join(d, e.name));
      dirs.push(d);
    };
    walk(top);
    for (const d of dirs) spawnSync('rmdir', [d], { stdio: 'ignore' });
  }
}

function removeFixedPaths(created: string[], shared: Record<string, string[]>): void {
  // The run's own entries in shared folders first (those that were not there before it: podman
  // shares libcni's cache here); then each folder it created, if empty.
  for (const [dir, before] of Object.entries(shared))
    if (existsSync(dir))
      for (const e of readdirSync(dir))
        if (!before.includes(e)) rmSync(join(dir, e), { force: true, recursive: true });
  for (const p of FIXED_PATHS)
    if (created.includes(p) && existsSync(p)) spawnSync('rmdir', [p], { stdio: 'ignore' });
}

export function restoreSysctls(saved: Record<string, string>): void {
  for (const [k, v] of Object.entries(saved))
    if (readFileSync(`/proc/sys/${k}`, 'utf8').trim() !== v) writeFileSync(`/proc/sys/${k}`, v);
}

// ---- helpers ----------------------------------------------------------------------------------

function ip(...args: string[]): void {
  execFileSync('ip', args, { stdio: ['ignore', 'ignore', 'pipe'] });
}

function signal(pid: number, sig: NodeJS.Signals): void {
  try {
    process.kill(pid, sig);
  } catch {
    // already gone
  }
}

/** Alive and not a zombie (this machine's PID 1 reaps late). */
export function alive(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z';
  } catch {
    return false;
  }
}

function tryRun(f: () => unknown): boolean {
  try {
    f();
    return true;
  } catch {
    return false;
  }
}

async function httpOk(url: string): Promise<boolean> {
  try {
    return (await fetch(url)).ok;
  } catch {
    return false;
  }
}

function apiGet(pki: Pki, path: string): string | undefined {
  // curl with the admin certificate: the API's readiness before any client is set up.
  const r = spawnSync(
    'curl',
    [
      '-sf',
      '--cacert',
      pki.ca,
      '--cert',
      pki.file('admin.crt'),
      '--key',
      pki.file('admin.key'),
      `https://${NODE_IP}:${API_PORT}${path}`,
    ],
    { encoding: 'utf8', timeout: 5000 },
  );
  return r.status === 0 ? r.stdout : undefined;
}

async function apiReady(pki: Pki): Promise<boolean> {
  return apiGet(pki, '/readyz') === 'ok';
}

async function nodeReady(pki: Pki): Promise<boolean> {
  const body = apiGet(pki, `/api/v1/nodes/${NODE_NAME}`);
  if (!body) return false;
  const node = JSON.parse(body) as { status?: { conditions?: { type: string; status: string }[] } };
  return node.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True') ?? false;
}

async function waitFor(
  what: string,
  ready: () => Promise<boolean> | boolean,
  timeoutMs = 60_000,
): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (Date.now() < end) {
    if (await ready()) return;
    await sleep(200);
  }
  throw new Error(`the test cluster: ${what} was not ready within ${timeoutMs / 1000} s`);
}

/**
 * An OCI image archive of one uncompressed layer (the folder `rootfs`), as `ctr images import`
 * reads it: written by hand, as no registry and no builder is needed for a folder of files.
 */
export function ociArchive(
  dir: string,
  rootfs: string,
  name: string,
  config: Record<string, unknown>,
): string {
  const blobs = join(dir, 'oci', 'blobs', 'sha256');
  mkdirSync(blobs, { recursive: true });
  const layerTar = join(dir, 'layer.tar');
  execFileSync('tar', ['--numeric-owner', '-C', rootfs, '-cf', layerTar, '.']);
  const layer = addBlob(blobs, readFileSync(layerTar));
  const cfg = addBlob(
    blobs,
    Buffer.from(
      JSON.stringify({
        architecture: 'amd64',
        os: 'linux',
        config,
        rootfs: { type: 'layers', diff_ids: [`sha256:${layer.digest}`] },
      }),
    ),
  );
  const manifest = addBlob(
    blobs,
    Buffer.from(
      JSON.stringify({
        schemaVersion: 2,
        mediaType: 'application/vnd.oci.image.manifest.v1+json',
        config: {
          mediaType: 'application/vnd.oci.image.config.v1+json',
          digest: `sha256:${cfg.digest}`,
          size: cfg.size,
        },
        layers: [
          {
            mediaType: 'application/vnd.oci.image.layer.v1.tar',
            digest: `sha256:${layer.digest}`,
            size: layer.size,
          },
        ],
      }),
    ),
  );
  writeFileSync(join(dir, 'oci', 'oci-layout'), '{"imageLayoutVersion":"1.0.0"}');
  writeFileSync(
    join(dir, 'oci', 'index.json'),
    JSON.stringify({
      schemaVersion: 2,
      manifests: [
        {
          mediaType: 'application/vnd.oci.image.manifest.v1+json',
          digest: `sha256:${manifest.digest}`,
          size: manifest.size,
          annotations: {
            'io.containerd.image.name': name,
            'org.opencontainers.image.ref.name': name.split(':')[1],
          },
        },
      ],
    }),
  );
  const archive = join(dir, 'image.tar');
  execFileSync('tar', ['-C', join(dir, 'oci'), '-cf', archive, '.']);
  return archive;
}

function addBlob(blobs: string, data: Buffer): { digest: string; size: number } {
  const digest = createHash('sha256').update(data).digest('hex');
  writeFileSync(join(blobs, digest), data);
  return { digest, size: data.length };
}
