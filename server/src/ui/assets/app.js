// The dashboard: sign-in, the live fleet (SSE over fetch, so the token is
// a header, never in a URL), an event's detail with the browser's own
// verification, and the log's status. Plain DOM, no framework.
import * as V from './verify.js';

const $ = (id) => document.getElementById(id);
const TOKEN = 'vellum.token';
const PINS = 'vellum.pins';
const MAX_ROWS = 500;
const FILTERS = ['agent', 'principal', 'owner', 'session', 'tool', 'verdict', 'rule', 'provenance', 'from', 'to'];
const VERDICTS = ['allow', 'deny', 'review', 'approve'];
const SVG = 'http://www.w3.org/2000/svg';

let info = null; // GET / of the log
let live = null; // { controller, last, paused, query }

function token() {
  return sessionStorage.getItem(TOKEN);
}

function el(tag, attrs = {}, ...kids) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === 'class') e.className = v;
    else e.setAttribute(k, v);
  }
  for (const k of kids) e.append(k instanceof Node ? k : document.createTextNode(String(k ?? '')));
  return e;
}

class Refused extends Error {}

async function api(path, opts = {}) {
  const r = await fetch(path, {
    ...opts,
    headers: { ...(opts.headers || {}), Authorization: `Bearer ${token()}` },
    cache: 'no-store',
  });
  if (r.status === 401 || r.status === 403) {
    const why = await r.text();
    signOut(`The log refused this token (${r.status}): ${why}`);
    throw new Refused(why);
  }
  if (!r.ok) throw new Error(`${path}: HTTP ${r.status}: ${await r.text()}`);
  return r;
}

function show(id) {
  for (const s of ['signin', 'live', 'detail', 'status']) $(s).hidden = s !== id;
  $('nav').hidden = id === 'signin';
}

function signOut(message) {
  sessionStorage.removeItem(TOKEN);
  stopLive();
  $('signin-error').textContent = message || '';
  show('signin');
  $('token').focus();
}

// ---- routing: #/live?filters, #/event/I, #/status

