/**
 * Canary analysis reads real numbers from a real Prometheus (test/support/prometheus.ts): it
 * scrapes a real gateway carrying real traffic to real upstreams (one canary failing a fifth of
 * its requests), and a small exporter that serves series under Istio's metric and label names
 * (upstream Envoy has no Istio stats filter; documented as such). The built-in queries
 * (core/canary/queries.ts) through the controller's reader (controllers/canary-metrics.ts)
 * give each version's success rate and p99 latency, no data for a version without traffic, 0 %
 * (not "no data") for one that answers only 5xx, and a reason when Prometheus cannot answer.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { prometheusReader } from '../controllers/canary-metrics.js';
import { builtinQuery, fillQuery, type QueryContext } from '../core/canary/queries.js';
import { gatewayConfig, startTestGateway, type TestGateway } from './support/gateway.js';
import { send } from './support/http.js';
import { prometheusGate, startPrometheus, type TestPrometheus } from './support/prometheus.js';
import { startUpstream, type TestUpstream, unusedPort } from './support/upstreams.js';

const gate = prometheusGate();
const SCRAPE_MS = 500;

describe.skipIf(!gate)('canary analysis against a real Prometheus', () => {
  let gw: TestGateway;
  let prom: TestPrometheus;
  let ups: TestUpstream[];
  let exporter: Server;
  const context = (canary: string): QueryContext => ({
    namespace: 'shop',
    policy: 'web',
    service: 'web',
    port: 80,
    canarySubset: canary,
    serviceFqdn: 'web.shop.svc.cluster.local',
    stable: 'v1',
    canary,
    interval: '1m',
  });

  beforeAll(async () => {
    let v2Calls = 0;
    ups = [
      await startUpstream('web/v1'),
      // The canary fails every fifth request.
      await startUpstream('web/v2', (_req, res) => {
        v2Calls++;
        res.writeHead(v2Calls % 5 === 0 ? 500 : 200).end('web/v2');
      }),
      await startUpstream('web/v3'),
      await startUpstream('web/v4', (_req, res) => {
        res.writeHead(503).end('down');
      }),
    ];
    gw = await startTestGateway(
      `apiVersion: switchyard.dev/v1alpha1
kind: TrafficPolicy
metadata: {name: web, namespace: shop}
spec:
  service: web
  port: 80
  hosts: [web.test]
  stable: v1
  canary: {version: v2, weight: 50}
  intercepts: [{name: broken, match: {header: x-broken, exact: 'yes'}, to: {version: v4}}]
${gatewayConfig(Object.fromEntries(ups.map((u) => [u.name, u.url])))}`,
    );
    // Istio's standard metrics as a destination sidecar reports them: canary v2 of shop/web at
    // 80 requests/s answered 200 and 20/s answered 503, 98 % within 100 ms, 2 % at 400 ms.
    const started = Date.now();
    exporter = createServer((_req, res) => {
      const s = (Date.now() - started) / 1000;
      const labels =
        'reporter="destination",destination_workload_namespace="shop",destination_service_name="web",destination_version="v2"';
      const total = 100 * s;
      // The same canary reached through its own Service (gateway-api mode): 60/s 200, 40/s 503.
      const own =
        'reporter="destination",destination_workload_namespace="shop",destination_service_name="web--v2",destination_version="v2"';
      const lines = [
        '# TYPE istio_requests_total counter',
        `istio_requests_total{${labels},response_code="200"} ${80 * s}`,
        `istio_requests_total{${labels},response_code="503"} ${20 * s}`,
        `istio_requests_total{${own},response_code="200"} ${60 * s}`,
        `istio_requests_total{${own},response_code="503"} ${40 * s}`,
        '# TYPE istio_request_duration_milliseconds histogram',
        `istio_request_duration_milliseconds_bucket{${labels},le="100"} ${0.98 * total}`,
        `istio_request_duration_milliseconds_bucket{${labels},le="500"} ${total}`,
        `istio_request_duration_milliseconds_bucket{${labels},le="+Inf"} ${total}`,
        `istio_request_duration_milliseconds_sum{${labels}} ${0.98 * total * 50 + 0.02 * total * 400}`,
        `istio_request_duration_milliseconds_count{${labels}} ${total}`,
      ];
      res.writeHead(200, { 'content-type': 'text/plain; version=0.0.4' }).end(`${lines.join('\n')}\n`);
    });
    await new Promise<void>((r) => exporter.listen(0, '127.0.0.1', r));
    prom = await startPrometheus({
      scrapeIntervalMs: SCRAPE_MS,
      targets: [
        { job: 'gateway', address: new URL(gw.admin).host, path: '/metrics' },
        { job: 'istio', address: `127.0.0.1:${(exporter.address() as AddressInfo).port}`, path: '/metrics' },
      ],
    });
    await prom.targetsUp();
    // Steady traffic for a few scrapes: 1,000 requests split 50/50, and some to the broken v4.
    for (let i = 0; i < 1000; i++) {
      await send(gw.base, { host: 'web.test', ...(i % 50 === 0 ? { headers: { 'x-broken': 'yes' } } : {}) });
      if (i % 200 === 0) await new Promise((r) => setTimeout(r, SCRAPE_MS));
    }
    await new Promise((r) => setTimeout(r, 3 * SCRAPE_MS)); // scraped after the last request
  }, 90_000);

  afterAll(async () => {
    await prom?.stop();
    await gw?.close();
    await Promise.all((ups ?? []).map((u) => u.close()));
    await new Promise((r) => exporter?.close(r));
  });

  const read = (query: string) => prometheusReader(prom.url).read(query);
  const builtin = (
    name: string,
    canary: string,
    backend: 'switchyard-gateway' | 'istio' = 'switchyard-gateway',
  ) => read(builtinQuery(name, backend, context(canary)) as string);

  it("gateway mode: each version's success rate from the gateway's own series", async () => {
    const canary = (await builtin('request-success-rate', 'v2')) as number;
    expect(canary).toBeGreaterThan(75);
    expect(canary).toBeLessThan(85);
    expect(await builtin('request-success-rate', 'v1')).toBe(100);
  });

  it('gateway mode: the p99 latency in milliseconds, per version', async () => {
    const p99 = (await builtin('request-duration', 'v2')) as number;
    expect(p99).toBeGreaterThan(0);
    expect(p99).toBeLessThan(1000);
  });

  it('no traffic is no data; only 5xx is 0 %, not no data', async () => {
    expect(await builtin('request-success-rate', 'v3')).toBeNull();
    expect(await builtin('request-duration', 'v3')).toBeNull();
    expect(await builtin('request-success-rate', 'v4')).toBe(0);
  });

  it("mesh mode: the same built-ins over Istio's standard metric and label names", async () => {
    const rate = (await builtin('request-success-rate', 'v2', 'istio')) as number;
    expect(rate).toBeCloseTo(80, 0);
    const p99 = (await builtin('request-duration', 'v2', 'istio')) as number;
    // Prometheus interpolates within the 100–500 ms bucket: 100 + (0.99 - 0.98) / 0.02 × 400.
    expect(p99).toBeCloseTo(300, 0);
    expect(await builtin('request-success-rate', 'v9', 'istio')).toBeNull();
  });
  it("gateway-api mode: Istio's series of the canary's own Service (web--v2), not the policy's", async () => {
    const own = {
      ...context('v2'),
      canaryService: { name: 'web--v2', fqdn: 'web--v2.shop.svc.cluster.local' },
    };
    expect((await read(builtinQuery('request-success-rate', 'istio', own) as string)) as number).toBeCloseTo(
      60,
      0,
    );
    expect(builtinQuery('request-success-rate', 'envoy', own)).toContain(
      'cluster_name="outbound|80||web--v2.shop.svc.cluster.local"',
    );
  });

  it('a custom query gets its placeholders filled; one that is not a single number is an error', async () => {
    const total = await read(
      fillQuery(
        'sum(switchyard_gateway_requests_total{policy="{{namespace}}/{{policy}}",upstream="{{service}}/{{canary}}"})',
        context('v2'),
      ),
    );
    expect(total).toBeGreaterThan(400);
    expect(total).toBeLessThan(600);
    const many = await read('switchyard_gateway_requests_total');
    expect(many).toEqual({ error: expect.stringMatching(/gave \d+ series; an analysis needs one number/) });
    const bad = await read('sum(');
    expect(bad).toEqual({ error: expect.stringMatching(/^Prometheus answered 400: .*parse error/) });
  });

  it('Prometheus that cannot be reached gives a reason (the run counts it as a failure)', async () => {
    const nobody = `http://127.0.0.1:${await unusedPort()}`;
    const r = await prometheusReader(nobody, { timeoutMs: 1000 }).read('up');
    expect(r).toEqual({ error: expect.stringMatching(/could not be reached/) });
  });
});
