/**
 * The PromQL a canary analysis reads (core/canary/progression.ts judges the numbers), from one of
 * three sets of series (a backend says which it reads). Built-in metrics measure the canary
 * version only, over the analysis interval:
 * - `request-success-rate`: the percentage of its requests not answered 5xx;
 * - `request-duration`: the 99th percentile of its latency, in milliseconds.
 * `switchyard-gateway` is the Node gateway's own series (`switchyard_gateway_*`, labelled by policy
 * and upstream); mesh mode reads Istio's standard metrics (`istio_requests_total`,
 * `istio_request_duration_milliseconds`, as reported by the destination's sidecar) or, with
 * `controller --mesh-metrics envoy`, Envoy's own per-cluster statistics of the proxies that carry
 * the traffic (`envoy_cluster_upstream_rq`, `envoy_cluster_upstream_rq_time`): each subset is its
 * own Envoy cluster, `outbound|<port>|<subset>|<service FQDN>`, labelled `cluster_name`,
 * `response_code` and `response_code_class` by the stats tags of Istio's proxy bootstrap. Those
 * need no Istio stats filter, so they work where the standard metrics are off (and in any proxy
 * built from upstream Envoy that carries Istio's tags). A custom query may use the placeholders
 * below. Every value put into a query is a DNS label or version name from a validated policy, so
 * it cannot break out of its label matcher.
 */
export type MetricSeries = 'switchyard-gateway' | 'istio' | 'envoy';

export interface QueryContext {
  namespace: string;
  policy: string;
  service: string;
  /** The Service port the policy routes (Envoy's cluster names carry it). */
  port: number;
  /** The canary's Istio subset and the Service's FQDN, which name its Envoy cluster. */
  canarySubset: string;
  serviceFqdn: string;
  /**
   * Where each version has a Service of its own (`<service>--<version>`, the Gateway API backend)
   * instead of a subset: the canary's Service and its FQDN, which name its series instead.
   */
  canaryService?: { name: string; fqdn: string };
  stable: string;
  canary: string;
  /** A Prometheus range, e.g. 30s or 1m. */
  interval: string;
}

const PLACEHOLDERS: Record<string, (c: QueryContext) => string> = {
  namespace: (c) => c.namespace,
  policy: (c) => c.policy,
  service: (c) => c.service,
  port: (c) => String(c.port),
  stable: (c) => c.stable,
  canary: (c) => c.canary,
  interval: (c) => c.interval,
};

/** A custom query with `{{namespace}}`, `{{policy}}`, `{{service}}`, `{{port}}`, `{{stable}}`, `{{canary}}` and `{{interval}}` filled in. */
export function fillQuery(query: string, c: QueryContext): string {
  return query.replace(/\{\{\s*(\w+)\s*\}\}/g, (whole, name: string) => PLACEHOLDERS[name]?.(c) ?? whole);
}

function gatewaySelector(c: QueryContext): string {
  return `policy="${c.namespace}/${c.policy}",upstream="${c.service}/${c.canary}"`;
}

function istioSelector(c: QueryContext): string {
  return `reporter="destination",destination_workload_namespace="${c.namespace}",destination_service_name="${c.canaryService?.name ?? c.service}",destination_version="${c.canary}"`;
}

/** The canary's Envoy cluster, as istiod names it: its subset's, or its own Service's. */
function envoySelector(c: QueryContext): string {
  return c.canaryService
    ? `cluster_name="outbound|${c.port}||${c.canaryService.fqdn}"`
    : `cluster_name="outbound|${c.port}|${c.canarySubset}|${c.serviceFqdn}"`;
}

function envoyQuery(name: string, c: QueryContext, range: string): string | undefined {
  const selector = envoySelector(c);
  if (name === 'request-success-rate')
    // Envoy counts each answer twice under one name, by code and by class: count the classes.
    return `100 * (1 - ((sum(rate(envoy_cluster_upstream_rq{${selector},response_code_class="5xx"}${range})) or vector(0)) / sum(rate(envoy_cluster_upstream_rq{${selector},response_code_class!=""}${range}))))`;
  if (name === 'request-duration')
    return `histogram_quantile(0.99, sum by (le) (rate(envoy_cluster_upstream_rq_time_bucket{${selector}}${range})))`;
  return undefined;
}

/** The query of a built-in metric, or undefined for a name that is not one. */
export function builtinQuery(name: string, backend: MetricSeries, c: QueryContext): string | undefined {
  const range = `[${c.interval}]`;
  if (backend === 'envoy') return envoyQuery(name, c, range);
  if (name === 'request-success-rate') {
    const [series, selector, code] =
      backend === 'switchyard-gateway'
        ? ['switchyard_gateway_requests_total', gatewaySelector(c), 'status']
        : ['istio_requests_total', istioSelector(c), 'response_code'];
    // `or vector(0)`: a canary answering nothing but 5xx has no series of good answers, and must
    // read as 0 %, not as no data. The ratio first, then × 100: (100 × x) / x is not always 100 in
    // floating point (a healthy version read 99.99999999999999 %, under a `min: 100` threshold a
    // failure), x / x is always 1.
    return `100 * ((sum(rate(${series}{${selector},${code}!~"5.."}${range})) or vector(0)) / sum(rate(${series}{${selector}}${range})))`;
  }
  if (name === 'request-duration') {
    return backend === 'switchyard-gateway'
      ? `1000 * histogram_quantile(0.99, sum by (le) (rate(switchyard_gateway_request_duration_seconds_bucket{${gatewaySelector(c)}}${range})))`
      : `histogram_quantile(0.99, sum by (le) (rate(istio_request_duration_milliseconds_bucket{${istioSelector(c)}}${range})))`;
  }
  return undefined;
}
