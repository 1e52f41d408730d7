// Tokens, the same flow as the harness's oha run: one access token for every request to
// GET /api/me, verified by a token replica alone (no store look-up).
//
//   k6 run loadtest/k6/tokens.js                      # the defaults of steadyMeOptions in lib.js
//   k6 run -e BASE_URL=http://127.0.0.1:8080 -e VUS=32 -e DURATION=1m loadtest/k6/tokens.js
//
// The token is taken once in setup(); access tokens live 5 minutes by default, so keep DURATION
// below that (or use realistic.js, which refreshes).
import http from 'k6/http';
import { check, fail } from 'k6';
import { BASE, USERS, bearer, login, steadyMeOptions } from './lib.js';

// VUS virtual users for DURATION, failing on any failed /me request or a slow p99: see
// steadyMeOptions in lib.js for the defaults and the thresholds.
export const options = steadyMeOptions();

export function setup() {
  const pair = login(USERS[1]);
  if (!pair) {
    fail(`cannot log in at ${BASE}/auth/login`);
  }
  return { access: pair.access };
}

export default function (data) {
  const res = http.get(`${BASE}/api/me`, bearer(data.access, 'me'));
  check(res, { 'me 200': (r) => r.status === 200 });
}
