/**
 * gRPC through a proxy: a policy with `upstreamProtocol: http2` (a GRPCRoute in gateway-api mode)
 * whose versions are gRPC test hosts in a test network namespace (netns-grpc-upstream.mjs), and a
 * real grpc-js client (h2c) that asks who answered.
 */
import * as grpc from '@grpc/grpc-js';
import { compile } from '../../core/compiler/compile.js';
import type { KubeObject } from '../../core/compiler/objects.js';
import { renderGatewayApi } from '../../core/gateway-api/render.js';
import { serviceWithEndpoints } from './mesh.js';
import type { NetnsUpstream, TestNetns } from './netns.js';
import { load } from './random-policies.js';

type Apply = (o: object) => Promise<unknown>;

const json = {
  serialize: (v: unknown) => Buffer.from(JSON.stringify(v)),
  deserialize: (b: Buffer) => JSON.parse(b.toString()) as unknown,
};
const Echo = {
  who: {
    path: '/switchyard.test.Echo/Who',
    requestStream: false,
    responseStream: false,
    requestSerialize: json.serialize,
    requestDeserialize: json.deserialize,
    responseSerialize: json.serialize,
    responseDeserialize: json.deserialize,
  },
} satisfies grpc.ServiceDefinition;
const EchoClient = grpc.makeGenericClientConstructor(Echo, 'Echo');
type EchoStub = grpc.Client & {
  who(
    req: object,
    metadata: grpc.Metadata,
    callback: (e: grpc.ServiceError | null, r?: { version: string }) => void,
  ): grpc.ClientUnaryCall;
};

/** The test host that answered a unary call sent to `address` (`host:port`) for `authority`, or the gRPC error. */
export async function whoAnswers(
  address: string,
  authority: string,
  metadata: Record<string, string> = {},
): Promise<string> {
  const client = new EchoClient(address, grpc.credentials.createInsecure(), {
    'grpc.default_authority': authority,
  }) as unknown as EchoStub;
  const md = new grpc.Metadata();
  for (const [k, v] of Object.entries(metadata)) md.set(k, v);
  try {
    return await new Promise<string>((resolve) =>
      client.who({}, md, (e, r) =>
        resolve(e ? `error ${grpc.status[e.code]}: ${e.details}` : (r?.version ?? '')),
      ),
    );
  } finally {
    client.close();
  }
}

/** Waits until a call without metadata is answered by `expected` (the proxy has the route). */
export async function untilWhoAnswers(
  address: string,
  authority: string,
  expected: string,
  log: () => string,
  ms = 30_000,
): Promise<void> {
  const until = Date.now() + ms;
  for (;;) {
    const got = await whoAnswers(address, authority);
    if (got === expected) return;
    if (Date.now() > until) throw new Error(`gRPC never reached ${expected} (last: ${got})\n${log()}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

/**
 * A gRPC Service `<service>` in `namespace` whose versions are gRPC test hosts, with the
 * EndpointSlices of its per-version Services `<service>--<version>`. Its port is named `http` and
 * has no appProtocol, as many Services are: the per-version Services Switchyard writes must mark
 * it h2c themselves.
 */
export async function grpcBackends(
  apply: Apply,
  hosts: TestNetns,
  namespace: string,
  service: string,
  versions: readonly string[],
): Promise<NetnsUpstream[]> {
  const upstreams: NetnsUpstream[] = [];
  for (const v of versions)
    upstreams.push(
      await hosts.startUpstream(`${service}/${v}`, undefined, {
        script: 'netns-grpc-upstream.mjs',
        args: [],
      }),
    );
  await serviceWithEndpoints(
    apply,
    { namespace, name: service, port: 80, selector: { app: service } },
    upstreams.map((host, i) => ({ labels: { app: service, version: versions[i] as string }, host })),
  );
  for (const [i, host] of upstreams.entries())
    await apply({
      apiVersion: 'discovery.k8s.io/v1',
      kind: 'EndpointSlice',
      metadata: {
        name: `${service}--${versions[i]}-0`,
        namespace,
        labels: { 'kubernetes.io/service-name': `${service}--${versions[i]}` },
      },
      addressType: 'IPv4',
      ports: [{ name: 'http', port: host.port, protocol: 'TCP', appProtocol: 'kubernetes.io/h2c' }],
      endpoints: [{ addresses: [host.address], conditions: { ready: true } }],
    });
  return upstreams;
}

/**
 * The gRPC world the proxy tests send through: namespace `grpc`, Service `echo` (v1, v3) and the
 * policy `echo.grpc.test` rendered as Gateway API objects and applied. Returns the test hosts
 * (to close) and the objects written.
 */
export async function grpcWorld(
  apply: Apply,
  hosts: TestNetns,
): Promise<{ upstreams: NetnsUpstream[]; objects: KubeObject[] }> {
  await apply({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'grpc' } });
  const upstreams = await grpcBackends(apply, hosts, 'grpc', 'echo', ['v1', 'v3']);
  const { resources, problems } = load([grpcPolicy('grpc', 'echo', 'echo.grpc.test')]);
  if (problems.length > 0) throw new Error(JSON.stringify(problems));
  const out = renderGatewayApi(compile(resources).plan, { channel: 'experimental' });
  if (out.problems.length > 0 || !out.objects.some((o) => o.kind === 'GRPCRoute'))
    throw new Error(`the gRPC policy did not render as a GRPCRoute: ${JSON.stringify(out.problems)}`);
  for (const o of out.objects) await apply(o);
  return { upstreams, objects: out.objects };
}

/** Who answers `echo.grpc.test` through the proxy at `address`: with no metadata, `x-user: alice`, `x-user: bob`. */
export async function grpcAnswers(address: string, log: () => string): Promise<string[]> {
  await untilWhoAnswers(address, 'echo.grpc.test', 'echo/v1', log);
  return [
    await whoAnswers(address, 'echo.grpc.test'),
    await whoAnswers(address, 'echo.grpc.test', { 'x-user': 'alice' }),
    await whoAnswers(address, 'echo.grpc.test', { 'x-user': 'bob' }),
  ];
}

/** A gRPC policy on the Gateway `istio-system/public`: v1 stable, `x-user: alice` to v3. */
export function grpcPolicy(namespace: string, service: string, host: string) {
  return {
    apiVersion: 'switchyard.dev/v1alpha1',
    kind: 'TrafficPolicy',
    metadata: { name: service, namespace },
    spec: {
      service,
      port: 80,
      stable: 'v1',
      upstreamProtocol: 'http2',
      hosts: [host],
      gateways: ['istio-system/public'],
      intercepts: [{ name: 'alice', match: { header: 'x-user', exact: 'alice' }, to: { version: 'v3' } }],
    },
  };
}
