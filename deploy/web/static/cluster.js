// The running cluster, as nginx knows it: which issuers and replicas run, and what each counted.
//
// nginx answers two read-only kinds of route for this (deploy/nginx/nginx.conf.template, "The
// running cluster"):
//
//   GET /cluster                 {"issuers":1,"token":2,"session":2}
//   GET /cluster/token/<n>       the n-th token replica's /api/stats:
//                                {"replica":"jwt-1","checked_requests":..,"store_commands":..}
//   GET /cluster/session/<n>     the same for session replicas (/sapi/stats)
//   GET /cluster/issuer/<n>      the n-th issuer's discovery document; its id is in X-Issuer
//
// Why ask nginx rather than learn the replicas from the answers: nginx balances, so a replica
// that never happened to answer this page would be missing from the picture. nginx's list follows
// the cluster (`cargo xtask up --replicas N`, `docker compose up --scale api=N`), so the page
// polls it. These reads are not the client's calls: they are not logged and not animated.

const POLL_MS = 3000;

/** One process as the diagram draws it. */
function node(kind, slot, fields) {
  return { kind, slot, id: null, up: false, requests: 0, store: 0, ...fields };
}

export class ClusterView {
  /** Issuers, token replicas and session replicas, each a list of nodes in nginx's order. */
  issuers = [];
  token = [];
  session = [];
  /** False until the first answer of /cluster; then whether the last one worked. */
  known = false;
  /**
   * Per replica id, its counters when the page last looked for its own calls: set by the first
   * poll that sees the replica and then only by remeasure(), so a poll that lands between a
   * call and its remeasure cannot swallow the call.
   */
  #baseline = new Map();

  constructor({ onChange }) {
    this.onChange = onChange;
    this.polling = false;
  }

  /** Poll every POLL_MS from now on (the page polls once itself first, and waits for it). */
  start() {
    setInterval(() => this.poll(), POLL_MS);
  }

  async poll() {
    // A tab nobody looks at needs no picture: no reads until it is shown again.
    if (this.polling || document.hidden) {
      return;
    }
    this.polling = true;
    try {
      const counts = await getJson('/cluster');
      this.known = counts !== null;
      if (counts !== null) {
        [this.issuers, this.token, this.session] = await Promise.all([
          this.#read('issuer', counts.issuers),
          this.#read('token', counts.token),
          this.#read('session', counts.session),
        ]);
        for (const n of [...this.token, ...this.session].filter((n) => n.up && !this.#baseline.has(n.id))) {
          this.#baseline.set(n.id, { requests: n.requests, store: n.store });
        }
      }
    } finally {
      this.polling = false;
    }
    this.onChange();
  }

  /**
   * Reads one replica's counters again, right after this page's call reached it, and returns
   * what changed since the page last looked: { requests, store } (each a difference), or null
   * when the replica is not known or did not answer. The caller decides whether the difference
   * is its own call alone (requests === 1).
   */
  async remeasure(kind, replicaId) {
    const list = kind === 'token' ? this.token : this.session;
    const known = list.find((n) => n.id === replicaId);
    const before = this.#baseline.get(replicaId);
    if (!known || !before) {
      return null;
    }
    const fresh = await this.#readOne(kind, known.slot);
    if (!fresh.up || fresh.id !== replicaId) {
      return null;
    }
    this.#baseline.set(replicaId, { requests: fresh.requests, store: fresh.store });
    Object.assign(known, fresh);
    return { requests: fresh.requests - before.requests, store: fresh.store - before.store };
  }

  /** All replicas of one kind, summed: { requests, store } since each started. */
  totals(kind) {
    const list = kind === 'token' ? this.token : this.session;
    return list.reduce((sum, n) => ({ requests: sum.requests + n.requests, store: sum.store + n.store }),
      { requests: 0, store: 0 });
  }

  async #read(kind, count) {
    // Bounded: nginx lists what runs, but the page draws at most this many of a kind.
    const slots = Array.from({ length: Math.min(Number(count) || 0, 16) }, (_, i) => i + 1);
    return Promise.all(slots.map((slot) => (kind === 'issuer' ? this.#readIssuer(slot) : this.#readOne(kind, slot))));
  }

  async #readOne(kind, slot) {
    const stats = await getJson(`/cluster/${kind}/${slot}`);
    if (stats === null) {
      // Kept where it was: a replica that is down (nginx answers 502) keeps its place and id.
      const previous = (kind === 'token' ? this.token : this.session).find((n) => n.slot === slot);
      return node(kind, slot, { id: previous?.id ?? null, up: false });
    }
    return node(kind, slot, {
      id: String(stats.replica),
      up: true,
      requests: Number(stats.checked_requests) || 0,
      store: Number(stats.store_commands) || 0,
    });
  }

  async #readIssuer(slot) {
    try {
      const response = await fetch(`/cluster/issuer/${slot}`, { cache: 'no-store' });
      return node('issuer', slot, { id: response.headers.get('x-issuer') ?? `issuer ${slot}`, up: response.ok });
    } catch {
      return node('issuer', slot, { id: `issuer ${slot}`, up: false });
    }
  }
}

/** The JSON body of a 200, or null for anything else (a 502 from nginx, a network error). */
async function getJson(path) {
  try {
    const response = await fetch(path, { cache: 'no-store' });
    return response.ok ? await response.json() : null;
  } catch {
    return null;
  }
}
