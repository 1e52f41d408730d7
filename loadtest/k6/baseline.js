// The no-auth baseline: GET /api/ping and /sapi/ping on the same replicas, no credentials.
// Whatever /api/me or /sapi/me cost beyond this is the price of the auth method.
//
//   k6 run loadtest/k6/baseline.js
//   k6 run -e ROUTE=/sapi/ping loadtest/k6/baseline.js
import http from 'k6/http';
import { check } from 'k6';
import { BASE } from './lib.js';

const ROUTE = __ENV.ROUTE || '/api/ping';

export const options = {
  vus: Number(__ENV.VUS || 64),
  duration: __ENV.DURATION || '30s',
  thresholds: { 'http_req_failed{name:ping}': ['rate==0'] },
};

export default function () {
  const res = http.get(`${BASE}${ROUTE}`, { tags: { name: 'ping' } });
  check(res, { 'ping 200': (r) => r.status === 200 });
}
