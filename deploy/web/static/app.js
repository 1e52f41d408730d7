// The page: wires the buttons to the two clients and draws their state.
//
//   tokens.js    the token client (login, calls, automatic refresh, logout, replay)
//   sessions.js  the session client (the same calls with a cookie)
//   http.js      one measured request
//   jwt.js       decoding a JWT and explaining its claims
//   log.js       the request log and the replica strips
//   cluster.js   which issuers and replicas run, and their counters (nginx's /cluster routes)
//   journey.js   the parts of the cluster one request went through
//   diagram.js   the cluster drawn in SVG, each request animated along its path
//   table.js     the study note's comparison table with live figures
//   scenes.js    short sequences a learner can start: expiry, replay, 429, the store stopped

import { ClusterView } from './cluster.js';
import { Diagram } from './diagram.js';
import { journeyOf } from './journey.js';
import { HEADER_NOTES, clockTime, describeClaim, relative } from './jwt.js';
import { ReplicaStrip, RequestLog, element } from './log.js';
import { Scenes } from './scenes.js';
import { SessionClient } from './sessions.js';
import { ComparisonTable } from './table.js';
import { TokenClient } from './tokens.js';

const POLL_MS = 2000;

const $ = (selector) => document.querySelector(selector);

const log = new RequestLog($('#log'));
const strips = {
  token: new ReplicaStrip($('#strip-token'), $('#strip-token-summary')),
  session: new ReplicaStrip($('#strip-session'), $('#strip-session-summary')),
};

const diagram = new Diagram($('#diagram'), $('#diagram-narration'), $('#journeys'));
const table = new ComparisonTable();
const cluster = new ClusterView({
  onChange: () => {
    diagram.setCluster(cluster);
    table.setCluster(cluster);
  },
});

/** The measuring and drawing of each request, one after another, so they keep their order. */
let drawn = Promise.resolve();

/** Every request of both clients comes through here: log it, note who answered, draw its path. */
function onRequest(entry) {
  log.add(entry);
  const replicaCall = entry.path.startsWith('/api/') || entry.path.startsWith('/sapi/');
  if (replicaCall) {
    strips[entry.kind].add(entry.replica);
    $(`#${entry.kind}-answer`).textContent = JSON.stringify(entry.body, null, 2);
  }
  drawn = drawn.then(async () => {
    // Did the replica ask the store for this call? Its own counters say (cluster.js).
    const measured = replicaCall && entry.replica ? await cluster.remeasure(entry.kind, entry.replica) : null;
    if (replicaCall) {
      table.addCall(entry, measured);
    }
    diagram.show(journeyOf(entry, measured));
  });
}

const tokens = new TokenClient({ onRequest, onChange: drawTokens });
const sessions = new SessionClient({ onRequest, onChange: drawSessions });

// ---- Tokens ------------------------------------------------------------------------------------

onSubmit('#token-login', (username, password) => tokens.login(username, password));
onClick('#token-me', () => tokens.call('/api/me'));
onClick('#token-jobs', () => tokens.call('/api/jobs/3/applicants'));
onClick('#token-refresh', () => tokens.refresh());
onClick('#token-replay', () => tokens.replaySpent());
onClick('#token-logout', () => tokens.logout());
poll('#token-poll', () => tokens.loggedIn && tokens.call('/api/me', { automatic: true }));

/** The access token's `iat` and `exp` claims while there is one, for the countdown. */
let accessTimes = null;

function drawTokens() {
  $('#token-status').textContent = tokens.status;
  $('#token-refresh').disabled = !tokens.loggedIn;
  $('#token-logout').disabled = !tokens.loggedIn;
  $('#token-replay').disabled = !tokens.canReplay;
  const access = tokens.access;
  $('#token-view').hidden = access === null;
  accessTimes = access && { iat: access.payload.iat, exp: access.payload.exp };
  drawReadable();
  if (access === null) {
    return;
  }
  if (tokens.lifetime !== null) {
    $('#ttl-note').replaceChildren(
      `Access tokens in this stack live ${tokens.lifetime} s (the expires_in of the last token pair). Set it with `,
      element('code', '', 'cargo xtask up --access-ttl SECONDS'),
      '.',
    );
  }
  const raw = $('#token-raw');
  raw.querySelector('.part-header').textContent = access.raw.header;
  raw.querySelector('.part-payload').textContent = access.raw.payload;
  raw.querySelector('.part-signature').textContent = access.raw.signature;

  drawClaims($('#token-header'), access.header, (name) => HEADER_NOTES[name] ?? '(not explained here)');
  drawClaims($('#token-payload'), access.payload, describeClaim);
  $('#token-signature').textContent = `${access.signatureBytes} bytes: an RS256 signature over `
    + "\"header.payload\" exactly as sent, made with the issuer's private key. Change one character "
    + 'of the payload and it no longer matches: the replica answers 401. The page cannot check it '
    + "(it has no need to); every replica does, with the issuer's public key.";

  const refresh = tokens.refreshToken.payload;
  $('#refresh-info').textContent = `Also a JWT (typ rt+jwt), but only ever sent to /auth/refresh and `
    + `/auth/logout, never to the API. Family ${short(refresh.fam)}, id ${short(refresh.jti)}, `
    + `expires ${relative(refresh.exp - Date.now() / 1000)}. Each refresh spends it and returns a new one.`;
  const spent = tokens.spentRefreshToken;
  $('#spent-info').textContent = spent === null
    ? 'No spent refresh token yet: refresh once, then the replay button sends the old one again.'
    : `Spent: id ${short(spent.payload.jti)}, kept only for the replay button.`
      + (tokens.familyRevoked ? ' The family is revoked: the next refresh will fail.' : '');
  drawCountdown();
}

