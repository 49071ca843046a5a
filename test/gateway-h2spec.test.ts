/**
 * h2spec, the HTTP/2 conformance suite (146 cases), against the gateway's traffic port: h2c with
 * prior knowledge (the port that also speaks HTTP/1.1) and TLS with ALPN. In the same run it is
 * pointed at a bare `http2.createServer` of this Node, so each remaining failure is traced: either
 * Node's HTTP/2 core fails it too (listed in KNOWN with the upstream report), or it is the one case
 * a port speaking HTTP/1.1 and h2c cannot pass (Envoy's `codec_type: AUTO` fails it as well).
 * Any other failure, and any KNOWN case that starts passing, fails this test.
 */
import { execFile, execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer as createHttp2Server, type ServerHttp2Session } from 'node:http2';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { testBinaries } from './support/envtest.js';
import { gatewayConfig, startTestGateway, type TestGateway } from './support/gateway.js';
import { startUpstream, type TestUpstream } from './support/upstreams.js';

const run = promisify(execFile);

/** Node's HTTP/2 core (nghttp2) fails these on a bare server; each names the upstream report. */
export const KNOWN_NODE: Record<string, string> = {
  'http2/5.1/8': 'DATA after RST_STREAM: no STREAM_CLOSED (nodejs/http2#142, fastify/fastify#2402)',
  'http2/5.1/9': 'HEADERS after RST_STREAM: no STREAM_CLOSED (nodejs/http2#142)',
  'http2/5.1/11': 'DATA on a closed stream: no STREAM_CLOSED (nodejs/http2#142)',
  'http2/5.1/12': 'HEADERS on a closed stream: no STREAM_CLOSED (nodejs/http2#142)',
  'http2/5.1.1/2': 'a lower stream id is served, not a PROTOCOL_ERROR (nghttp2/nghttp2#2278)',
  'http2/5.3.1/2':
    'PRIORITY frames are ignored since nghttp2 1.65 dropped RFC 7540 priorities (nghttp2/nghttp2#2365)',
  'http2/6.3/1': 'PRIORITY on stream 0 ignored, as above (nghttp2/nghttp2#2365)',
  'http2/6.7/2': 'an unsolicited PING ACK closes the session (Node core)',
  'http2/6.9.1/3': 'a stream window over 2^31-1 closes the session instead of RST_STREAM (Node core)',
};
/** h2c shares its port with HTTP/1.1: bytes that are not the preface are HTTP/1.1 (400), as Envoy's AUTO codec. */
export const KNOWN_SHARED_PORT: Record<string, string> = {
  'http2/3.5/2':
    'an invalid preface is read as HTTP/1.1 and answered 400, not dropped (Envoy AUTO: the same)',
};

const GROUPS: Record<string, string> = {
  'Generic tests for HTTP/2 server': 'generic',
  'Hypertext Transfer Protocol Version 2 (HTTP/2)': 'http2',
  'HPACK: Header Compression for HTTP/2': 'hpack',
};

/** The h2spec ids (`http2/5.1/8`) of the failures in its report, and its closing line. */
function failures(output: string): { ids: string[]; summary: string } {
  const ids: string[] = [];
  const text = output.slice(output.lastIndexOf('Failures:'));
  let group = '';
  let section = '';
  for (const line of text.split('\n')) {
    const trimmed = line.trim();
    if (GROUPS[trimmed]) group = GROUPS[trimmed] as string;
    const header = /^(\d+(?:\.\d+)*)\. /.exec(trimmed);
    if (header) section = header[1] as string;
    const failed = /^× (\d+): /.exec(trimmed);
    if (failed) ids.push(`${group}/${section}/${failed[1]}`);
  }
  return { ids: ids.sort(), summary: /\d+ tests, .*/.exec(output)?.[0] ?? '(no summary)' };
}

async function h2spec(
  bin: string,
  port: number,
  tls: boolean,
  cases: string[] = [],
): Promise<{ ids: string[]; summary: string }> {
  const args = [
    '-h',
    '127.0.0.1',
    '-p',
    String(port),
    '--timeout',
    '2',
    ...(tls ? ['-t', '-k'] : []),
    ...cases,
  ];
  // h2spec exits 1 when a case fails; its report is what is read.
  const out = await run(bin, args, { maxBuffer: 16 * 1024 * 1024 }).catch((e: { stdout?: string }) => ({
    stdout: e.stdout ?? '',
  }));
  return failures(out.stdout);
}

