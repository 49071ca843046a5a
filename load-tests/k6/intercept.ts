// k6: intercept routing under load. Requests with the preview header must all reach the preview;
// the others must never. Run: k6 run -e BASE=http://localhost:8080 -e HOST=localhost load-tests/k6/intercept.ts
// (against `npm run demo`). k6 runs TypeScript directly since v0.57.
import { check } from 'k6';
import http from 'k6/http';
import type { Options } from 'k6/options';

export const options: Options = {
  scenarios: {
    intercept: {
      executor: 'constant-arrival-rate',
      rate: 200,
      timeUnit: '1s',
      duration: '30s',
      preAllocatedVUs: 20,
    },
  },
  thresholds: { checks: ['rate==1'], http_req_failed: ['rate<0.01'] },
};

const BASE = __ENV.BASE ?? 'http://localhost:8080';
const HOST = __ENV.HOST ?? 'localhost';
const PREVIEW = __ENV.PREVIEW ?? 'pr-42';
const PREVIEW_UPSTREAM = __ENV.PREVIEW_UPSTREAM ?? 'shop/pr-42-7f3a2c1';

export default function (): void {
  const intercepted = http.get(`${BASE}/`, { headers: { Host: HOST, 'x-switchyard-preview': PREVIEW } });
  check(intercepted, {
    'intercepted request reaches the preview': (r) => r.headers['X-Switchyard-Upstream'] === PREVIEW_UPSTREAM,
  });
  const plain = http.get(`${BASE}/`, { headers: { Host: HOST } });
  check(plain, {
    'plain request never reaches the preview': (r) => r.headers['X-Switchyard-Upstream'] !== PREVIEW_UPSTREAM,
  });
}