/** One <dt>"name": value</dt><dd>explanation</dd> pair per entry of `object`. */
function drawClaims(list, object, explain) {
  list.replaceChildren(
    ...Object.entries(object).flatMap(([name, value]) => [
      element('dt', '', `"${name}": ${JSON.stringify(value)}`),
      element('dd', '', explain(name, value)),
    ]),
  );
}

/** The access token's remaining life, redrawn four times a second. */
function drawCountdown() {
  if (accessTimes === null) {
    return;
  }
  const { exp, iat } = accessTimes;
  const left = exp - Date.now() / 1000;
  const progress = $('#token-progress');
  progress.max = exp - iat;
  progress.value = Math.max(0, left);
  $('#token-countdown').textContent = left > 0
    ? `Expires ${relative(left)}, at ${clockTime(exp)}.`
    : `Expired ${relative(left)}. The next API call gets 401; the page then refreshes it and tries again.`;
  $('#token-countdown').classList.toggle('expired', left <= 0);
}
setInterval(drawCountdown, 250);

// ---- Sessions ----------------------------------------------------------------------------------

onSubmit('#session-login', (username, password) => sessions.login(username, password));
onClick('#session-me', () => sessions.call('/sapi/me'));
onClick('#session-jobs', () => sessions.call('/sapi/jobs/3/applicants'));
onClick('#session-logout', () => sessions.logout());
poll('#session-poll', () => sessions.loggedIn && sessions.call('/sapi/me', { automatic: true }));

function drawSessions() {
  $('#session-status').textContent = sessions.status;
  $('#session-logout').disabled = sessions.loggedIn === false;
  // Shown to prove the point: the sid cookie is not in it.
  $('#cookie-view').textContent = document.cookie === '' ? '"" (empty)' : JSON.stringify(document.cookie);
  drawReadable();
}

/** The table's "can the client read its auth data?" row, from what this page can see now. */
function drawReadable() {
  const access = tokens.access;
  table.setReadable({ claims: access && Object.keys(access.payload).length, cookie: document.cookie });
}

// ---- Scenes ------------------------------------------------------------------------------------

const scenes = new Scenes({ tokens, diagram, onRequest, status: $('#scene-status') });
onClick('#scene-expiry', () => scenes.run(scenes.refreshAfterExpiry));
onClick('#scene-replay', () => scenes.run(scenes.replayedRefresh));
onClick('#scene-429', () => scenes.run(() => scenes.wrongPasswords($('#scene-429'))));
onClick('#scene-store', () => scenes.run(scenes.storeStopped));

// ---- Shared --------------------------------------------------------------------------------------

onClick('#log-clear', () => log.clear());

function onSubmit(selector, login) {
  $(selector).addEventListener('submit', (event) => {
    event.preventDefault();
    const form = new FormData(event.target);
    login(form.get('username'), form.get('password'));
  });
}

function onClick(selector, action) {
  $(selector).addEventListener('click', action);
}

/** While the checkbox is ticked, runs `tick` every 2 s, never two at once. */
function poll(selector, tick) {
  const checkbox = $(selector);
  let timer = null;
  let running = false;
  checkbox.addEventListener('change', () => {
    clearInterval(timer);
    if (!checkbox.checked) {
      return;
    }
    timer = setInterval(async () => {
      if (running) {
        return;
      }
      running = true;
      try {
        await tick();
      } finally {
        running = false;
      }
    }, POLL_MS);
  });
}

function short(id) {
  return String(id).slice(0, 8) + '…';
}

drawTokens();
drawSessions();
// The diagram first: the probe below is drawn on it (and measured) once the replicas are known.
await cluster.poll();
cluster.start();
// The page cannot see the session cookie, so it asks a session replica whether there is one.
sessions.call('/sapi/me', { probe: true });
