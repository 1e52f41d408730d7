// The cluster as a picture: the browser, nginx, every issuer and replica that runs, and Redis,
// drawn in SVG by this script, with each request of the page travelling along its path.
//
//   browser ── nginx ──┬── issuer(s) ───────────┐
//                      ├── token replicas        │   (no line: they cannot reach the store)
//                      └── session replicas ─────┴── Redis, on the store's own network
//
// Wide screens draw it left to right; narrow ones (a phone) top to bottom, so that it fits 360
// px without scrolling. A request is a dot that goes from the browser to the last part it
// reached and back, coloured by its outcome; the parts it went through stay marked until the
// next one (`on-path`), which is also what the browser test reads. Every picture is also said
// in words, in the aria-live line under it. With `prefers-reduced-motion` the dot does not move:
// the path is marked at once.

const SVG = 'http://www.w3.org/2000/svg';
const WIDE_MIN_PX = 600;
const LEG_MS = 260;
/** Journeys waiting to be animated, at most: a burst of requests is not replayed for minutes. */
const QUEUE_MAX = 6;

const reducedMotion = window.matchMedia('(prefers-reduced-motion: reduce)');

export class Diagram {
  constructor(container, narration, history) {
    this.container = container;
    this.narration = narration;
    this.history = history;
    this.cluster = { issuers: [], token: [], session: [] };
    this.last = null; // the last journey drawn, kept across redraws
    this.storeDown = false;
    this.queue = [];
    this.animating = false;
    this.signature = '';
    this.wide = null;
    new ResizeObserver(() => this.#layoutIfChanged()).observe(container);
  }

  /** The processes nginx lists (cluster.js); redrawn only when something changed. */
  setCluster(cluster) {
    this.cluster = { issuers: cluster.issuers, token: cluster.token, session: cluster.session };
    const signature = JSON.stringify([cluster.issuers, cluster.token, cluster.session]
      .map((list) => list.map((n) => [n.id, n.up])));
    if (signature !== this.signature) {
      this.signature = signature;
      this.#draw();
    }
  }

  /** Shows one request's journey (journey.js): in words at once, as a moving dot in turn. */
  show(journey) {
    this.queue.push(journey);
    if (this.queue.length > QUEUE_MAX) {
      this.queue.shift();
    }
    if (!this.animating) {
      this.#next();
    }
  }

  async #next() {
    const journey = this.queue.shift();
    if (!journey) {
      this.animating = false;
      return;
    }
    this.animating = true;
    if (journey.reset) {
      // The end of an illustration (scenes.js): Redis is drawn as it really is again.
      this.storeDown = false;
      this.#applyState();
      this.#next();
      return;
    }
    this.#mark(journey);
    if (!reducedMotion.matches) {
      await this.#travel(journey);
    }
    this.#next();
  }

