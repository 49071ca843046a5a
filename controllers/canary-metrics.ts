/**
 * Reads one number per analysis query from Prometheus's HTTP API (`GET /api/v1/query`): a value,
 * null when the query has no data (an empty result, or NaN from 0/0 when nothing was requested in
 * the interval), or the reason it could not be read, which the run counts as a failure. The
 * address is the controller's (`--prometheus`), never a policy's: a tenant cannot make the
 * controller fetch what it likes.
 */
import type { MetricReading } from '../core/canary/progression.js';

export interface MetricsReader {
  read(query: string): Promise<MetricReading['value']>;
}

interface QueryAnswer {
  status: 'success' | 'error';
  error?: string;
  data?: { resultType: string; result: { value?: [number, string] }[] | [number, string] };
}

export function prometheusReader(
  address: string,
  opts: { timeoutMs?: number; fetch?: typeof fetch } = {},
): MetricsReader {
  const get = opts.fetch ?? fetch;
  return {
    async read(query) {
      const url = new URL('/api/v1/query', address);
      url.searchParams.set('query', query);
      let answer: QueryAnswer;
      try {
        const res = await get(url, { signal: AbortSignal.timeout(opts.timeoutMs ?? 5_000) });
        answer = (await res.json()) as QueryAnswer;
        if (!res.ok || answer.status !== 'success')
          return { error: `Prometheus answered ${res.status}: ${answer.error ?? 'no reason given'}` };
      } catch (e) {
        return { error: `Prometheus at ${address} could not be reached: ${(e as Error).message}` };
      }
      const data = answer.data;
      let raw: string | undefined;
      if (data?.resultType === 'scalar') raw = (data.result as [number, string])[1];
      else if (data?.resultType === 'vector') {
        const series = data.result as { value?: [number, string] }[];
        if (series.length > 1)
          return {
            error: `the query gave ${series.length} series; an analysis needs one number (aggregate it, e.g. with sum)`,
          };
        raw = series[0]?.value?.[1];
      } else
        return {
          error: `the query gave a ${data?.resultType ?? 'missing'} result; an analysis needs one number`,
        };
      if (raw === undefined) return null;
      const value = Number(raw);
      return Number.isNaN(value) ? null : value;
    },
  };
}
