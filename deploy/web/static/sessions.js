// The session client: the same calls with a cookie, for comparison.
//
//   log in        POST /auth/session/login   -> 204 and `Set-Cookie: sid=<random id>; HttpOnly`
//   call the API  GET /sapi/...              -> the browser adds the cookie; the replica looks
//                                               the id up in Redis on every request
//   log out       POST /auth/session/logout  -> the session is deleted from Redis
//
// The page holds nothing: the cookie is HttpOnly, so scripts (this one, or an injected one)
// cannot read it, and the page only learns whether it is logged in from the answers it gets.

import { errorText, send } from './http.js';

export class SessionClient {
  /** true, false, or null before the first answer. */
  loggedIn = null;
  status = 'Not known yet: the page cannot see the cookie, so it has to ask.';

  constructor({ onRequest, onChange }) {
    this.onRequest = onRequest;
    this.onChange = onChange;
  }

  async login(username, password) {
    const result = await send('POST', '/auth/session/login', { json: { username, password } });
    if (result.status === 204) {
      this.#set(true, `Logged in as ${username}.`);
      this.#report(result, 'login',
        'The issuer stored a session in Redis and set the sid cookie. HttpOnly: this page cannot read it.');
    } else {
      this.#report(result, 'login', `Login refused (${errorText(result)}).`);
    }
  }

  /** GET `path`; the browser sends the cookie. `probe`: the call made at page load. */
  async call(path, { automatic = false, probe = false } = {}) {
    const result = await send('GET', path);
    let note;
    if (result.status === 200) {
      note = `${result.replica} looked the sid cookie up in Redis to learn who you are.`;
      if (!this.loggedIn) {
        this.#set(true, `Logged in as ${result.body?.sub}.`);
      }
    } else if (result.status === 401) {
      note = `${errorText(result)}.`;
      this.#set(false, probe ? 'Logged out (asked /sapi/me: no session).' : 'Logged out: the server has no session for this browser.');
    } else if (result.status === 403) {
      note = `${errorText(result)}: the session's user lacks the "recruiter" role.`;
    } else {
      note = errorText(result);
    }
    if (probe) {
      note = `Asked at page load: does this browser hold a session? ${note}`;
    }
    this.#report(result, probe ? 'probe' : automatic ? 'poll' : 'call', note);
  }

  async logout() {
    const result = await send('POST', '/auth/session/logout');
    this.#report(result, 'logout', result.status === 204
      ? 'The session is deleted from Redis: the cookie, if anyone kept it, now names nothing.'
      : `${errorText(result)}.`);
    this.#set(false, 'Logged out.');
  }

  #set(loggedIn, status) {
    this.loggedIn = loggedIn;
    this.status = status;
    this.onChange();
  }

  #report(result, step, note) {
    this.onRequest({ ...result, kind: 'session', step, note });
  }
}
