// The study note's comparison table, with figures filled in live.
//
// The note (docs/CONCEPTS.md) compared sessions and tokens in five rows. Here each row gets what
// this page can see for itself: from its own calls (what it sent, how many store look-ups each
// of its calls cost, whether it can read its credentials) and from the services' counters, which
// cover every client (look-ups per request across all replicas, read through nginx's /cluster
// routes). The cells are in index.html; this module only writes their text.

const $ = (selector) => document.querySelector(selector);

/** What one kind of call has cost, as measured by this page. */
class Tally {
  calls = 0; // calls with credentials whose look-ups were measured (the replica saw this call alone)
  lookups = 0; // store commands those calls cost
  unmeasured = 0; // calls another client's request overlapped, so not counted
}


export class ComparisonTable {
  tallies = { token: new Tally(), session: new Tally() };
  sent = { token: null, session: null };

  /** One of this page's calls to a replica, with its measured store use (or null). */
  addCall(entry, measured) {
    const tally = this.tallies[entry.kind];
    if (measured && measured.requests === 0) {
      return; // no credentials sent (logged out): nothing to know the user by, nothing counted
    }
    if (measured && measured.requests === 1) {
      tally.calls += 1;
      tally.lookups += measured.store;
    } else {
      tally.unmeasured += 1;
    }
    this.sent[entry.kind] = entry.sent[0] ?? null;
    this.#drawBrowser(entry.kind);
  }

  #drawBrowser(kind) {
    const tally = this.tallies[kind];
    $(`#lookups-browser-${kind}`).textContent = tally.calls === 0 ? '–' : perRequest(tally.lookups, tally.calls);
    $(`#lookups-browser-${kind}-detail`).textContent = `${tally.lookups} in ${count(tally.calls, 'call')} with credentials`
      + (tally.unmeasured ? ` (${tally.unmeasured} not isolated, left out)` : '');
    if (this.sent[kind]) {
      $(`#sent-${kind}`).textContent = this.sent[kind];
    }
  }

  /** The replicas' own counters, summed over each kind (cluster.js). */
  setCluster(cluster) {
    for (const kind of ['token', 'session']) {
      const { requests, store } = cluster.totals(kind);
      $(`#lookups-all-${kind}`).textContent = requests === 0 ? '–' : perRequest(store, requests);
      $(`#lookups-all-${kind}-detail`).textContent = `${count(store, 'store command')} for ${count(requests, 'request')} with credentials, all clients`;
      const list = cluster[kind];
      const up = list.filter((n) => n.up).length;
      $(`#scale-${kind}`).textContent = kind === 'token'
        ? `${up} of ${list.length} replicas answering; each checks tokens alone, so another one adds capacity and shares nothing`
        : `${up} of ${list.length} replicas answering, every one asking the same Redis: ${count(store, 'command')} so far`;
    }
  }

  /** Whether this page can read what it authenticates with. */
  setReadable({ claims, cookie }) {
    $('#read-token').textContent = claims === null
      ? 'yes, once logged in: the claims are only base64url'
      : `yes: this page decoded ${claims} claims from the access token it holds`;
    $('#read-session').textContent = cookie === ''
      ? 'no: document.cookie is "" here; the sid cookie is HttpOnly'
      : `document.cookie shows ${JSON.stringify(cookie)}, but not the HttpOnly sid`;
  }
}

/** "1 call", "2 calls". */
function count(n, noun) {
  return `${n} ${noun}${n === 1 ? '' : 's'}`;
}

function perRequest(part, whole) {
  return (part / whole).toFixed(2);
}
