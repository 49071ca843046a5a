/**
 * The two metrics every proxied request updates (requests by policy, route, destination and
 * status; time to the response headers by policy and destination), counted in plain maps and
 * handed to prom-client only when scraped. prom-client hashes and validates the label set on every
 * `inc` and `observe`; here a request's series are found once per route and destination of a plan
 * (`of`) and kept by the gateway, so a request costs an increment. They are registered on the
 * gateway's prom-client registry as metrics of their own (the shape prom-client's Registry and
 * AggregatorRegistry read), so `/metrics`, the workers' aggregation and the canary analysis's
 * queries see the same series as before.
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

/** One policy, route and destination's request counts by status: what a request increments. */
export class RouteRequests {
  private readonly byStatus = new Map<number, number>();
  constructor(readonly labels: Readonly<Labels>) {}

  inc(status: number): void {
    this.byStatus.set(status, (this.byStatus.get(status) ?? 0) + 1);
  }

  values(): Value[] {
    const out: Value[] = [];
    for (const [status, value] of this.byStatus)
      out.push({ labels: { ...this.labels, status: String(status) }, value });
    return out;
  }

  reset(): void {
    this.byStatus.clear();
  }
}

export class RequestCounter extends ScrapedMetric {
  private readonly series = new Map<string, RouteRequests>();

  constructor(registry: Registry) {
    super(
      'switchyard_gateway_requests_total',
      'Requests by policy, route, destination and status',
      'counter',
      registry,
    );
  }

  /** The counts of one policy, route and destination; kept by the caller, it costs a request no lookup. */
  of(policy: string, route: string, upstream: string): RouteRequests {
    const key = `${policy}\u0000${route}\u0000${upstream}`;
    let s = this.series.get(key);
    if (!s) {
      s = new RouteRequests({ policy, route, upstream });
      this.series.set(key, s);
    }
    return s;
  }

  inc(policy: string, route: string, upstream: string, status: number): void {
    this.of(policy, route, upstream).inc(status);
  }

  protected values(): Value[] {
    return [...this.series.values()].flatMap((s) => s.values());
  }

  /** Counts go to zero; the series stay, so one kept by a caller keeps counting. */
  reset(): void {
    for (const s of this.series.values()) s.reset();
  }
}

/** One policy and destination's durations: what a request observes. */
export class DestinationDurations {
  readonly counts: Float64Array;
  sum = 0;
  count = 0;
  constructor(
    readonly labels: Readonly<Labels>,
    private readonly buckets: readonly number[],
  ) {
    this.counts = new Float64Array(buckets.length + 1);
  }

  observe(seconds: number): void {
    // The first bucket whose bound holds the value (`le`); past the last, only +Inf.
    let i = 0;
    while (i < this.buckets.length && seconds > (this.buckets[i] as number)) i++;
    this.counts[i] = (this.counts[i] as number) + 1;
    this.sum += seconds;
    this.count++;
  }

  reset(): void {
    this.counts.fill(0);
    this.sum = 0;
    this.count = 0;
  }
}

export class DurationHistogram extends ScrapedMetric {
  private readonly series = new Map<string, DestinationDurations>();

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

  /** The durations of one policy and destination; kept by the caller, it costs a request no lookup. */
  of(policy: string, upstream: string): DestinationDurations {
    const key = `${policy}\u0000${upstream}`;
    let s = this.series.get(key);
    if (!s) {
      s = new DestinationDurations({ policy, upstream }, this.buckets);
      this.series.set(key, s);
    }
    return s;
  }

  observe(policy: string, upstream: string, seconds: number): void {
    this.of(policy, upstream).observe(seconds);
  }

  protected values(): Value[] {
    const out: Value[] = [];
    for (const s of this.series.values()) {
      if (s.count === 0) continue;
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

  /** Counts go to zero; the series stay, so one kept by a caller keeps counting. */
  reset(): void {
    for (const s of this.series.values()) s.reset();
  }
}

/** A counter with one label, counted in a plain map (for events of the hot path, as a mirror copy's result). */
export class CountsByLabel extends ScrapedMetric {
  private readonly counts = new Map<string, number>();
  constructor(
    registry: Registry,
    name: string,
    help: string,
    private readonly label: string,
  ) {
    super(name, help, 'counter', registry);
  }

  inc(value: string): void {
    this.counts.set(value, (this.counts.get(value) ?? 0) + 1);
  }

  protected values(): Value[] {
    return [...this.counts].map(([v, value]) => ({ labels: { [this.label]: v }, value }));
  }

  reset(): void {
    this.counts.clear();
  }
}
