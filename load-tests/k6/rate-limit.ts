// k6: rate-limit enforcement. One API key sends faster than its limit; every refusal must be a 429
// with retry-after, and no more than LIMIT requests per window may pass.
// Run against the demo (5 per 10 s per x-api-key): k6 run -e LIMIT=5 -e WINDOW=10 load-tests/k6/rate-limit.ts
import { check } from 'k6';
import http from 'k6/http';
import { Counter } from 'k6/metrics';
import type { Options } from 'k6/options';

const LIMIT = Number(__ENV.LIMIT ?? 5);
const WINDOW = Number(__ENV.WINDOW ?? 10);
const admitted = new Counter('admitted');

export const options: Options = {
  scenarios: {
    burst: {
      executor: 'constant-arrival-rate',
      rate: 20,
      timeUnit: '1s',
      duration: `${WINDOW * 3}s`,
      preAllocatedVUs: 10,
    },
  },
  thresholds: {
    checks: ['rate==1'],
    // At most LIMIT per window, over the run's windows (plus one partial window at each end).
    admitted: [`count<=${LIMIT * 4}`],
  },
};

export default function (): void {
  const r = http.get(`${__ENV.BASE ?? 'http://localhost:8080'}/`, {
    headers: { Host: __ENV.HOST ?? 'localhost', 'x-api-key': 'k6' },
  });
  if (r.status === 200) admitted.add(1);
  check(r, {
    'status is 200 or 429': (res) => res.status === 200 || res.status === 429,
    '429 carries retry-after': (res) => res.status !== 429 || Number(res.headers['Retry-After']) > 0,
    '429 says which limit': (res) =>
      res.status !== 429 || res.headers['X-Switchyard-Error'] === 'SY_GW_RATE_LIMITED',
  });
}
