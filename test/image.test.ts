/**
 * The container image (issue "Shipping", acceptance 1): podman builds it from the project's
 * Containerfile, on local stand-ins for its base images (test/image/stand-in-bases.sh: no registry
 * is reachable here), with no network (npm installs from the machine's npm cache); it runs as
 * user 65532 on a read-only root filesystem, prints its help and version, and serves as the
 * gateway on a port published on loopback, routing to a test host in a network namespace the
 * test made. Skipped with one line without podman; under CI=true that is a failure (.ci/run
 * installs podman).
 */
import { spawnSync } from 'node:child_process';
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { eventually, gatewayConfig } from './support/gateway.js';
import { header, send } from './support/http.js';
import { createTestNetns, type NetnsUpstream, type TestNetns, testNetnsAvailable } from './support/netns.js';
import { type Podman, PROJECT_VERSION, podmanIn } from './support/podman.js';
import { unusedPort } from './support/upstreams.js';

const ROOT = join(import.meta.dirname, '..');
const IMAGE = 'localhost/switchyard:test';
const VERSION = PROJECT_VERSION;

function podmanGate(): boolean {
  const missing =
    spawnSync('podman', ['--version']).status !== 0
      ? 'skipping the image test: no podman (apt-get install podman buildah runc uidmap)'
      : !testNetnsAvailable()
        ? 'skipping the image test: its test host needs root and `ip netns`'
        : undefined;
  if (missing && process.env.CI) throw new Error(`CI=true, but ${missing}`);
  if (missing) console.warn(missing);
  return !missing;
}

const gate = podmanGate();

