// Which parts of the cluster one request went through, and what to say about it.
//
// A request's journey is read from its answer, not assumed: nginx answered it alone when no
// service header came back; `X-Replica` names the replica and `X-Issuer` the issuer that
// answered. Whether a replica asked Redis is measured: right after the call the page reads that
// replica's own counters again (cluster.js) and sees its store commands grow or not. For the
// issuer the page has no such counter; every issuer route it calls (login, refresh, logout,
// sessions) reads or writes Redis by design (docs/ARCHITECTURE.md), unless it was refused first.

/**
 * { stops, store, storeNote, outcome, text } for one logged request. `stops` are node ids of the
 * diagram in order: 'browser', 'nginx', then a replica's or issuer's id, then 'redis' when the
 * store was touched. `measured`: { requests, store } from the replica's counters, or null.
 */
export function journeyOf(entry, measured) {
  const stops = ['browser', 'nginx'];
  const outcome = entry.status === 0 ? 'failed' : String(entry.status);
  const to = `${entry.method} ${entry.path}`;
  if (entry.status === 0) {
    return { stops: ['browser'], store: 'no', outcome, text: `${to}: no answer (network error).` };
  }
  const service = entry.replica ?? entry.issuer;
  if (!service) {
    return {
      stops, store: 'no', outcome,
      text: `${to}: nginx answered ${outcome} itself${entry.status === 429 ? ' (its per-address limit on password attempts)' : ''}; no service was asked.`,
    };
  }
  stops.push(entry.replica ? `replica:${entry.replica}` : `issuer:${entry.issuer}`);
  const store = storeUse(entry, measured);
  const storeDown = entry.body?.error === 'store_unavailable';
  if (store !== 'no') {
    stops.push('redis');
  }
  return { stops, store: storeDown ? 'down' : store, outcome, text: `${to}: nginx → ${service}${storeText(entry, store, storeDown)} → ${outcome}.` };
}

/** 'yes', 'no', or 'expected' (the issuer, whose counters the page does not read). */
function storeUse(entry, measured) {
  if (entry.replica) {
    // requests: how many requests with credentials the replica checked meanwhile; 0 when this
    // call carried none (then it cannot have looked anything up either).
    if (measured && measured.requests <= 1) {
      return measured.store > 0 ? 'yes' : 'no';
    }
    // Not isolated (another client's request reached the same replica meanwhile): what the mode
    // does. Token replicas have no Redis client at all; session replicas ask on every call with
    // a cookie.
    return entry.kind === 'session' && entry.status !== 401 ? 'expected' : 'no';
  }
  // The issuer: refused before the store only by a malformed request.
  return entry.status === 400 ? 'no' : 'expected';
}

function storeText(entry, store, down) {
  if (down) {
    return ' → Redis: down, so it answered 503';
  }
  if (store === 'no') {
    return entry.replica && entry.kind === 'token' ? ' (checked the token alone; Redis not touched)' : ' (Redis not touched)';
  }
  return store === 'yes' ? ' → Redis (measured: its store commands went up)' : ' → Redis';
}