  /** Marks the parts a journey went through and says it in words. */
  #mark(journey) {
    if (journey.store === 'down') {
      this.storeDown = true;
    } else if (journey.stops.includes('redis')) {
      this.storeDown = false;
    }
    this.last = journey;
    this.narration.textContent = journey.text;
    const item = document.createElement('li');
    item.textContent = journey.text;
    this.history.prepend(item);
    while (this.history.children.length > 5) {
      this.history.lastElementChild.remove();
    }
    this.#applyState();
  }

  #applyState() {
    const svg = this.container.querySelector('svg');
    if (!svg) {
      return;
    }
    const stops = this.last?.stops ?? [];
    svg.dataset.lastStops = stops.join(' ');
    for (const group of svg.querySelectorAll('.node')) {
      const id = group.dataset.node;
      group.classList.toggle('on-path', stops.includes(id));
      const target = stops.length > 2 && stops[2] === id;
      group.dataset.outcome = target || (stops.length === 2 && id === 'nginx') ? this.last.outcome : '';
      const badge = group.querySelector('.outcome');
      badge.textContent = group.dataset.outcome;
    }
    svg.querySelector('[data-node="redis"]')?.classList.toggle('down', this.storeDown);
    for (const edge of svg.querySelectorAll('.edge')) {
      const from = stops.indexOf(edge.dataset.from);
      edge.classList.toggle('on-path', from >= 0 && stops[from + 1] === edge.dataset.to);
    }
  }

  /** The dot: out along the stops and back, one leg at a time. */
  #travel(journey) {
    const svg = this.container.querySelector('svg');
    const points = journey.stops.map((id) => this.positions?.[id]).filter(Boolean);
    if (!svg || points.length < 2) {
      return Promise.resolve();
    }
    const route = [...points, ...points.slice(0, -1).reverse()];
    const dot = svgElement('circle', { r: 7, class: `packet s${journey.outcome.charAt(0)} o${journey.outcome}` });
    svg.append(dot);
    const started = performance.now();
    const total = LEG_MS * (route.length - 1);
    return new Promise((resolve) => {
      const finish = () => {
        dot.remove();
        resolve();
      };
      // A page in a background tab gets no animation frames: the timer ends the trip anyway,
      // so the queue never stalls.
      const timer = setTimeout(finish, total + 200);
      const frame = (now) => {
        // A frame's time is when the frame began, which can be just before `started`.
        const t = Math.min(1, Math.max(0, (now - started) / total));
        const leg = Math.min(route.length - 2, Math.floor(t * (route.length - 1)));
        const local = t * (route.length - 1) - leg;
        const [a, b] = [route[leg], route[leg + 1]];
        dot.setAttribute('cx', a.x + (b.x - a.x) * local);
        dot.setAttribute('cy', a.y + (b.y - a.y) * local);
        if (t < 1) {
          requestAnimationFrame(frame);
        } else {
          clearTimeout(timer);
          finish();
        }
      };
      requestAnimationFrame(frame);
    });
  }

  #layoutIfChanged() {
    const wide = this.container.clientWidth >= WIDE_MIN_PX;
    if (wide !== this.wide) {
      this.#draw();
    }
  }

  #draw() {
    this.wide = this.container.clientWidth >= WIDE_MIN_PX;
    const layout = this.wide ? wideLayout(this.cluster) : narrowLayout(this.cluster);
    this.positions = Object.fromEntries(layout.nodes.map((n) => [n.id, { x: n.x + n.w / 2, y: n.y + n.h / 2 }]));
    const svg = svgElement('svg', {
      viewBox: `0 0 ${layout.width} ${layout.height}`,
      role: 'img',
      'aria-labelledby': 'diagram-title diagram-desc',
      class: this.wide ? 'wide' : 'narrow',
    });
    const title = svgElement('title', { id: 'diagram-title' });
    title.textContent = 'The running cluster';
    const desc = svgElement('desc', { id: 'diagram-desc' });
    desc.textContent = describe(this.cluster);
    svg.append(title, desc);

    const store = layout.storeNetwork;
    svg.append(svgElement('rect', { class: 'store-network', x: store.x, y: store.y, width: store.w, height: store.h, rx: 10 }));
    svg.append(label('store-label', store.labelX, store.labelY, 'store network', store.anchor));

    const byId = Object.fromEntries(layout.nodes.map((n) => [n.id, n]));
    for (const [from, to] of edgesOf(layout.nodes)) {
      const [a, b] = [this.positions[from], this.positions[to]];
      svg.append(svgElement('line', { class: 'edge', x1: a.x, y1: a.y, x2: b.x, y2: b.y, 'data-from': from, 'data-to': to }));
    }
    for (const group of layout.groups) {
      svg.append(label('group-label', group.x, group.y, group.text, group.anchor));
    }
    for (const n of layout.nodes) {
      svg.append(drawNode(n, byId[n.id]));
    }
    this.container.replaceChildren(svg);
    this.#applyState();
  }
}

/** Which lines to draw: the browser to nginx, nginx to every service, the store's clients to Redis. */
function edgesOf(nodes) {
  const edges = [['browser', 'nginx']];
  for (const n of nodes.filter((n) => n.kind === 'issuer' || n.kind === 'token' || n.kind === 'session')) {
    edges.push(['nginx', n.id]);
    if (n.kind !== 'token') {
      edges.push([n.id, 'redis']);
    }
  }
  return edges;
}

function drawNode(n) {
  const group = svgElement('g', { class: `node ${n.kind}${n.up === false ? ' gone' : ''}`, 'data-node': n.id, 'data-kind': n.kind });
  const title = svgElement('title');
  title.textContent = n.title;
  group.append(title, svgElement('rect', { x: n.x, y: n.y, width: n.w, height: n.h, rx: 6 }));
  const text = svgElement('text', { x: n.x + n.w / 2, y: n.y + n.h / 2, 'text-anchor': 'middle', 'dominant-baseline': 'central' });
  text.textContent = n.label;
  const badge = svgElement('text', { class: 'outcome', x: n.x + n.w - 3, y: n.y - 3, 'text-anchor': 'end' });
  group.append(text, badge);
  return group;
}