function parseHash() {
  const h = location.hash.replace(/^#/, '') || '/live';
  const [path, q] = h.split('?');
  return { path, params: new URLSearchParams(q || '') };
}

async function route() {
  if (!token()) return show('signin');
  const { path, params } = parseHash();
  const m = /^\/event\/(\d+)$/.exec(path);
  if (m) {
    stopLive();
    show('detail');
    return detail(m[1]);
  }
  const who = /^\/(agent|principal)\/(.+)$/.exec(path);
  if (who) {
    params.set(who[1], decodeURIComponent(who[2]));
    show('live');
    $('live-title').textContent = `${who[1] === 'agent' ? 'Agent' : 'Principal'} ${decodeURIComponent(who[2])}`;
    return startLive(params);
  }
  if (path === '/status') {
    stopLive();
    show('status');
    return status();
  }
  show('live');
  $('live-title').textContent = 'Live fleet';
  return startLive(params);
}

// ---- live fleet

function filterQuery(params) {
  const q = new URLSearchParams();
  for (const f of FILTERS) {
    const v = (params.get(f) || '').trim();
    if (v) q.set(f, v);
  }
  return q;
}

function verdictCell(v) {
  return el('td', {}, el('span', { class: `verdict verdict-${v}` }, v || '-'));
}

function pageLink(kind, v) {
  if (!v) return '';
  const a = el('a', { href: `#/${kind}/${encodeURIComponent(v)}` }, v);
  a.addEventListener('click', (ev) => ev.stopPropagation());
  return a;
}

function row(r) {
  const e = r.event || {};
  const tr = el(
    'tr',
    { tabindex: '0', 'data-index': String(r.index) },
    el('td', {}, (e.logged_at || e.ts || '').replace('T', ' ').replace('Z', '')),
    el('td', {}, r.index),
    el('td', {}, pageLink('agent', e.agent)),
    el('td', {}, pageLink('principal', e.principal)),
    el('td', {}, e.owner),
    el('td', {}, e.tool),
    el('td', {}, e.target),
    verdictCell(e.verdict),
    el('td', {}, [e.rule, e.reason].filter(Boolean).join(': ')),
    el('td', {}, e.risk ?? ''),
  );
  if (e.provenance === 'untrusted') tr.classList.add('untrusted');
  const open = () => (location.hash = `#/event/${r.index}`);
  tr.addEventListener('click', open);
  tr.addEventListener('keydown', (ev) => {
    if (ev.key === 'Enter') open();
  });
  return tr;
}

function addRow(r, atTop) {
  const body = $('events').tBodies[0];
  if (atTop) body.prepend(row(r));
  else body.append(row(r));
  while (body.rows.length > MAX_ROWS) body.deleteRow(body.rows.length - 1);
}

function stopLive() {
  if (live && live.controller) live.controller.abort();
  if (live && live.timer) clearInterval(live.timer);
  live = null;
}

async function startLive(params) {
  const query = filterQuery(params);
  const form = $('filters');
  for (const f of FILTERS) form.elements[f].value = query.get(f) || '';
  if (live && live.query === query.toString()) return;
  stopLive();
  live = { controller: null, last: null, paused: false, query: query.toString() };
  const mine = live;
  $('events').tBodies[0].replaceChildren();
  $('pause').textContent = 'Pause';
  glance(query, mine);
  mine.timer = setInterval(() => glance(query, mine).catch(() => {}), 30000);
  const page = new URLSearchParams(query);
  page.set('limit', '100');
  const r = await api(`/v1/events?${page}`);
  const ans = await r.json();
  if (live !== mine) return;
  for (const ev of ans.events) addRow(ev, false);
  mine.last = ans.events.length ? ans.events[0].index : null;
  mine.older = ans.next_cursor;
  $('older').hidden = !mine.older;
  tail(mine);
}

async function tail(state) {
  const q = new URLSearchParams(state.query);
  if (state.last !== null) q.set('after', String(state.last));
  state.controller = new AbortController();
  $('live-state').textContent = 'live';
  try {
    const r = await api(`/v1/events/tail?${q}`, { signal: state.controller.signal });
    const reader = r.body.getReader();
    const dec = new TextDecoder();
    let buf = '';
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buf += dec.decode(value, { stream: true });
      let at;
      while ((at = buf.indexOf('\n\n')) >= 0) {
        const frame = buf.slice(0, at);
        buf = buf.slice(at + 2);
        let event = 'message';
        let data = '';
        for (const line of frame.split('\n')) {
          if (line.startsWith('event:')) event = line.slice(6).trim();
          else if (line.startsWith('data:')) data += line.slice(5).trim();
        }
        if (event === 'entry' && data) {
          const e = JSON.parse(data);
          state.last = e.index;
          addRow(e, true);
        }
      }
    }
  } catch (e) {
    if (e.name === 'AbortError' || e instanceof Refused) return;
    $('live-state').textContent = `disconnected (${e.message}); retrying`;
  }
  if (live === state && !state.paused) setTimeout(() => live === state && tail(state), 2000);
}

/** The next page of older events, below the table (it stays bounded). */
async function loadOlder() {
  const state = live;
  if (!state || !state.older) return;
  const q = new URLSearchParams(state.query);
  q.set('limit', '100');
  q.set('cursor', state.older);
  const ans = await (await api(`/v1/events?${q}`)).json();
  if (live !== state) return;
  const body = $('events').tBodies[0];
  for (const ev of ans.events) body.append(row(ev));
  while (body.rows.length > MAX_ROWS) body.deleteRow(0);
  state.older = ans.next_cursor;
  $('older').hidden = !state.older;
}

// ---- 24 hours at a glance

