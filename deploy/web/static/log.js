// Drawing what happened: the request log and the replica strips.
//
// Everything is built with createElement and textContent, never innerHTML: text that came from
// the network is shown as text and can never become markup or script on this page.

import { clockTime } from './jwt.js';

const STEP_LABELS = {
  login: 'log in',
  call: 'call',
  poll: 'every 2 s',
  probe: 'at page load',
  'auto-refresh': 'automatic refresh',
  refresh: 'refresh',
  retry: 'retry',
  replay: 'replay a spent token',
  logout: 'log out',
  scene: 'scene',
};

/** Steps that happen on their own inside a call's flow, drawn indented under it. */
const NESTED_STEPS = new Set(['auto-refresh', 'retry']);

/** The request log: one list item per request, oldest first, the newest scrolled into view. */
export class RequestLog {
  constructor(list, limit = 300) {
    this.list = list;
    this.limit = limit;
  }

  add(entry) {
    const who = answeredBy(entry);
    const item = element('li', `entry ${entry.kind}${NESTED_STEPS.has(entry.step) ? ' nested' : ''}`);
    Object.assign(item.dataset, {
      kind: entry.kind,
      step: entry.step,
      method: entry.method,
      path: entry.path,
      status: String(entry.status),
      replica: entry.replica ?? '',
    });
    const line = element('p', 'line');
    line.append(
      element('span', 'time', clockTime(Date.now() / 1000)),
      element('span', `badge ${entry.kind}`, entry.kind),
      element('span', 'step', STEP_LABELS[entry.step] ?? entry.step),
      element('span', 'request', `${entry.method} ${entry.path}`),
      element('span', `code s${String(entry.status).charAt(0)}`, entry.status === 0 ? 'failed' : String(entry.status)),
      element('span', `who${entry.replica ? ' replica' : ''}`, who),
      element('span', 'ms', `${entry.ms} ms`),
    );
    item.append(line, element('p', 'note', entry.note));
    for (const sent of entry.sent) {
      item.append(element('p', 'sent', `sent ${sent}`));
    }
    const atBottom = this.list.scrollHeight - this.list.scrollTop - this.list.clientHeight < 40;
    this.list.append(item);
    while (this.list.children.length > this.limit) {
      this.list.firstElementChild.remove();
    }
    if (atBottom) {
      this.list.scrollTop = this.list.scrollHeight;
    }
  }

  clear() {
    this.list.replaceChildren();
  }
}

/** Who answered: the replica's X-Replica header, else the issuer or nginx itself. */
function answeredBy(entry) {
  if (entry.replica) {
    return entry.replica;
  }
  if (entry.status === 0) {
    return 'no answer';
  }
  if (entry.path.startsWith('/auth/') && entry.status < 500) {
    return 'issuer';
  }
  return 'nginx';
}

/** The replicas that answered the last `size` calls of one kind, as a row of numbered boxes. */
export class ReplicaStrip {
  constructor(list, summary, size = 20) {
    this.list = list;
    this.summary = summary;
    this.size = size;
    this.replicas = [];
  }

  add(replica) {
    this.replicas = [...this.replicas, replica ?? 'none'].slice(-this.size);
    this.list.replaceChildren(
      ...this.replicas.map((id) => {
        const number = /-(\d+)$/.exec(id)?.[1];
        const box = element('li', number ? `r${((Number(number) - 1) % 8) + 1}` : 'none', number ?? '–');
        box.dataset.replica = id;
        box.title = id;
        return box;
      }),
    );
    const counts = new Map();
    for (const id of this.replicas) {
      counts.set(id, (counts.get(id) ?? 0) + 1);
    }
    const parts = [...counts].sort(([a], [b]) => a.localeCompare(b)).map(([id, n]) => `${id}: ${n}`);
    this.summary.textContent = `${parts.join(', ')} (of the last ${this.replicas.length})`;
  }
}

export function element(tag, className, text) {
  const node = document.createElement(tag);
  if (className) {
    node.className = className;
  }
  if (text !== undefined) {
    node.textContent = text;
  }
  return node;
}
