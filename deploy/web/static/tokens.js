// The token client: what any single-page app does with an access token and a refresh token.
//
//   log in         POST /auth/login          -> an access token and a refresh token
//   call the API   GET /api/... with `Authorization: Bearer <access token>`
//   401 expired    POST /auth/refresh        -> a new pair; the refresh token sent is now spent
//                  then the same call again, once, with the new access token
//   refresh fails  -> logged out (the refresh token expired, was revoked, or was reused)
//   log out        POST /auth/logout         -> the refresh token's whole family is revoked
//
// Where the tokens live: in the private fields of this object, in memory, and nowhere else. Not
// in localStorage or sessionStorage, which any script running on the page can read: one injected
// script (XSS) could send them away. The cost: a reload forgets them, and you log in again.
//
// This module touches no DOM: it reports each request through `onRequest` and each change of
// state through `onChange`, and app.js draws them.

import { errorText, send } from './http.js';
import { decodeJwt } from './jwt.js';

export class TokenClient {
  #access = null; // the access token (a string), or null when logged out
  #refresh = null; // the current refresh token
  #spent = null; // the refresh token before the last rotation: spent, kept only to replay it
  #refreshing = null; // the refresh in flight, if any (see refresh())
  #lifetime = null; // expires_in of the last token pair, in seconds

  /** The reason for the last logout, or a note on the session's state, for the status line. */
  status = 'Logged out.';
  /** Set when a replayed refresh token revoked the family this page still holds. */
  familyRevoked = false;

  constructor({ onRequest, onChange }) {
    this.onRequest = onRequest;
    this.onChange = onChange;
  }

  get loggedIn() {
    return this.#refresh !== null;
  }

  get canReplay() {
    return this.#spent !== null;
  }

  /** Access-token lifetime the issuer reported at the last login or refresh, in seconds. */
  get lifetime() {
    return this.#lifetime;
  }

  /** The decoded access token, or null. */
  get access() {
    return this.#access === null ? null : decodeJwt(this.#access);
  }

  /** The decoded current refresh token, or null. */
  get refreshToken() {
    return this.#refresh === null ? null : decodeJwt(this.#refresh);
  }

  /** The decoded spent refresh token, or null. */
  get spentRefreshToken() {
    return this.#spent === null ? null : decodeJwt(this.#spent);
  }

  async login(username, password) {
    const result = await send('POST', '/auth/login', { json: { username, password } });
    if (result.status === 200) {
      this.#spent = null;
      this.familyRevoked = false;
      this.#keep(result.body);
      this.status = `Logged in as ${username}.`;
      this.#report(result, 'login',
        `The issuer checked the password and signed a token pair. The access token lives ${result.body.expires_in} s.`);
    } else {
      this.#report(result, 'login', `Login refused (${errorText(result)}).`);
    }
    this.onChange();
  }

  /**
   * GET `path` with the access token. On a 401 `invalid_token` (the token expired, typically),
   * refreshes and tries again, once.
   */
  async call(path, { automatic = false } = {}) {
    const used = this.#access;
    const step = automatic ? 'poll' : 'call';
    const result = await send('GET', path, { bearer: used });
    const rejected = result.status === 401 && result.body?.error === 'invalid_token';
    if (!rejected || used === null) {
      this.#report(result, step, callNote(result, used !== null));
      return;
    }
    this.#report(result, step,
      `Refused: ${result.body.error_description}. The page gets a new access token with the refresh token, then tries again.`);
    // Another call may have refreshed while this one was on its way: then use that token.
    const renewed = this.#access !== used ? this.loggedIn : await this.refresh({ automatic: true });
    if (!renewed) {
      return;
    }
    const retry = await send('GET', path, { bearer: this.#access });
    this.#report(retry, 'retry', `The same call again, with the new access token. ${callNote(retry, true)}`);
  }

  /**
   * Trades the refresh token for a new pair. Resolves to true when it worked; on failure the
   * page is logged out.
   *
   * One refresh at a time: every caller that asks while one is in flight waits for that one.
   * Two refreshes sent with the same refresh token would look like theft to the issuer (the
   * second presents a spent token) and it would revoke the whole family.
   */
  refresh({ automatic = false } = {}) {
    this.#refreshing ??= this.#rotate(automatic).finally(() => {
      this.#refreshing = null;
    });
    return this.#refreshing;
  }

  async #rotate(automatic) {
    const presented = this.#refresh;
    if (presented === null) {
      return false;
    }
    const result = await send('POST', '/auth/refresh', { json: { refresh_token: presented } });
    const step = automatic ? 'auto-refresh' : 'refresh';
    if (this.#refresh !== presented) {
      return this.loggedIn; // logged out (or in again) meanwhile: this answer is stale
    }
    if (result.status === 200) {
      this.#spent = presented;
      this.#keep(result.body);
      this.#report(result, step,
        'A new token pair. The refresh token just sent is now spent: sending it again would count as theft.');
      this.onChange();
      return true;
    }
    this.#report(result, step, `Refresh refused (${errorText(result)}): the page logs out.`);
    this.#forget(`Logged out: the refresh was refused (${errorText(result)}).`);
    return false;
  }

  /**
   * Sends the spent refresh token again, as a thief who copied it would. The issuer sees a spent
   * token come back, cannot tell the thief from the owner, and revokes the whole family: the
   * refresh token this page holds now is dead too.
   */
  async replaySpent() {
    if (this.#spent === null) {
      return;
    }
    const result = await send('POST', '/auth/refresh', { json: { refresh_token: this.#spent } });
    if (result.status === 401) {
      this.familyRevoked = this.loggedIn;
      this.status = 'Still logged in, but the token family is revoked: the access token works until it expires (no replica asks anyone), then the refresh fails and the page logs out.';
      this.#report(result, 'replay',
        'Reuse detected: this refresh token was already spent, so the issuer revoked its whole family, including the refresh token this page holds now.');
    } else {
      this.#report(result, 'replay', `Unexpected answer to a spent refresh token (${errorText(result)}).`);
    }
    this.onChange();
  }

  async logout() {
    const refreshToken = this.#refresh;
    if (refreshToken === null) {
      return;
    }
    const result = await send('POST', '/auth/logout', { json: { refresh_token: refreshToken } });
    this.#report(result, 'logout', result.status === 204
      ? "The refresh token's family is revoked. The access token would still work until it expires (replicas ask no one), so the page forgets both."
      : `Logout answered ${result.status} (${errorText(result)}); the page forgets the tokens anyway.`);
    this.#forget('Logged out.');
  }

  #keep(pair) {
    this.#access = pair.access_token;
    this.#refresh = pair.refresh_token;
    this.#lifetime = pair.expires_in;
  }

  #forget(status) {
    this.#access = null;
    this.#refresh = null;
    this.#spent = null;
    this.familyRevoked = false;
    this.status = status;
    this.onChange();
  }

  #report(result, step, note) {
    this.onRequest({ ...result, kind: 'token', step, note });
  }
}

function callNote(result, withToken) {
  if (result.status === 200) {
    return `${result.replica} checked the token's signature with the issuer's public key and read the claims: no database, no call to the issuer.`;
  }
  if (result.status === 401 && !withToken) {
    return 'No token sent (logged out), so the replica refuses.';
  }
  if (result.status === 403) {
    return `${errorText(result)}: the token's roles claim lacks "recruiter".`;
  }
  return errorText(result);
}
