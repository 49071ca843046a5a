/**
 * A real Envoy in front of one upstream, configured statically (no istiod): the reference the
 * gateway's front-door tests compare their answers with. Its HTTP connection manager has Envoy's
 * defaults but for what Istio sets on its gateways (codec AUTO, WebSocket the one upgrade) and the
 * gateway's own header size limit (Envoy's default is 60 KiB), so the two refuse the same sizes.
 * Istio also turns on `normalize_path`; neither this Envoy nor the gateway resolves `..` (the
 * gateway has no path rules; the pod gets the path as sent).
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { stopChild, waitFor } from './envtest.js';
import { captureOutput } from './mesh.js';
import { unusedPort } from './upstreams.js';

export interface EnvoyFront {
  port: number;
  stop(): Promise<void>;
}

export async function startEnvoyFront(
  assets: string,
  upstream: URL,
  options: { hosts: string[]; maxRequestHeadersKb: number },
): Promise<EnvoyFront> {
  const dir = mkdtempSync(join(tmpdir(), 'switchyard-envoy-front-'));
  const [port, admin] = [await unusedPort(), await unusedPort()];
  const socket = (address: string, port_value: number) => ({ socket_address: { address, port_value } });
  const bootstrap = {
    admin: { address: socket('127.0.0.1', admin) },
    static_resources: {
      listeners: [
        {
          name: 'front',
          address: socket('127.0.0.1', port),
          filter_chains: [
            {
              filters: [
                {
                  name: 'envoy.filters.network.http_connection_manager',
                  typed_config: {
                    '@type':
                      'type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager',
                    stat_prefix: 'front',
                    codec_type: 'AUTO',
                    max_request_headers_kb: options.maxRequestHeadersKb,
                    upgrade_configs: [{ upgrade_type: 'websocket' }],
                    route_config: {
                      virtual_hosts: [
                        {
                          name: 'front',
                          domains: options.hosts.flatMap((h) => [h, `${h}:*`]),
                          routes: [{ match: { prefix: '/' }, route: { cluster: 'pod' } }],
                        },
                      ],
                    },
                    http_filters: [
                      {
                        name: 'envoy.filters.http.router',
                        typed_config: {
                          '@type': 'type.googleapis.com/envoy.extensions.filters.http.router.v3.Router',
                        },
                      },
                    ],
                  },
                },
              ],
            },
          ],
        },
      ],
      clusters: [
        {
          name: 'pod',
          type: 'STATIC',
          connect_timeout: '1s',
          load_assignment: {
            cluster_name: 'pod',
            endpoints: [
              { lb_endpoints: [{ endpoint: { address: socket(upstream.hostname, Number(upstream.port)) } }] },
            ],
          },
        },
      ],
    },
  };
  writeFileSync(join(dir, 'bootstrap.json'), JSON.stringify(bootstrap));
  const child = spawn(
    join(assets, 'envoy'),
    ['-c', join(dir, 'bootstrap.json'), '--disable-hot-restart', '--concurrency', '1', '--log-level', 'warn'],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  const log = captureOutput(child);
  const exited = new Promise<never>((_, reject) =>
    child.once('exit', (code) => reject(new Error(`envoy front exited (${code}):\n${log()}`))),
  );
  exited.catch(() => undefined);
  await Promise.race([
    waitFor(
      async () => (await (await fetch(`http://127.0.0.1:${admin}/ready`)).text()).trim() === 'LIVE',
      'envoy front',
      30_000,
    ),
    exited,
  ]);
  return {
    port,
    async stop() {
      await stopChild(child);
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
