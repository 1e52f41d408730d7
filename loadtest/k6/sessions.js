// Sessions, the same flow as the harness's oha run: one sid cookie for every request to
// GET /sapi/me; each request costs the session replica one Redis round trip (a small read-and-renew script).
//
//   k6 run loadtest/k6/sessions.js                    # the defaults of steadyMeOptions in lib.js
//   k6 run -e BASE_URL=http://127.0.0.1:8080 -e VUS=32 -e DURATION=1m loadtest/k6/sessions.js
import http from 'k6/http';
import { check, fail } from 'k6';
import { BASE, USERS, sessionLogin, steadyMeOptions } from './lib.js';

// VUS virtual users for DURATION, failing on any failed /me request or a slow p99: see
// steadyMeOptions in lib.js for the defaults and the thresholds.
export const options = steadyMeOptions();

export function setup() {
  const sid = sessionLogin(USERS[1]);
  if (!sid) {
    fail(`cannot log in at ${BASE}/auth/session/login`);
  }
  return { sid };
}

export default function (data) {
  const res = http.get(`${BASE}/sapi/me`, { cookies: { sid: data.sid }, tags: { name: 'me' } });
  check(res, { 'me 200': (r) => r.status === 200 });
}