/**
 * The failures of a whole run, less those outside `expected` that pass when run again alone: a case
 * that waits for an answer within h2spec's timeout can miss it on a loaded machine, once.
 */
async function settledFailures(
  bin: string,
  port: number,
  tls: boolean,
  expected: readonly string[],
): Promise<{ ids: string[]; summary: string }> {
  const first = await h2spec(bin, port, tls);
  const unexpected = first.ids.filter((id) => !expected.includes(id));
  if (unexpected.length === 0) return first;
  const again = await h2spec(bin, port, tls, unexpected);
  return {
    ids: first.ids.filter((id) => expected.includes(id) || again.ids.includes(id)),
    summary: first.summary,
  };
}

const h2specDir = testBinaries('H2SPEC_ASSETS', ['h2spec'], 'test/h2spec/build.sh');
if (!h2specDir && process.env.CI) throw new Error('CI=true, but h2spec cannot be built (Go is missing)');

describe.skipIf(!h2specDir)('h2spec against the gateway', () => {
  const bin = join(h2specDir as string, 'h2spec');
  let web: TestUpstream;
  let gw: TestGateway;
  let tlsGw: TestGateway;
  let bare: ReturnType<typeof createHttp2Server>;
  const bareSessions = new Set<ServerHttp2Session>();
  let certDir: string;
  const policy = `apiVersion: switchyard.dev/v1alpha1
kind: TrafficPolicy
metadata: {name: web}
spec: {service: web, port: 80, hosts: [127.0.0.1], stable: v1}
`;

  beforeAll(async () => {
    web = await startUpstream('web/v1');
    // h2spec leaves sessions open after the cases it gives up on: a short drain closes them.
    gw = await startTestGateway(`${policy}${gatewayConfig({ 'web/v1': web.url })}`, { drainTimeoutMs: 500 });
    certDir = mkdtempSync(join(tmpdir(), 'switchyard-h2spec-'));
    execFileSync(
      'openssl',
      ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-days', '1'].concat(
        ['-subj', '/CN=127.0.0.1', '-keyout', join(certDir, 'key.pem'), '-out', join(certDir, 'cert.pem')],
      ),
      { stdio: 'ignore' },
    );
    tlsGw = await startTestGateway(`${policy}${gatewayConfig({ 'web/v1': web.url })}`, {
      drainTimeoutMs: 500,
      tls: { cert: readFileSync(join(certDir, 'cert.pem')), key: readFileSync(join(certDir, 'key.pem')) },
    });
    bare = createHttp2Server((req, res) => {
      req.resume();
      req.on('end', () => res.end('ok'));
    });
    bare.on('session', (session) => bareSessions.add(session));
    await new Promise<void>((r) => bare.listen(0, '127.0.0.1', r));
  });
  afterAll(async () => {
    await gw.close();
    await tlsGw.close();
    for (const session of bareSessions) session.destroy();
    await new Promise((r) => bare.close(r));
    await web.close();
    rmSync(certDir, { recursive: true, force: true });
  });

  it('h2c: every failure is Node core’s (a bare server fails it too) or the shared port’s, and each is listed', async () => {
    const shared = [...Object.keys(KNOWN_NODE), ...Object.keys(KNOWN_SHARED_PORT)];
    const [gateway, node] = [
      await settledFailures(bin, Number(new URL(gw.base).port), false, shared),
      await settledFailures(bin, (bare.address() as AddressInfo).port, false, Object.keys(KNOWN_NODE)),
    ];
    console.log(`h2spec h2c: gateway ${gateway.summary}; bare node:http2 ${node.summary}`);
    expect(node.ids).toEqual(Object.keys(KNOWN_NODE).sort());
    expect(gateway.ids).toEqual(shared.sort());
  }, 120_000);

  it('TLS with ALPN h2: Node core’s failures only', async () => {
    const gateway = await settledFailures(
      bin,
      Number(new URL(tlsGw.base).port),
      true,
      Object.keys(KNOWN_NODE),
    );
    console.log(`h2spec TLS: gateway ${gateway.summary}`);
    expect(gateway.ids).toEqual(Object.keys(KNOWN_NODE).sort());
  }, 120_000);
});
