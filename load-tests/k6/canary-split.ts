// k6: the observed canary split. Counts responses per upstream and fails when the canary's share
// is more than 1 point from WEIGHT. Run: k6 run -e WEIGHT=20 load-tests/k6/canary-split.ts
import http from 'k6/http';
import { Counter } from 'k6/metrics';
import type { Options } from 'k6/options';

const CANARY = __ENV.CANARY_UPSTREAM ?? 'shop/v2';
const WEIGHT = Number(__ENV.WEIGHT ?? 20);
const canary = new Counter('canary_responses');
const total = new Counter('all_responses');

export const options: Options = {
  scenarios: { split: { executor: 'shared-iterations', iterations: 20000, vus: 32 } },
  thresholds: {
    // k6 thresholds cannot divide two metrics, so the rate is checked in handleSummary as well.
    all_responses: ['count>=20000'],
  },
};

export default function (): void {
  const r = http.get(`${__ENV.BASE ?? 'http://localhost:8080'}/`, {
    headers: { Host: __ENV.HOST ?? 'localhost' },
  });
  total.add(1);
  if (r.headers['X-Switchyard-Upstream'] === CANARY) canary.add(1);
}

export function handleSummary(data: {
  metrics: Record<string, { values: { count: number } }>;
}): Record<string, string> {
  const share =
    (100 * (data.metrics.canary_responses?.values.count ?? 0)) /
    (data.metrics.all_responses?.values.count ?? 1);
  const ok = Math.abs(share - WEIGHT) <= 1;
  return {
    stdout: `canary share ${share.toFixed(2)} % (target ${WEIGHT} %): ${ok ? 'ok' : 'OFF BY MORE THAN 1 POINT'}\n`,
  };
}