describe.skipIf(!gate)('the container image', () => {
  let store: Podman;
  let hosts: TestNetns;
  let upstream: NetnsUpstream;
  const podman = (args: string[], timeoutMs?: number) => store.run(args, timeoutMs);
  const must = (args: string[], timeoutMs?: number) => store.must(args, timeoutMs);

  beforeAll(() => {
    // podman's settings and storage belong to this run; nothing global changes.
    store = podmanIn(mkdtempSync(join(tmpdir(), 'switchyard-podman-')));
    store.buildProjectImage(IMAGE);
  }, 660_000);

  afterAll(async () => {
    await upstream?.close();
    await hosts?.close();
    store?.close();
  });

  it('runs as user 65532, with labels, and no shell', () => {
    const config = JSON.parse(must(['image', 'inspect', IMAGE]))[0].Config as {
      User: string;
      Labels: Record<string, string>;
    };
    expect(config.User).toBe('65532:65532');
    expect(config.Labels).toMatchObject({
      'org.opencontainers.image.version': VERSION,
      'org.opencontainers.image.licenses': 'Apache-2.0',
      'org.opencontainers.image.source': expect.stringMatching(/^https:\/\//),
    });
    expect(podman(['run', '--rm', '--entrypoint', '/bin/sh', IMAGE, '-c', 'true']).code).not.toBe(0);
  });

  it('prints its help and version as user 65532 on a read-only root filesystem', () => {
    const help = podman(['run', '--rm', '--read-only', '--user', '65532', IMAGE, '--help']);
    expect(help.code).toBe(0);
    expect(help.stdout).toMatch(/Usage: switchyard/);
    expect(help.stdout).toMatch(/controller/);
    expect(help.stdout).toMatch(/gateway/);
    const version = podman(['run', '--rm', '--read-only', IMAGE, '--version']);
    expect(version.stdout.trim()).toBe(VERSION);
    const whoami = podman([
      'run',
      '--rm',
      '--entrypoint',
      '/nodejs/bin/node',
      IMAGE,
      '-p',
      'process.getuid()',
    ]);
    expect(whoami.stdout.trim()).toBe('65532');
  });

  it('runs on the Node LTS that CI pins, as the Containerfile says', () => {
    const pinned = spawnSync('bash', [join(ROOT, '.ci/node.sh'), '--version'], {
      encoding: 'utf8',
    }).stdout.trim();
    const containerfile = readFileSync(join(ROOT, 'Containerfile'), 'utf8');
    expect(containerfile).toContain(`ARG NODE_VERSION=${pinned}\n`);
    const node = podman(['run', '--rm', '--entrypoint', '/nodejs/bin/node', IMAGE, '--version']);
    expect(node.stdout.trim()).toBe(`v${pinned}`);
  });

  it('runs the demo reachable through a published port with --host 0.0.0.0', async () => {
    const port = await unusedPort();
    must([
      'run',
      '--detach',
      '--name',
      'switchyard-demo-test',
      '--read-only',
      '--tmpfs',
      '/tmp',
      '--publish',
      `127.0.0.1:${port}:8080`,
      IMAGE,
      'demo',
      '--host',
      '0.0.0.0',
    ]);
    try {
      const answer = await eventually(async () => {
        const r = await send(`http://127.0.0.1:${port}`, { host: 'localhost' }).catch(() => undefined);
        return r?.status === 200 ? r : undefined;
      }, 30_000);
      expect(header(answer, 'x-switchyard-upstream')).toMatch(/^shop\/v[12]$/);
    } finally {
      podman(['rm', '--force', 'switchyard-demo-test']);
    }
  }, 60_000);

  it('serves as the gateway on a loopback-published port, routing to a test host', async () => {
    hosts = await createTestNetns();
    upstream = await hosts.startUpstream('shop/v1');
    const configDir = mkdtempSync(join(tmpdir(), 'switchyard-image-config-'));
    writeFileSync(
      join(configDir, 'gateway.yaml'),
      `apiVersion: switchyard.dev/v1alpha1
kind: TrafficPolicy
metadata: {name: shop, namespace: demo}
spec: {service: shop, port: 80, hosts: [shop.test], stable: v1}
${gatewayConfig({ 'shop/v1': upstream.url })}`,
    );
    // The gateway runs as 65532: it must be able to read the mounted file.
    chmodSync(configDir, 0o755);
    chmodSync(join(configDir, 'gateway.yaml'), 0o644);
    const port = await unusedPort();
    must([
      'run',
      '--detach',
      '--name',
      'switchyard-gateway-test',
      '--read-only',
      '--memory',
      '256m',
      '--publish',
      `127.0.0.1:${port}:8080`,
      '--volume',
      `${configDir}:/config:ro`,
      IMAGE,
      'gateway',
      '-c',
      '/config/gateway.yaml',
      '--host',
      '0.0.0.0',
    ]);
    try {
      const until = Date.now() + 30_000;
      let last = '';
      for (;;) {
        const r = await send(`http://127.0.0.1:${port}`, { host: 'shop.test' }).catch((e: Error) => e);
        if (!(r instanceof Error) && r.status === 200) {
          expect(r.body).toBe('shop/v1');
          expect(header(r, 'x-switchyard-upstream')).toBe('shop/v1');
          break;
        }
        last = r instanceof Error ? r.message : `${r.status} ${r.body}`;
        if (Date.now() > until)
          throw new Error(
            `no routed answer (last: ${last})\n${podman(['logs', 'switchyard-gateway-test']).stderr}`,
          );
        await new Promise((r) => setTimeout(r, 200));
      }
      // An unknown host gets the gateway's own 404, not a crash.
      const unknown = await send(`http://127.0.0.1:${port}`, { host: 'nobody.test' });
      expect(unknown.status).toBe(404);
      expect(header(unknown, 'x-switchyard-error')).toBe('SY_GW_NO_POLICY');
      // SIGTERM: it drains and exits 0.
      const stopping = Date.now();
      must(['stop', '--time', '20', 'switchyard-gateway-test']);
      const exit = must(['inspect', '--format', '{{.State.ExitCode}}', 'switchyard-gateway-test']).trim();
      const logs = podman(['logs', 'switchyard-gateway-test']);
      expect(exit, `stopped in ${Date.now() - stopping} ms:\n${logs.stdout}${logs.stderr}`).toBe('0');
    } finally {
      podman(['rm', '--force', 'switchyard-gateway-test']);
      rmSync(configDir, { recursive: true, force: true });
    }
  }, 60_000);
});
