/**
 * The two metrics every proxied request updates (requests by policy, route, destination and
 * status; time to the response headers by policy and destination), counted in plain maps and
 * handed to prom-client only when scraped. prom-client hashes and validates the label set on every
 * `inc` and `observe`; here a request costs one string key and a map lookup per metric. They are
 * registered on the gateway's prom-client registry as metrics of their own (the shape prom-client's
 * Registry and AggregatorRegistry read), so `/metrics`, the workers' aggregation and the canary
 * analysis's queries see the same series as before.
 */
import type { Registry } from 'prom-client';

type Labels = Record<string, string>;
interface Value {
  labels: Labels;
  value: number;
  metricName?: string;
}

/** What prom-client's Registry reads of a metric: a name, help, type, aggregator and `get()`. */
abstract class ScrapedMetric {
  readonly aggregator = 'sum';
  constructor(
    readonly name: string,
    readonly help: string,
    readonly type: 'counter' | 'histogram',
    registry: Registry,
  ) {
    registry.registerMetric(this as never);
  }
  protected abstract values(): Value[];
  abstract reset(): void;
  async get(): Promise<{ name: string; help: string; type: string; aggregator: string; values: Value[] }> {
    return {
      name: this.name,
      help: this.help,
      type: this.type,
      aggregator: this.aggregator,
      values: this.values(),
    };
  }
}

export class RequestCounter extends ScrapedMetric {
  private readonly series = new Map<string, { labels: Labels; value: number }>();

  constructor(registry: Registry) {
    super(
      'switchyard_gateway_requests_total',
      'Requests by policy, route, destination and status',
      'counter',
      registry,
    );
  }

  inc(policy: string, route: string, upstream: string, status: number): void {
    const key = `${policy}\u0000${route}\u0000${upstream}\u0000${status}`;
    const s = this.series.get(key);
    if (s) s.value++;
    else this.series.set(key, { labels: { policy, route, upstream, status: String(status) }, value: 1 });
  }

  protected values(): Value[] {
    return [...this.series.values()].map((s) => ({ labels: { ...s.labels }, value: s.value }));
  }

  reset(): void {
    this.series.clear();
  }
}

export class DurationHistogram extends ScrapedMetric {
  private readonly series = new Map<
    string,
    { labels: Labels; counts: Float64Array; sum: number; count: number }
  >();

  constructor(
    registry: Registry,
    readonly buckets: readonly number[],
  ) {
    super(
      'switchyard_gateway_request_duration_seconds',
      'Time to the response headers, by policy and destination (a canary analysis compares versions)',
      'histogram',
      registry,
    );
  }

  observe(policy: string, upstream: string, seconds: number): void {
    const key = `${policy}\u0000${upstream}`;
    let s = this.series.get(key);
    if (!s) {
      s = {
        labels: { policy, upstream },
        counts: new Float64Array(this.buckets.length + 1),
        sum: 0,
        count: 0,
      };
      this.series.set(key, s);
    }
    // The first bucket whose bound holds the value (`le`); past the last, only +Inf.
    let i = 0;
    while (i < this.buckets.length && seconds > (this.buckets[i] as number)) i++;
    s.counts[i] = (s.counts[i] as number) + 1;
    s.sum += seconds;
    s.count++;
  }

  protected values(): Value[] {
    const out: Value[] = [];
    for (const s of this.series.values()) {
      let cumulative = 0;
      this.buckets.forEach((le, i) => {
        cumulative += s.counts[i] as number;
        out.push({
          metricName: `${this.name}_bucket`,
          labels: { ...s.labels, le: String(le) },
          value: cumulative,
        });
      });
      out.push({ metricName: `${this.name}_bucket`, labels: { ...s.labels, le: '+Inf' }, value: s.count });
      out.push({ metricName: `${this.name}_sum`, labels: { ...s.labels }, value: s.sum });
      out.push({ metricName: `${this.name}_count`, labels: { ...s.labels }, value: s.count });
    }
    return out;
  }

  reset(): void {
    this.series.clear();
  }
}
