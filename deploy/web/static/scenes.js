// Scenes: short sequences a learner starts with one button, each drawn on the diagram.
//
//   refresh after expiry   wait for the access token to expire, call: 401, refresh, retry
//   replayed refresh       refresh, send the spent token again (theft), the family is revoked,
//                          the next refresh fails and the page is logged out
//   wrong passwords        wrong passwords for one user until the issuer answers 429
//   store stopped          an illustration, since stopping Redis is not the page's to do
//
// The first three are real requests, logged and animated like any other. The scene runs them in
// order and says, in the aria-live status line, what it is waiting for.

import { send } from './http.js';

/** The issuer's per-user limit and window (LOGIN_MAX_FAILURES_PER_USER, LOGIN_WINDOW_SECS). */
const FAILURES_BEFORE_429 = 5;
const WINDOW_SECS = 60;
/** A user name nobody has: the lock the scene provokes costs no real user a minute. */
const GUESSED_USER = 'mallory';
/** The scene waits for an expiry only when it is this close; otherwise it says how to shorten it. */
const MAX_WAIT_SECS = 60;

export class Scenes {
  constructor({ tokens, diagram, onRequest, status }) {
    this.tokens = tokens;
    this.diagram = diagram;
    this.onRequest = onRequest;
    this.status = status;
    this.running = false;
  }

  /** Runs `scene` unless one is running; the buttons call this. */
  async run(scene) {
    if (this.running) {
      this.#say('A scene is running; wait for it to end.');
      return;
    }
    this.running = true;
    try {
      await scene.call(this);
    } finally {
      this.running = false;
    }
  }

  async refreshAfterExpiry() {
    await this.#loggedIn();
    const access = this.tokens.access;
    if (access === null) {
      return;
    }
    const left = access.payload.exp - Date.now() / 1000;
    if (left > MAX_WAIT_SECS) {
      this.#say(`This access token expires in ${Math.round(left)} s: too long to wait here. Start the stack with `
        + '`cargo xtask up --access-ttl 20` to watch it in seconds.');
      return;
    }
    // One second past `exp`: the replicas count whole seconds, so a token is refused only once
    // the second after its `exp` has begun (and clocks may differ a little).
    const until = access.payload.exp + 1;
    for (let wait = left + 1; wait > 0; wait = until - Date.now() / 1000) {
      this.#say(`Waiting for the access token to expire: ${Math.ceil(wait)} s…`);
      await sleep(Math.min(1000, wait * 1000 + 50));
    }
    this.#say('Expired. Calling /api/me with it: 401, then the refresh token buys a new pair, then the call again.');
    await this.tokens.call('/api/me');
    this.#say('Done: 401 from a replica, 200 from the issuer (a new pair, through Redis), 200 from a replica.');
  }

  async replayedRefresh() {
    await this.#loggedIn();
    if (!this.tokens.loggedIn) {
      return;
    }
    this.#say('1/3: an honest refresh. The refresh token sent is now spent.');
    await this.tokens.refresh();
    this.#say('2/3: the spent refresh token again, as a thief who copied it would send it.');
    await this.tokens.replaySpent();
    this.#say('3/3: the owner refreshes with the token it holds: the family is revoked, so it fails.');
    await this.tokens.refresh();
    this.#say('Done: the reuse revoked the whole family in Redis; the page is logged out.');
  }

  async wrongPasswords(button) {
    button.disabled = true;
    // Re-enabled after the issuer's window: each run counts against this address too (its own
    // limit is higher), and the page should stay able to log in.
    setTimeout(() => {
      button.disabled = false;
    }, WINDOW_SECS * 1000);
    for (let attempt = 1; attempt <= FAILURES_BEFORE_429 + 2; attempt += 1) {
      this.#say(`Attempt ${attempt}: user ${GUESSED_USER}, a wrong password.`);
      const result = await send('POST', '/auth/login', { json: { username: GUESSED_USER, password: `guess-${attempt}` } });
      const refused = result.status === 429;
      this.onRequest({
        ...result,
        kind: 'token',
        step: 'scene',
        note: refused
          ? `Refused before any password check: too many failures for ${GUESSED_USER}. Retry-After says when to try again.`
          : `Attempt ${attempt}: the issuer counted the failure in Redis (${result.status}).`,
      });
      if (refused || result.status === 0) {
        this.#say(refused
          ? `429 after ${attempt - 1} failures: the issuer's counter in Redis is shared by every issuer. The button waits ${WINDOW_SECS} s.`
          : 'No answer.');
        return;
      }
    }
    this.#say('No 429 came: this stack allows more failures (LOGIN_MAX_FAILURES_PER_USER).');
  }

  /** Not real requests: what the cluster does when Redis stops, drawn and said as such. */
  async storeStopped() {
    const illustration = (stops, store, outcome, text) => ({ stops, store, outcome, text: `Illustration, nothing sent: ${text}` });
    const token = this.diagram.cluster.token.find((n) => n.up)?.id;
    const session = this.diagram.cluster.session.find((n) => n.up)?.id;
    const issuer = this.diagram.cluster.issuers.find((n) => n.up)?.id;
    if (!token || !session || !issuer) {
      this.#say('The diagram does not know a token replica, a session replica and an issuer yet.');
      return;
    }
    this.#say('With Redis stopped: token calls still work, session calls and the issuer answer 503.');
    this.diagram.show(illustration(['browser', 'nginx', `replica:${token}`], 'no', '200',
      `GET /api/me: ${token} verifies the token alone → 200.`));
    this.diagram.show(illustration(['browser', 'nginx', `replica:${session}`, 'redis'], 'down', '503',
      `GET /sapi/me: ${session} cannot look the session up → 503 store_unavailable.`));
    this.diagram.show(illustration(['browser', 'nginx', `issuer:${issuer}`, 'redis'], 'down', '503',
      `POST /auth/refresh: ${issuer} cannot rotate the family → 503 store_unavailable.`));
    this.diagram.show({ reset: true });
  }

  async #loggedIn() {
    if (!this.tokens.loggedIn) {
      this.#say('Logging in as bob first.');
      await this.tokens.login('bob', 'builder');
    }
  }

  #say(text) {
    this.status.textContent = text;
  }
}

function sleep(ms) {
  return new Promise((resolve) => {
    setTimeout(resolve, ms);
  });
}