/** Every process as a node to place: { id, kind, label, title, up }. */
function processes(cluster) {
  const service = (kind, prefix) => (n) => {
    const id = n.id ?? `${kind} ${n.slot}`;
    return {
      id: `${prefix}:${id}`,
      kind,
      up: n.up,
      label: id.length > 10 ? `${id.slice(0, 7)}…` : id,
      title: `${kind === 'issuer' ? 'issuer' : `${kind} replica`} ${id}${n.up ? '' : ' (not answering)'}`,
    };
  };
  return {
    issuers: cluster.issuers.map(service('issuer', 'issuer')),
    token: cluster.token.map(service('token', 'replica')),
    session: cluster.session.map(service('session', 'replica')),
  };
}

const ENDS = {
  browser: { id: 'browser', kind: 'browser', label: 'this browser', title: 'this browser: the page and its fetch calls' },
  nginx: { id: 'nginx', kind: 'nginx', label: 'nginx', title: 'nginx: the one address; balances over the replicas' },
  redis: { id: 'redis', kind: 'redis', label: 'Redis', title: 'Redis: sessions, refresh families, login counters' },
};

/** Left to right: browser, nginx, the services in three labelled groups, Redis. */
function wideLayout(cluster) {
  const { issuers, token, session } = processes(cluster);
  const [w, h, gap, groupGap] = [150, 30, 8, 30];
  const x = 330;
  const nodes = [];
  const groups = [];
  let y = 24;
  for (const [text, list] of [['issuers', issuers], ['token replicas: no store', token], ['session replicas', session]]) {
    groups.push({ x, y: y - 6, text, anchor: 'start' });
    for (const n of list) {
      nodes.push({ ...n, x, y, w, h });
      y += h + gap;
    }
    y += groupGap - gap + (list.length === 0 ? h : 0);
  }
  const height = Math.max(y, 200);
  const middle = height / 2 - 20;
  nodes.push({ ...ENDS.browser, x: 10, y: middle, w: 110, h: 40 });
  nodes.push({ ...ENDS.nginx, x: 170, y: middle, w: 100, h: 40 });
  nodes.push({ ...ENDS.redis, x: 590, y: middle, w: 100, h: 40 });
  return {
    width: 710,
    height,
    nodes,
    groups,
    storeNetwork: { x: 575, y: middle - 30, w: 130, h: 100, labelX: 640, labelY: middle - 14, anchor: 'middle' },
  };
}

/** Top to bottom: browser, nginx, one row per group of services, Redis. */
function narrowLayout(cluster) {
  const { issuers, token, session } = processes(cluster);
  const width = 360;
  const nodes = [];
  const groups = [];
  nodes.push({ ...ENDS.browser, x: 120, y: 6, w: 120, h: 34 });
  nodes.push({ ...ENDS.nginx, x: 130, y: 66, w: 100, h: 34 });
  let y = 136;
  for (const [text, list] of [['issuers', issuers], ['token replicas: no store', token], ['session replicas', session]]) {
    groups.push({ x: 8, y: y - 6, text, anchor: 'start' });
    const perRow = 4;
    const w = 80;
    for (let i = 0; i < list.length; i += perRow) {
      const row = list.slice(i, i + perRow);
      const rowWidth = row.length * w + (row.length - 1) * 6;
      row.forEach((n, j) => nodes.push({ ...n, x: (width - rowWidth) / 2 + j * (w + 6), y, w, h: 30 }));
      y += 38;
    }
    y += list.length === 0 ? 38 : 18;
  }
  nodes.push({ ...ENDS.redis, x: 130, y: y + 16, w: 100, h: 34 });
  return {
    width,
    height: y + 64,
    nodes,
    groups,
    storeNetwork: { x: 110, y: y - 4, w: 140, h: 62, labelX: 256, labelY: y + 38, anchor: 'start' },
  };
}

/** The picture in one sentence, for screen readers (the SVG's <desc>). */
function describe(cluster) {
  const ids = (list) => (list.length === 0 ? 'none' : list.map((n) => `${n.id ?? '?'}${n.up ? '' : ' (down)'}`).join(', '));
  return `This browser talks to nginx. Behind it: issuers ${ids(cluster.issuers)}; token replicas `
    + `${ids(cluster.token)}, which have no line to the store; session replicas ${ids(cluster.session)}. `
    + 'The issuers and the session replicas use Redis.';
}

function label(className, x, y, text, anchor) {
  const node = svgElement('text', { class: className, x, y, 'text-anchor': anchor });
  node.textContent = text;
  return node;
}

function svgElement(tag, attributes = {}) {
  const node = document.createElementNS(SVG, tag);
  for (const [name, value] of Object.entries(attributes)) {
    node.setAttribute(name, value);
  }
  return node;
}