function svg(tag, attrs = {}, ...kids) {
  const e = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, String(v));
  for (const k of kids) e.append(k);
  return e;
}

async function glance(query, state) {
  const q = new URLSearchParams(query);
  q.delete('from');
  q.delete('to');
  q.set('group_by', 'verdict');
  const stats = await (await api(`/v1/stats?${q}`)).json();
  if (live !== state) return;
  const counts = {};
  for (const b of stats.buckets) for (const v of VERDICTS) counts[v] = (counts[v] || 0) + (b.counts[v] || 0);
  $('glance-total').textContent = `${stats.total} events: ` + VERDICTS.map((v) => `${counts[v] || 0} ${v}`).join(', ');
  const chart = $('chart');
  const max = Math.max(1, ...stats.buckets.map((b) => b.total));
  const n = stats.buckets.length;
  const W = 960;
  const H = 120;
  const bw = W / Math.max(n, 1);
  const root = svg('svg', { viewBox: `0 0 ${W} ${H + 14}`, role: 'img', 'aria-label': 'events per hour by verdict' });
  stats.buckets.forEach((b, i) => {
    const g = svg('g', { class: 'bar', tabindex: '0', role: 'button', 'data-start': b.start });
    let y = H;
    for (const v of VERDICTS) {
      const c = b.counts[v] || 0;
      if (!c) continue;
      const h = (c / max) * H;
      y -= h;
      g.append(svg('rect', { x: i * bw + 1, y, width: Math.max(bw - 2, 1), height: h, class: `seg-${v}` }));
    }
    g.append(svg('rect', { x: i * bw, y: 0, width: bw, height: H, fill: 'transparent' }));
    g.append(svg('title', {}, `${b.start}: ${b.total} events (` + VERDICTS.map((v) => `${b.counts[v] || 0} ${v}`).join(', ') + ')'));
    if (i % 6 === 0) root.append(svg('text', { x: i * bw, y: H + 12, 'font-size': 10 }, b.start.slice(11, 16)));
    const open = () => {
      const from = new Date(b.start);
      const to = new Date(from.getTime() + 3600 * 1000);
      const p = new URLSearchParams(query);
      p.set('from', from.toISOString());
      p.set('to', to.toISOString());
      location.hash = `#/live?${p}`;
    };
    g.addEventListener('click', open);
    g.addEventListener('keydown', (ev) => {
      if (ev.key === 'Enter' || ev.key === ' ') open();
    });
    root.append(g);
  });
  chart.replaceChildren(root, el('p', { class: 'legend' }, ...VERDICTS.map((v) => el('span', { class: `verdict verdict-${v}` }, `■ ${v}`))));
  for (const [id, group] of [['top-agents', 'agent'], ['top-rules', 'rule']]) {
    const t = new URLSearchParams(q);
    t.set('verdict', 'deny');
    t.set('group_by', group);
    t.set('top', '5');
    const top = await (await api(`/v1/stats?${t}`)).json();
    if (live !== state) return;
    const ol = $(id);
    ol.replaceChildren(...top.top.map((x) => el('li', {}, group === 'agent' ? pageLink('agent', x.value) : x.value, ` — ${x.count} ${x.count === 1 ? 'denial' : 'denials'}`)));
    if (!top.top.length) ol.replaceChildren(el('li', { class: 'muted' }, 'no denials'));
  }
}

// ---- export of the current filter

