// Shared by the authscale k6 scripts: the base URL, the demo users, and the contract's calls
// (API.md). Run any script with `k6 run loadtest/k6/<script>.js`; see README.md beside this file.
import http from 'k6/http';

export const BASE = (__ENV.BASE_URL || 'http://127.0.0.1:8080').replace(/\/$/, '');

// The demo users. Many tokens or sessions for the same user are fine for a load test.
export const USERS = [
  { username: 'alice', password: 'wonderland' },
  { username: 'bob', password: 'builder' },
];

// The options of tokens.js and sessions.js, which load one route the same way so that their
// figures compare: VUS virtual users for DURATION, each request tagged `me`; the run fails on any
// failed request or a p99 latency over 500 ms.
export function steadyMeOptions() {
  return {
    vus: Number(__ENV.VUS || 64),
    duration: __ENV.DURATION || '30s',
    thresholds: {
      'http_req_failed{name:me}': ['rate==0'],
      'http_req_duration{name:me}': ['p(99)<500'],
    },
  };
}

const JSON_HEADERS = { headers: { 'Content-Type': 'application/json' } };

// POST /auth/login: { access, refresh } or null. Slow on purpose (Argon2id).
export function login(user) {
  const res = http.post(`${BASE}/auth/login`, JSON.stringify(user), {
    ...JSON_HEADERS,
    tags: { name: 'login' },
  });
  if (res.status !== 200) {
    return null;
  }
  const body = res.json();
  return { access: body.access_token, refresh: body.refresh_token };
}

// POST /auth/refresh: the new { access, refresh } (the old refresh token is spent now), or null
// when the refresh token is expired, spent or revoked (401) or the store is down (503).
export function refresh(refreshToken) {
  const res = http.post(`${BASE}/auth/refresh`, JSON.stringify({ refresh_token: refreshToken }), {
    ...JSON_HEADERS,
    tags: { name: 'refresh' },
  });
  if (res.status !== 200) {
    return null;
  }
  const body = res.json();
  return { access: body.access_token, refresh: body.refresh_token };
}

// POST /auth/session/login: the value of the sid cookie, or null.
export function sessionLogin(user) {
  const res = http.post(`${BASE}/auth/session/login`, JSON.stringify(user), {
    ...JSON_HEADERS,
    tags: { name: 'session_login' },
  });
  if (res.status !== 204 && res.status !== 200) {
    return null;
  }
  const sid = res.cookies.sid;
  return sid && sid.length > 0 ? sid[0].value : null;
}

export function bearer(access, name) {
  return { headers: { Authorization: `Bearer ${access}` }, tags: { name } };
}
