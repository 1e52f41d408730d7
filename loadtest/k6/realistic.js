// A realistic token client, the flow of the study note's diagrams: log in once, call the API
// with the access token; when the API answers 401 because the access token expired, refresh
// (rotation: keep the new refresh token, the old one is spent); when the refresh fails (expired,
// spent or revoked refresh token), log in again. Every virtual user is one such client.
//
// Start the stack with short-lived access tokens so refreshes happen during the run:
//
//   cargo xtask up --access-ttl 20
//   k6 run loadtest/k6/realistic.js                   # 20 clients, 2 minutes
//   k6 run -e VUS=50 -e DURATION=5m -e THINK=0.2 loadtest/k6/realistic.js
//
// Counters at the end: refreshes (after a 401), relogins (after a failed refresh), and
// unexpected (any answer the flow does not explain). A clean run has unexpected == 0.
import http from 'k6/http';
import { check, sleep } from 'k6';
import { Counter } from 'k6/metrics';
import { BASE, USERS, bearer, login, refresh } from './lib.js';

const refreshes = new Counter('refreshes');
const relogins = new Counter('relogins');
const unexpected = new Counter('unexpected');

export const options = {
  vus: Number(__ENV.VUS || 20),
  duration: __ENV.DURATION || '2m',
  thresholds: {
    unexpected: ['count==0'],
    'http_req_duration{name:me}': ['p(99)<500'],
    // k6 breaks a metric down per request name only when a threshold names it. These always
    // hold; they are here so that the summary (and cargo xtask bench's report) has each route.
    'http_req_duration{name:applicants}': ['max>=0'],
    'http_req_duration{name:refresh}': ['max>=0'],
    'http_req_duration{name:login}': ['max>=0'],
  },
};

const THINK = Number(__ENV.THINK || 0.1); // seconds between two calls of one client

// Per virtual user: k6 runs each VU in its own JavaScript runtime, so module state is per client.
let pair = null;

function ensureLoggedIn() {
  while (pair === null) {
    pair = login(USERS[__VU % USERS.length]);
    if (pair === null) {
      sleep(1); // 429 (throttled) or 503 (store down): back off, then try again
    }
  }
}

// One API call with the 401 -> refresh -> login fallback. Returns the final response.
function call(path, name) {
  ensureLoggedIn();
  let res = http.get(`${BASE}${path}`, bearer(pair.access, name));
  if (res.status !== 401) {
    return res;
  }
  const next = refresh(pair.refresh);
  if (next !== null) {
    refreshes.add(1);
    pair = next;
  } else {
    relogins.add(1);
    pair = null;
    ensureLoggedIn();
  }
  return http.get(`${BASE}${path}`, bearer(pair.access, name));
}

export default function () {
  const me = call('/api/me', 'me');
  check(me, { 'me 200': (r) => r.status === 200 }) || unexpected.add(1);
  // Bob is a recruiter and may see applicants; Alice gets 403 (checked before 404).
  const job = 1 + Math.floor(Math.random() * 10);
  const applicants = call(`/api/jobs/${job}/applicants`, 'applicants');
  const recruiter = (__VU % USERS.length) === 1;
  const expected = recruiter ? 200 : 403;
  check(applicants, { 'applicants as expected': (r) => r.status === expected }) ||
    unexpected.add(1);
  sleep(THINK);
}