async function exportRows(kind) {
  const q = new URLSearchParams(live ? live.query : '');
  q.set('limit', '1000');
  q.set('order', 'asc');
  const lines = [];
  const cols = ['index', 'logged_at', 'ts', 'agent', 'principal', 'owner', 'session', 'seq', 'tool', 'target', 'verdict', 'rule', 'reason', 'risk', 'provenance', 'event_id', 'leaf_hash'];
  const csv = (v) => {
    const t = v === undefined || v === null ? '' : String(v);
    return /[",\n\r]/.test(t) ? `"${t.replace(/"/g, '""')}"` : t;
  };
  if (kind === 'csv') lines.push(cols.join(','));
  let cursor = null;
  for (let pages = 0; pages < 100; pages++) {
    if (cursor) q.set('cursor', cursor);
    const ans = await (await api(`/v1/events?${q}`)).json();
    for (const r of ans.events) {
      if (kind === 'csv') {
        lines.push(cols.map((c) => csv(c === 'index' ? r.index : c === 'leaf_hash' ? r.leaf_hash : r.event[c])).join(','));
      } else {
        lines.push(JSON.stringify({ index: r.index, leaf_hash: r.leaf_hash, event: r.event }));
      }
    }
    cursor = ans.next_cursor;
    if (!cursor) break;
  }
  const blob = new Blob([lines.join('\n') + '\n'], { type: kind === 'csv' ? 'text/csv' : 'application/x-ndjson' });
  const a = el('a', { href: URL.createObjectURL(blob), download: `vellum-events.${kind}` });
  document.body.append(a);
  a.click();
  a.remove();
}

async function exportBundle() {
  // The evidence bundle needs the admin scope: a refusal here is said
  // here, it does not sign the reader out.
  const p = new URLSearchParams(live ? live.query : '');
  const q = new URLSearchParams();
  for (const k of ['from', 'to', 'agent', 'principal', 'owner', 'session', 'rule', 'verdict']) {
    if (p.get(k)) q.set(k, p.get(k));
  }
  $('export-state').textContent = 'building the bundle…';
  const r = await fetch(`/v1/export?${q}`, { headers: { Authorization: `Bearer ${token()}` }, cache: 'no-store' });
  if (!r.ok) {
    $('export-state').textContent = `the log refused the export (${r.status}): ${await r.text()}`;
    return;
  }
  const blob = await r.blob();
  const a = el('a', { href: URL.createObjectURL(blob), download: 'vellum-evidence.ndjson' });
  document.body.append(a);
  a.click();
  a.remove();
  $('export-state').textContent = `bundle of ${r.headers.get('x-vellum-events') ?? '?'} events; check it with vellum-verify bundle`;
}

// ---- pins: the keys this browser trusts, per origin

function pins() {
  try {
    return JSON.parse(localStorage.getItem(PINS) || '{}');
  } catch (e) {
    return {};
  }
}

function savePins(p) {
  localStorage.setItem(PINS, JSON.stringify(p));
}

// ---- event detail and verification

function step(list, title) {
  const badge = el('span', { class: 'badge badge-wait' }, '…');
  const text = el('span', {}, title);
  const why = el('div', { class: 'muted' });
  const li = el('li', {}, badge, text, why);
  list.append(li);
  return {
    pass(msg) {
      badge.className = 'badge badge-pass';
      badge.textContent = 'PASS';
      li.dataset.result = 'pass';
      why.textContent = msg || '';
    },
    fail(msg) {
      badge.className = 'badge badge-fail';
      badge.textContent = 'FAIL';
      li.dataset.result = 'fail';
      why.textContent = msg;
      why.className = 'error';
    },
    note(msg) {
      badge.className = 'badge badge-wait';
      badge.textContent = 'N/A';
      li.dataset.result = 'none';
      why.textContent = msg;
    },
  };
}

function showFields(ev, index, leafHash) {
  const dl = $('detail-fields');
  dl.replaceChildren();
  const add = (k, v, cls) => {
    dl.append(el('dt', {}, k));
    const dd = el('dd', cls ? { class: cls } : {});
    if (typeof v === 'object' && v !== null) dd.append(el('pre', {}, JSON.stringify(v, null, 2)));
    else dd.textContent = String(v);
    dl.append(dd);
  };
  add('index', index);
  add('leaf hash', leafHash);
  for (const [k, v] of Object.entries(ev)) {
    add(k, v, k === 'provenance' && v === 'untrusted' ? 'untrusted' : '');
  }
}

async function detail(indexText) {
  const index = BigInt(indexText);
  $('detail-title').textContent = `Entry ${index}`;
  $('verify-engine').textContent = `checks run here, with ${V.engine()}`;
  const steps = $('verify-steps');
  steps.replaceChildren();
  steps.dataset.done = '';
  $('session-events').replaceChildren();
  $('detail-fields').replaceChildren();
  const sKey = step(steps, "The log's key is the one this browser pinned");
  const sSig = step(steps, 'The checkpoint is signed with that key');
  const sWit = step(steps, 'Witnesses cosigned the checkpoint');
  const sBytes = step(steps, "The entry's bytes, from the log's tiles");
  const sLeaf = step(steps, 'Leaf hash recomputed from those bytes (SHA-256)');
  const sProof = step(steps, 'Inclusion proof leads to the checkpoint root (RFC 9162)');
  // The verdict is set once, when the run ends: a failed step that lets
  // the run go on (a changed key) keeps it failed.
  let failed = false;
  const fail = (s, why) => {
    s.fail(why);
    failed = true;
    steps.dataset.done = 'fail';
  };
  try {
    const entry = await (await api(`/v1/entries/${index}`)).json();
    showFields(entry.event, index, entry.leaf_hash);
    if (entry.event && entry.event.session) sessionAround(entry.event.session, index);

    // Keys: pinned on first use, a change is a loud failure.
    const all = pins();
    const mine = all[info.origin] || null;
    let logVkey = info.log_key;
    if (!mine || !mine.log) {
      all[info.origin] = { log: info.log_key, witnesses: (mine && mine.witnesses.length ? mine.witnesses : info.witness_keys) || [] };
      savePins(all);
      sKey.pass(`pinned now (first use): ${info.log_key}`);
    } else if (mine.log !== info.log_key) {
      logVkey = mine.log;
      sKey.fail(`the log now presents ${info.log_key}, but this browser pinned ${mine.log}: checks use the pinned key`);
      failed = true;
      $('pins').prepend(el('li', { class: 'warning' }, 'WARNING: the log key changed since you pinned it.'));
    } else {
      sKey.pass(info.log_key);
    }
    renderPins();
    const key = await V.parseVerifierKey(logVkey);

    const noteText = await (await api('/checkpoint')).text();
    const note = V.parseNote(noteText);
    const cp = V.parseCheckpoint(note.text);
    if (cp.origin !== info.origin) return fail(sSig, `checkpoint origin ${cp.origin} is not ${info.origin}`);
    const sig = await V.verifyNoteSignature(note, key);
    if (!sig.ok) return fail(sSig, sig.why);
    sSig.pass(`${cp.origin}, size ${cp.size}`);

    const wkeys = (pins()[info.origin] || {}).witnesses || [];
    if (wkeys.length === 0) {
      sWit.note('no witnesses configured for this log');
    } else {
      const bad = [];
      const good = [];
      for (const w of wkeys) {
        const k = await V.parseVerifierKey(w);
        const r = await V.verifyNoteSignature(note, k);
        if (r.ok) good.push(`${k.name} at ${new Date(Number(r.time) * 1000).toISOString()}`);
        else bad.push(r.why);
      }
      if (bad.length) return fail(sWit, bad.join('; '));
      sWit.pass(good.join('; '));
    }

    if (index >= cp.size) {
      const msg = `entry ${index} is not in the published checkpoint yet (size ${cp.size}); reload in a moment`;
      sBytes.note(msg);
      sLeaf.note(msg);
      sProof.note(msg);
      steps.dataset.done = failed ? 'fail' : 'pending';
      return;
    }
    const n = index / 256n;
    const bundle = new Uint8Array(await (await api(`/${V.bundlePath(n, cp.size)}`)).arrayBuffer());
    let leaf;
    try {
      leaf = V.parseBundle(bundle)[Number(index % 256n)];
    } catch (e) {
      return fail(sBytes, e.message);
    }
    if (!leaf) return fail(sBytes, 'the entry bundle does not hold this entry');
    let parsed;
    try {
      parsed = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(leaf));
    } catch (e) {
      return fail(sBytes, `the entry's bytes are not the event's JSON: ${e.message}`);
    }
    // What the page shows is what it verified.
    showFields(parsed, index, entry.leaf_hash);
    sBytes.pass(`${leaf.length} bytes from ${V.bundlePath(n, cp.size)}`);

    const lh = await V.leafHash(leaf);
    if (V.b64encode(lh) !== entry.leaf_hash) {
      return fail(sLeaf, `recomputed ${V.b64encode(lh)}, the log says ${entry.leaf_hash}`);
    }
    sLeaf.pass(V.b64encode(lh));

    const proof = await (await api(`/v1/proof/inclusion?index=${index}&size=${cp.size}`)).json();
    const ok = await V.verifyInclusion(index, cp.size, lh, proof.proof.map(V.b64decode), cp.root);
    if (!ok) return fail(sProof, `the ${proof.proof.length}-hash proof does not lead to root ${V.b64encode(cp.root)}`);
    sProof.pass(`${proof.proof.length} hashes to root ${V.b64encode(cp.root)} at size ${cp.size}`);
    steps.dataset.done = failed ? 'fail' : 'pass';
  } catch (e) {
    if (e instanceof Refused) return;
    const open = [...steps.children].find((li) => !li.dataset.result);
    steps.dataset.done = 'fail';
    if (open) open.querySelector('.badge').textContent = 'FAIL';
    if (open) open.querySelector('.badge').className = 'badge badge-fail';
    if (open) open.dataset.result = 'fail';
    if (open) open.querySelector('div').textContent = e.message;
  }
}

async function sessionAround(session, index) {
  const q = new URLSearchParams({ session, order: 'asc', limit: '200' });
  const ans = await (await api(`/v1/events?${q}`)).json();
  const list = $('session-events');
  let prev = null;
  for (const r of ans.events) {
    const seq = r.event.seq;
    if (prev !== null && typeof seq === 'number' && seq > prev + 1) {
      list.append(el('li', { class: 'gap' }, `seq ${prev + 1}${seq - 1 > prev + 1 ? `–${seq - 1}` : ''} missing`));
    }
    if (typeof seq === 'number') prev = seq;
    const a = el('a', { href: `#/event/${r.index}` }, `seq ${seq ?? '-'}: ${r.event.tool} `, el('span', { class: `verdict verdict-${r.event.verdict}` }, r.event.verdict));
    const li = el('li', {}, a);
    if (BigInt(r.index) === index) li.append(' (this one)');
    list.append(li);
  }
}

function renderPins() {
  const ul = $('pins');
  for (const li of [...ul.querySelectorAll('li:not(.warning)')]) li.remove();
  const p = pins()[info.origin];
  if (!p) return;
  ul.append(el('li', {}, `log: ${p.log}`));
  for (const w of p.witnesses) ul.append(el('li', {}, `witness: ${w}`));
  const forget = el('button', { type: 'button' }, 'Forget these pins');
  forget.addEventListener('click', () => {
    const all = pins();
    delete all[info.origin];
    savePins(all);
    route();
  });
  ul.append(el('li', {}, forget));
}

// ---- status

async function status() {
  const dl = $('status-fields');
  dl.replaceChildren();
  const health = await (await fetch('/healthz', { cache: 'no-store' })).json();
  const add = (k, v) => dl.append(el('dt', {}, k), el('dd', {}, v));
  add('origin', info.origin);
  add('log key', info.log_key);
  for (const w of info.witness_keys || []) add('witness key', w);
  add('health', health.status);
  add('tree size', health.tree_size);
  add('checkpoint size', health.checkpoint_size);
  const cp = health.checkpoint || {};
  add('checkpoint behind', `${cp.behind_entries ?? 0} entries, ${cp.behind_seconds ?? 0} s`);
  if (cp.reason) add('checkpoint delayed because', cp.reason);
  const wl = $('status-witnesses');
  wl.replaceChildren();
  const noteText = await (await fetch('/checkpoint', { cache: 'no-store' })).text();
  const note = V.parseNote(noteText);
  for (const w of info.witness_keys || []) {
    const k = await V.parseVerifierKey(w);
    const r = await V.verifyNoteSignature(note, k);
    wl.append(el('li', {}, `${k.name}+${k.idHex}: `, r.ok ? `cosigned the current checkpoint at ${new Date(Number(r.time) * 1000).toISOString()}` : `no valid cosignature on the current checkpoint (${r.why})`));
  }
  if (!(info.witness_keys || []).length) wl.append(el('li', { class: 'muted' }, 'no witnesses configured'));
  $('status-checkpoint').textContent = noteText;
  const sinks = await (await api('/v1/sinks')).json();
  const body = $('status-sinks').tBodies[0];
  body.replaceChildren();
  for (const s of sinks.sinks) {
    body.append(el('tr', {}, el('td', {}, s.name), el('td', {}, s.type), el('td', {}, s.delivered), el('td', {}, s.lag), el('td', {}, s.failing ? `failing: ${s.last_error}` : 'ok')));
  }
}

// ---- start

async function main() {
  info = await (await fetch('/', { cache: 'no-store' })).json();
  $('log-origin').textContent = info.origin;
  $('signin-form').addEventListener('submit', async (ev) => {
    ev.preventDefault();
    sessionStorage.setItem(TOKEN, $('token').value.trim());
    $('token').value = '';
    try {
      await api('/v1/events?limit=1');
      $('signin-error').textContent = '';
      route();
    } catch (e) {
      if (!(e instanceof Refused)) $('signin-error').textContent = e.message;
    }
  });
  $('sign-out').addEventListener('click', () => signOut(''));
  $('pin-form').addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const text = $('pin-key').value.trim();
    try {
      const k = await V.parseVerifierKey(text);
      const all = pins();
      const mine = all[info.origin] || { log: null, witnesses: [] };
      if (k.alg === 0x04) {
        if (!mine.witnesses.includes(k.text)) mine.witnesses.push(k.text);
      } else {
        mine.log = k.text;
      }
      all[info.origin] = mine;
      savePins(all);
      $('pin-key').value = '';
      $('pin-state').textContent = `pinned ${k.name}+${k.idHex}`;
      route();
    } catch (e) {
      $('pin-state').textContent = `not a key: ${e.message}`;
    }
  });
  $('clear-filters').addEventListener('click', () => (location.hash = '#/live'));
  $('export-csv').addEventListener('click', () => exportRows('csv'));
  $('export-ndjson').addEventListener('click', () => exportRows('ndjson'));
  $('export-bundle').addEventListener('click', () => exportBundle());
  $('older').addEventListener('click', () => loadOlder());
  $('filters').addEventListener('submit', (ev) => {
    ev.preventDefault();
    const q = new URLSearchParams();
    for (const f of FILTERS) {
      const v = $('filters').elements[f].value.trim();
      if (v) q.set(f, v);
    }
    location.hash = `#/live${q.toString() ? `?${q}` : ''}`;
  });
  $('pause').addEventListener('click', () => {
    if (!live) return;
    if (live.paused) {
      live.paused = false;
      $('pause').textContent = 'Pause';
      tail(live);
    } else {
      live.paused = true;
      if (live.controller) live.controller.abort();
      $('pause').textContent = 'Resume';
      $('live-state').textContent = `paused after entry ${live.last ?? '-'}`;
    }
  });
  window.addEventListener('hashchange', route);
  route();
}

main();
