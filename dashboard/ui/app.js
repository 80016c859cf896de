// The Shoal dashboard: one page, no build step, no dependencies. It draws
// what the supervisor streams at /api/stream (see the dashboard package
// documentation for the API) and posts the controls to /api/...
'use strict';

const $ = (sel, el = document) => el.querySelector(sel);
const state = { ov: null, events: [], lastSeq: 0, traces: null, list: 'recent', trace: null, selected: null };

// An instance is shown down (red) while it has no process, and for
// recentExit ms after an unasked exit even if it already serves again: a
// crash and restart faster than an update would otherwise never show.
const recentExit = 5000;

// ---------- formatting ----------

function esc(s) {
  return String(s ?? '').replace(/[&<>"']/g, c => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' }[c]));
}
const none = v => v === null || v === undefined || Number.isNaN(v);
function rate(v) { return none(v) ? '–' : (v >= 100 ? v.toFixed(0) : v >= 10 ? v.toFixed(1) : v.toFixed(2)) + '/s'; }
function pct(v) { return none(v) ? '–' : (v * 100 >= 10 ? (v * 100).toFixed(0) : (v * 100).toFixed(1)) + '%'; }
function secs(v) {
  if (none(v)) return '–';
  if (v >= 1) return v.toFixed(2) + ' s';
  if (v >= 0.001) return (v * 1000).toFixed(v >= 0.01 ? 0 : 1) + ' ms';
  return (v * 1e6).toFixed(0) + ' µs';
}
function msec(v) { return secs(v / 1000); }
function bytes(v) { return none(v) ? '–' : v >= 1 << 20 ? (v / (1 << 20)).toFixed(1) + ' MiB' : (v / 1024).toFixed(0) + ' KiB'; }
function num(v, d = 0) { return none(v) ? '–' : Number(v).toFixed(d); }
function uptime(ns) {
  const s = Math.round(ns / 1e9);
  return s >= 3600 ? Math.floor(s / 3600) + 'h' + Math.floor(s % 3600 / 60) + 'm' : s >= 60 ? Math.floor(s / 60) + 'm' + (s % 60) + 's' : s + 's';
}
function clock(t) { return new Date(t).toLocaleTimeString([], { hour12: false }); }
// slotOfID turns an instance ID the supervisor gave (catalog-2-ab12) into
// its slot (catalog/2).
function slotOfID(id) { const m = /^(.*)-(\d+)-[0-9a-f]{4}$/.exec(id || ''); return m ? m[1] + '/' + m[2] : (id || ''); }
function hue(name) { let h = 0; for (const c of name) h = (h * 31 + c.charCodeAt(0)) % 360; return h; }

function toast(msg, error) {
  const t = $('#toast');
  t.textContent = msg;
  t.className = error ? 'error' : '';
  t.hidden = false;
  clearTimeout(toast.timer);
  toast.timer = setTimeout(() => { t.hidden = true; }, error ? 8000 : 3000);
}

// ---------- live updates ----------

function connect() {
  const es = new EventSource('/api/stream');
  const conn = $('#conn');
  es.onopen = () => { conn.textContent = 'live'; conn.className = 'conn live'; };
  es.onerror = () => { conn.textContent = 'reconnecting…'; conn.className = 'conn lost'; };
  es.addEventListener('overview', e => { state.ov = JSON.parse(e.data); renderOverview(); });
  es.addEventListener('events', e => {
    const fresh = JSON.parse(e.data).events.filter(ev => ev.seq > state.lastSeq);
    if (!fresh.length) return;
    state.lastSeq = fresh[fresh.length - 1].seq;
    state.events = state.events.concat(fresh).slice(-1000);
    renderEvents();
  });
  es.addEventListener('traces', e => { state.traces = JSON.parse(e.data); renderTraceList(); });
}

async function post(url, body) {
  const r = await fetch(url, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(body || {}) });
  const j = await r.json().catch(() => ({}));
  if (!r.ok) throw new Error((j.error && j.error.message) || r.status + ' ' + r.statusText);
  return j;
}

async function control(button, what, url, body) {
  button.disabled = true;
  try {
    await post(url, body);
    toast(what + ': done');
  } catch (err) {
    toast(what + ': ' + err.message, true);
  } finally {
    button.disabled = false;
  }
}

// ---------- overview ----------

function isDown(inst, now) {
  if (inst.state === 'crashed' || inst.state === 'stopped') return true;
  return !!inst.exited_at && now - Date.parse(inst.exited_at) < recentExit;
}

function renderOverview() {
  const ov = state.ov;
  if (!ov) return;
  $('#system').textContent = ov.system + (ov.manifest ? ' · ' + ov.manifest : '');
  renderGraph(ov);
  renderServices(ov);
  renderEdges(ov);
  $('#trace-stats').textContent = ov.traces.traces + ' traces kept (' + bytes(ov.traces.bytes) + ')' +
    (ov.traces.dropped ? ', ' + ov.traces.dropped + ' spans dropped' : '');
}

const NODE_W = 180, NODE_H = 62, COL_GAP = 84, ROW_GAP = 18, PER_COL = 5;

// layout places services in columns by call depth: callers left of the
// services they call; services without calls in a last column.
function layout(ov) {
  const names = ov.services.map(s => s.name);
  const known = new Set(names);
  const callers = new Map(names.map(n => [n, []]));
  const linked = new Set();
  for (const e of ov.edges) {
    if (known.has(e.from) && known.has(e.to) && e.from !== e.to) {
      callers.get(e.to).push(e.from);
      linked.add(e.from); linked.add(e.to);
    }
  }
  const depth = new Map();
  const visit = (n, path) => {
    if (depth.has(n)) return depth.get(n);
    if (path.has(n)) return 0; // a cycle: cut it here
    path.add(n);
    let d = 0;
    for (const c of callers.get(n)) d = Math.max(d, visit(c, path) + 1);
    path.delete(n);
    depth.set(n, d);
    return d;
  };
  names.forEach(n => visit(n, new Set()));
  const maxDepth = Math.max(0, ...names.filter(n => linked.has(n)).map(n => depth.get(n)));
  const layers = [];
  for (const n of names) {
    const d = linked.has(n) ? depth.get(n) : (linked.size ? maxDepth + 1 : 0);
    (layers[d] = layers[d] || []).push(n);
  }
  // Split tall layers into columns of PER_COL.
  const cols = [];
  for (const l of layers.filter(Boolean)) for (let i = 0; i < l.length; i += PER_COL) cols.push(l.slice(i, i + PER_COL));
  const pos = new Map();
  const rows = Math.max(1, ...cols.map(c => c.length));
  const height = rows * (NODE_H + ROW_GAP) + 10;
  cols.forEach((col, ci) => {
    const top = (height - col.length * (NODE_H + ROW_GAP)) / 2;
    col.forEach((n, ri) => pos.set(n, { x: 10 + ci * (NODE_W + COL_GAP), y: top + ri * (NODE_H + ROW_GAP) }));
  });
  return { pos, width: 20 + cols.length * (NODE_W + COL_GAP) - COL_GAP, height };
}

function renderGraph(ov) {
  const { pos, width, height } = layout(ov);
  const now = Date.parse(ov.now);
  const out = [];
  for (const e of ov.edges) {
    const a = pos.get(e.from), b = pos.get(e.to);
    if (!a || !b || e.from === e.to) continue;
    const x1 = a.x + NODE_W, y1 = a.y + NODE_H / 2, x2 = b.x, y2 = b.y + NODE_H / 2;
    const back = x2 <= x1;
    const mx = back ? Math.max(x1, x2 + NODE_W) + 40 : (x1 + x2) / 2;
    const d = back ? `M${x1},${y1} C${mx},${y1} ${mx},${y2} ${x2 + NODE_W},${y2}` : `M${x1},${y1} C${mx},${y1} ${mx},${y2} ${x2 - 6},${y2}`;
    const w = none(e.rate) || e.rate <= 0 ? 1 : Math.min(6, 1 + Math.log10(1 + e.rate) * 1.6);
    const bad = !none(e.error_ratio) && e.error_ratio > 0.01;
    const label = e.metrics ? rate(e.rate) + (bad ? ' · ' + pct(e.error_ratio) : '') : 'traced';
    const lx = back ? mx : (x1 + x2) / 2, ly = (y1 + y2) / 2 - 3;
    out.push(`<g class="edge${bad ? ' err' : ''}${e.metrics ? '' : ' traced'}" data-from="${esc(e.from)}" data-to="${esc(e.to)}">` +
      `<path d="${d}" stroke-width="${w.toFixed(1)}" marker-end="url(#arrow)"><title>${esc(e.from)} → ${esc(e.to)}: ${rate(e.rate)}, errors ${pct(e.error_ratio)}, retries ${rate(e.retries)}, hedges ${rate(e.hedges)}</title></path>` +
      `<text x="${lx}" y="${ly}" text-anchor="middle">${esc(label)}</text></g>`);
  }
  for (const s of ov.services) {
    const p = pos.get(s.name);
    if (!p) continue;
    const serving = s.instances.filter(i => i.state === 'serving').length;
    const dead = s.instances.length > 0 && s.instances.every(i => isDown(i, now));
    const r = s.rates || {};
    const sub = none(r.rate) ? s.kind === 'command' ? 'no metrics' : 'no traffic yet' : `${rate(r.rate)} · ${pct(r.error_ratio)} err` + (none(r.p99) ? '' : ` · p99 ${secs(r.p99)}`);
    let dots = '';
    s.instances.forEach((inst, i) => {
      const down = isDown(inst, now) ? 1 : 0;
      const br = inst.metrics && inst.metrics.breaker ? inst.metrics.breaker : '';
      dots += `<circle class="inst" r="5" cx="${p.x + 12 + (i % 12) * 13}" cy="${p.y + 48 + Math.floor(i / 12) * 12}" data-slot="${esc(inst.slot)}" data-state="${esc(inst.state)}" data-down="${down}" data-breaker="${esc(br)}">` +
        `<title>${esc(inst.slot)} ${esc(inst.state)}${inst.last_exit ? ' (last exit: ' + esc(inst.last_exit) + ')' : ''}${br && br !== 'closed' ? ', breaker ' + br : ''}</title></circle>`;
    });
    out.push(`<g class="node${dead ? ' dead' : ''}" data-service="${esc(s.name)}"><rect x="${p.x}" y="${p.y}" width="${NODE_W}" height="${NODE_H}"/>` +
      `<text x="${p.x + 10}" y="${p.y + 17}" font-weight="600">${esc(s.name)}</text>` +
      `<text class="sub" x="${p.x + NODE_W - 10}" y="${p.y + 17}" text-anchor="end">${serving}/${s.instances.length}</text>` +
      `<text class="sub" x="${p.x + 10}" y="${p.y + 33}">${esc(sub)}</text>${dots}</g>`);
  }
  const svg = $('#graph');
  // Fitted to the panel's width, but never drawn below 70% of its natural
  // size (the panel scrolls then), so that text stays readable however many
  // services there are.
  const w = Math.max(width, 300);
  svg.setAttribute('viewBox', `0 0 ${w} ${height}`);
  svg.style.width = '100%';
  svg.style.maxWidth = w + 'px';
  svg.style.minWidth = Math.round(w * 0.7) + 'px';
  svg.style.height = 'auto';
  svg.innerHTML = '<defs><marker id="arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="6" markerHeight="6" orient="auto"><path d="M0,0 L10,5 L0,10 z" fill="#9aa5b8"/></marker></defs>' + out.join('');
}

function spark(values, cls, title, fmt) {
  const v = values || [];
  const finite = v.filter(x => !none(x));
  const last = v.length ? v[v.length - 1] : null;
  const maxv = Math.max(1e-9, ...finite);
  const n = Math.max(v.length - 1, 1);
  const pts = v.map((x, i) => none(x) ? null : `${(i / n * 120).toFixed(1)},${(24 - x / maxv * 22).toFixed(1)}`).filter(Boolean).join(' ');
  return `<span class="spark ${cls}"><span>${title} <b>${fmt(last)}</b></span><svg viewBox="0 0 120 26" preserveAspectRatio="none"><polyline points="${pts}"/></svg></span>`;
}

function serviceCard(s) {
  const card = document.createElement('div');
  card.className = 'svc';
  card.dataset.service = s.name;
  card.innerHTML = `<div class="svc-head"><h3>${esc(s.name)} <small class="count"></small></h3><span class="sparks"></span>` +
    `<span class="controls"><input type="number" min="0" max="100" aria-label="instances of ${esc(s.name)}"> <button data-act="scale">scale</button> <button data-act="restart">rolling restart</button></span></div>` +
    `<table class="grid insts"></table>`;
  const input = $('input', card);
  input.addEventListener('input', () => { input.dataset.dirty = '1'; });
  $('[data-act=scale]', card).addEventListener('click', e => {
    const n = parseInt(input.value, 10);
    if (Number.isNaN(n)) {
      toast(`scale ${s.name}: enter the number of instances`, true);
      return;
    }
    delete input.dataset.dirty;
    control(e.target, `scale ${s.name}=${n}`, `/api/services/${encodeURIComponent(s.name)}/scale`, { instances: n });
  });
  $('[data-act=restart]', card).addEventListener('click', e => {
    control(e.target, `rolling restart of ${s.name}`, `/api/services/${encodeURIComponent(s.name)}/restart`, {});
  });
  $('table', card).addEventListener('click', e => {
    const b = e.target.closest('button[data-signal]');
    if (!b) return;
    const [svc, index] = b.dataset.slot.split('/');
    control(b, `SIG${b.dataset.signal} ${b.dataset.slot}`, `/api/instances/${encodeURIComponent(svc)}/${index}/signal`, { signal: b.dataset.signal });
  });
  return card;
}

const INST_HEAD = '<thead><tr><th>instance</th><th>state</th><th>pid</th><th class="num">uptime</th><th class="num">restarts</th>' +
  '<th class="num">req/s</th><th class="num">errors</th><th class="num">p50</th><th class="num">p99</th>' +
  '<th class="num" title="requests in flight / adaptive concurrency limit (+ requests waiting for a slot)">in flight</th><th class="num" title="admission refusals (503) per second">refused/s</th>' +
  '<th class="num" title="peak-EWMA latency callers rank it by (worst caller)">EWMA</th><th title="callers\' breakers (worst)">breaker</th>' +
  '<th class="num" title="its own retries per second">retries/s</th><th class="num" title="its own hedged attempts per second (wins)">hedges/s</th>' +
  '<th class="num" title="its calls rejected by the adaptive throttle per second (highest reject probability)">throttled/s</th>' +
  '<th class="num">CPU</th><th class="num">RSS</th><th></th></tr></thead>';

function instanceRow(inst, now) {
  const m = inst.metrics || {};
  const has = !!inst.metrics;
  const down = isDown(inst, now) ? 1 : 0;
  const br = m.breaker && m.breaker !== 'closed' ? `<span class="badge ${m.breaker === 'open' ? 'bad' : 'warn'}">${esc(m.breaker)}</span>` : (m.breaker ? 'closed' : '–');
  // A limit of 0 is admission control switched off (the gateway's default).
  const inflight = has ? num(m.in_flight) + (none(m.limit) || m.limit === 0 ? '' : ' / ' + num(m.limit)) +
    (m.queued > 0 ? ` <span title="requests waiting for a slot">+${num(m.queued)}</span>` : '') +
    (m.overloaded ? ' <span class="badge bad" title="more requests arrive than it completes: the excess is refused at once">overload</span>' : '') : '–';
  const running = inst.pid > 0;
  return `<tr data-slot="${esc(inst.slot)}" data-state="${esc(inst.state)}" data-down="${down}">` +
    `<td title="${esc(inst.id)}">${esc(inst.slot)}</td>` +
    `<td class="state state-${esc(inst.state)}" title="${esc(inst.last_exit || '')}">${esc(inst.state)}${down && inst.state === 'serving' ? ' <span class="badge bad">restarted</span>' : ''}</td>` +
    `<td>${running ? inst.pid : '–'}</td><td class="num">${running ? uptime(inst.uptime) : '–'}</td><td class="num">${inst.restarts}</td>` +
    `<td class="num">${has ? rate(m.rate) : '–'}</td><td class="num">${has ? pct(m.error_ratio) : '–'}</td>` +
    `<td class="num">${has ? secs(m.p50) : '–'}</td><td class="num">${has ? secs(m.p99) : '–'}</td>` +
    `<td class="num">${inflight}</td><td class="num">${has ? rate(m.rejected) : '–'}</td>` +
    `<td class="num">${has ? secs(m.ewma) : '–'}</td><td>${br}${m.ejected ? ' <span class="badge bad">ejected</span>' : ''}</td>` +
    `<td class="num">${has ? rate(m.retries) : '–'}</td><td class="num">${has ? rate(m.hedges) + (m.hedges > 0 ? ' (' + rate(m.hedge_wins) + ')' : '') : '–'}</td>` +
    `<td class="num">${has ? rate(m.throttled) + (m.throttle_rate > 0 ? ' (' + pct(m.throttle_rate) + ')' : '') : '–'}</td>` +
    `<td class="num">${has && !none(m.cpu) ? pct(m.cpu) : '–'}</td><td class="num">${has && m.rss ? bytes(m.rss) : '–'}</td>` +
    `<td><button class="danger" data-signal="KILL" data-slot="${esc(inst.slot)}" ${running ? '' : 'disabled'}>kill</button> ` +
    `<button data-signal="STOP" data-slot="${esc(inst.slot)}" ${running ? '' : 'disabled'}>stop</button> ` +
    `<button data-signal="CONT" data-slot="${esc(inst.slot)}" ${running ? '' : 'disabled'}>continue</button></td></tr>`;
}

function renderServices(ov) {
  const box = $('#services');
  const now = Date.parse(ov.now);
  const keep = new Set(ov.services.map(s => s.name));
  for (const card of [...box.children]) if (!keep.has(card.dataset.service)) card.remove();
  ov.services.forEach((s, i) => {
    let card = box.querySelector(`.svc[data-service="${CSS.escape(s.name)}"]`);
    if (!card) card = serviceCard(s);
    if (box.children[i] !== card) box.insertBefore(card, box.children[i] || null);
    const serving = s.instances.filter(x => x.state === 'serving').length;
    $('.count', card).textContent = `${serving}/${s.instances.length} serving · ${s.kind === 'sdk' ? 'SDK' : 'command'}` + (s.gateway ? ' · ' + s.gateway.join(' ') : '');
    const se = s.series || {};
    $('.sparks', card).innerHTML = spark(se.rate, '', 'req/s', rate) + spark(se.error_ratio, 'err', 'errors', pct) + spark(se.p50, '', 'p50', secs) + spark(se.p99, '', 'p99', secs);
    const input = $('input', card);
    if (document.activeElement !== input && !input.dataset.dirty) input.value = s.instances.length;
    $('table', card).innerHTML = INST_HEAD + '<tbody>' + s.instances.map(x => instanceRow(x, now)).join('') + '</tbody>';
  });
}

function renderEdges(ov) {
  const rows = ov.edges.filter(e => e.metrics).map(e =>
    `<tr><td>${esc(e.from)} → ${esc(e.to)}</td><td class="num">${rate(e.rate)}</td><td class="num">${pct(e.error_ratio)}</td>` +
    `<td class="num">${rate(e.retries)}</td><td class="num">${rate(e.hedges)} (${rate(e.hedge_wins)})</td>` +
    `<td class="num">${pct(e.throttle_rate)}</td><td class="num">${rate(e.throttled)}</td>` +
    `<td class="num">${num(e.in_flight)} / ${e.max_in_flight ? num(e.max_in_flight) : '∞'}</td><td class="num">${rate(e.bulkhead_full)}</td>` +
    `<td class="num">${num(e.budget_left)}</td><td class="num">${rate(e.budget_exhausted)}</td>` +
    `<td>${e.open ? `<span class="badge bad">${e.open} open</span>` : ''}${e.half_open ? `<span class="badge warn">${e.half_open} half-open</span>` : ''}${!e.open && !e.half_open ? 'closed' : ''}</td></tr>`).join('');
  $('#edges').innerHTML = '<thead><tr><th>caller → dependency</th><th class="num">calls/s</th><th class="num">errors</th><th class="num">retries/s</th>' +
    '<th class="num">hedges/s (won)</th><th class="num">throttle</th><th class="num">throttled/s</th><th class="num">in flight / bulkhead</th>' +
    '<th class="num">bulkhead full/s</th><th class="num">retry budget left</th><th class="num">budget refused/s</th><th>breakers</th></tr></thead><tbody>' +
    (rows || '<tr><td colspan="12" class="muted">no calls between services yet</td></tr>') + '</tbody>';
}

function renderEvents() {
  const item = ev => `<li class="${esc(ev.level)}" data-kind="${esc(ev.kind)}"><time>${clock(ev.time)}</time>${esc(ev.message)}</li>`;
  const newest = state.events.slice().reverse();
  $('#feed-short').innerHTML = newest.slice(0, 60).map(item).join('');
  $('#feed').innerHTML = newest.map(item).join('');
}

// ---------- traces ----------

function renderTraceList() {
  const list = (state.traces && state.traces[state.list]) || [];
  const rows = list.map(t => `<tr data-trace="${esc(t.trace_id)}"><td>${clock(t.start)}</td><td>${esc(t.service)} <b>${esc(t.root)}</b></td>` +
    `<td>${t.services.map(s => `<span class="badge" style="background:hsl(${hue(s)},60%,90%)">${esc(s)}</span>`).join('')}</td>` +
    `<td class="num">${msec(t.duration_ms)}</td><td class="num">${t.spans}</td><td class="num">${t.errors ? `<span class="badge bad">${t.errors}</span>` : ''}</td></tr>`).join('');
  $('#trace-list').innerHTML = '<thead><tr><th>start</th><th>root</th><th>services</th><th class="num">duration</th><th class="num">spans</th><th class="num">errors</th></tr></thead><tbody>' +
    (rows || '<tr><td colspan="6" class="muted">no traces yet: instances send their spans to shoal up (OTLP)</td></tr>') + '</tbody>';
}

// spanBadges makes what the resilience machinery did visible: which
// attempt, why (retry, hedge), to which instance, its outcome, the
// breaker and a fallback.
function spanBadges(sp) {
  const a = sp.attributes || {};
  const out = [];
  const reason = String(a['shoal.attempt.reason'] || '');
  if (a['shoal.attempt'] !== undefined) out.push(`<span class="badge">attempt ${esc(a['shoal.attempt'])}</span>`);
  if (reason.startsWith('hedge')) out.push(`<span class="badge hedge">${esc(reason)}</span>`);
  else if (reason.startsWith('retry')) out.push(`<span class="badge retry">${esc(reason)}</span>`);
  if (a['shoal.instance']) out.push(`<span class="badge">→ ${esc(slotOfID(a['shoal.instance']))}</span>`);
  if (a['shoal.outcome']) {
    const ok = /^(ok|success|won)/.test(String(a['shoal.outcome']));
    out.push(`<span class="badge ${ok ? 'ok' : 'bad'}">${esc(a['shoal.outcome'])}</span>`);
  }
  if (a['shoal.breaker'] && a['shoal.breaker'] !== 'closed') out.push(`<span class="badge warn">breaker ${esc(a['shoal.breaker'])}</span>`);
  if (a['shoal.fallback']) out.push(`<span class="badge warn">fallback: ${esc(a['shoal.fallback'])}</span>`);
  const code = a['http.response.status_code'];
  if (code) out.push(`<span class="badge ${code >= 500 ? 'bad' : ''}">${esc(code)}</span>`);
  if (sp.status === 'error') out.push(`<span class="badge bad">error</span>`);
  return out.join('');
}

async function openTrace(id) {
  $('#trace-title').textContent = 'Trace ' + id;
  $('#waterfall').innerHTML = '<span class="muted">loading…</span>';
  $('#trace-logs').textContent = '';
  $('#span-detail').hidden = true;
  const r = await fetch('/api/traces/' + encodeURIComponent(id));
  if (!r.ok) {
    const j = await r.json().catch(() => ({}));
    $('#waterfall').innerHTML = `<span class="muted">${esc((j.error && j.error.message) || r.statusText)}</span>`;
    $('#trace-meta').textContent = '';
    state.trace = null;
    return;
  }
  state.trace = await r.json();
  renderWaterfall();
  const lr = await fetch('/api/traces/' + encodeURIComponent(id) + '/logs');
  const logs = lr.ok ? (await lr.json()).lines : [];
  $('#trace-logs').textContent = logs.length ? logs.map(l => l.instance + ' | ' + l.text).join('\n') : 'no log line carries this trace ID';
}

function renderWaterfall() {
  const t = state.trace;
  const spans = t.spans;
  const byID = new Map(spans.map(s => [s.span_id, s]));
  const kids = new Map();
  const roots = [];
  for (const s of spans) {
    if (s.parent_id && byID.has(s.parent_id)) {
      if (!kids.has(s.parent_id)) kids.set(s.parent_id, []);
      kids.get(s.parent_id).push(s);
    } else roots.push(s);
  }
  const rows = [];
  const walk = (s, depth) => { rows.push([s, depth]); (kids.get(s.span_id) || []).forEach(k => walk(k, depth + 1)); };
  roots.forEach(r => walk(r, 0));
  // The root's duration is what the caller waited; a call that went on
  // after the answer (a losing hedge) may end later, and is drawn too.
  const total = Math.max(t.duration_ms, ...spans.map(s => s.offset_ms + s.duration_ms), 0.001);
  const attempts = spans.filter(s => s.attributes && s.attributes['shoal.attempt'] !== undefined);
  const retries = attempts.filter(s => String(s.attributes['shoal.attempt.reason'] || '').startsWith('retry')).length;
  const hedges = attempts.filter(s => String(s.attributes['shoal.attempt.reason'] || '').startsWith('hedge')).length;
  const fallbacks = spans.filter(s => s.attributes && s.attributes['shoal.fallback']).length;
  $('#trace-meta').innerHTML = `${esc(t.service)} <b>${esc(t.root)}</b> · ${msec(t.duration_ms)} · ${spans.length} spans · ` +
    `services: ${t.services.map(esc).join(', ')} · ${attempts.length} attempts, ${retries} retries, ${hedges} hedges, ${fallbacks} fallbacks` +
    (t.errors ? ` · <span class="badge bad">${t.errors} errors</span>` : '') + ` · <a href="#/traces">all traces</a>`;
  $('#waterfall').innerHTML = rows.map(([s, depth], i) => {
    const left = s.offset_ms / total * 100, width = Math.max(s.duration_ms / total * 100, 0.2);
    const reason = String((s.attributes || {})['shoal.attempt.reason'] || '');
    const cls = (s.status === 'error' ? ' error' : '') + (reason.startsWith('hedge') ? ' hedge' : '');
    const where = s.slot || slotOfID(s.instance) || s.service;
    return `<div class="wf-row" data-i="${i}" data-service="${esc(s.service)}" data-span="${esc(s.span_id)}">` +
      `<div class="wf-label" style="padding-left:${depth * 14}px" title="${esc(where)} ${esc(s.name)}"><span class="svcname" style="color:hsl(${hue(s.service)},55%,38%)">${esc(where)}</span> ${esc(s.name)}${spanBadges(s)}</div>` +
      `<div class="wf-track"><div class="wf-bar${cls}" style="left:${left}%;width:${width}%;background-color:hsl(${hue(s.service)},60%,55%)"></div>` +
      `<span class="wf-dur" style="left:calc(${Math.min(left + width, 92)}% + 4px)">${msec(s.duration_ms)}</span></div></div>`;
  }).join('');
  state.rows = rows;
}

function showSpan(i) {
  const [s] = state.rows[i];
  document.querySelectorAll('.wf-row.sel').forEach(r => r.classList.remove('sel'));
  $(`.wf-row[data-i="${i}"]`).classList.add('sel');
  const attrs = Object.entries(s.attributes || {}).sort().map(([k, v]) => `<tr><td>${esc(k)}</td><td>${esc(typeof v === 'object' ? JSON.stringify(v) : v)}</td></tr>`).join('');
  const events = (s.events || []).map(e => `<tr><td>event +${msec(Date.parse(e.time) - Date.parse(s.start))}</td><td>${esc(e.name)} ${esc(JSON.stringify(e.attributes || {}))}</td></tr>`).join('');
  const d = $('#span-detail');
  d.innerHTML = `<h3>${esc(s.name)} <small>${esc(s.kind)} span ${esc(s.span_id)}</small></h3><table class="grid">` +
    `<tr><td>service</td><td>${esc(s.service)}</td></tr><tr><td>instance</td><td>${esc(s.instance)}${s.slot ? ' (' + esc(s.slot) + ')' : ''}</td></tr>` +
    `<tr><td>start</td><td>+${msec(s.offset_ms)}</td></tr><tr><td>duration</td><td>${msec(s.duration_ms)}</td></tr>` +
    `<tr><td>status</td><td>${esc(s.status)} ${esc(s.status_message || '')}</td></tr>${attrs}${events}</table>`;
  d.hidden = false;
}

// ---------- navigation ----------

function route() {
  const h = location.hash || '#/';
  let view = 'overview';
  if (h.startsWith('#/trace/')) view = 'trace';
  else if (h === '#/traces') view = 'traces';
  else if (h === '#/events') view = 'events';
  for (const v of document.querySelectorAll('.view')) v.hidden = v.id !== 'view-' + view;
  for (const a of document.querySelectorAll('nav a')) a.classList.toggle('on', a.dataset.view === (view === 'trace' ? 'traces' : view));
  if (view === 'trace') openTrace(decodeURIComponent(h.slice('#/trace/'.length)));
}

document.addEventListener('DOMContentLoaded', () => {
  $('#trace-tabs').addEventListener('click', e => {
    const b = e.target.closest('button[data-list]');
    if (!b) return;
    state.list = b.dataset.list;
    document.querySelectorAll('#trace-tabs button').forEach(x => x.classList.toggle('on', x === b));
    renderTraceList();
  });
  $('#trace-list').addEventListener('click', e => {
    const tr = e.target.closest('tr[data-trace]');
    if (tr) location.hash = '#/trace/' + tr.dataset.trace;
  });
  $('#waterfall').addEventListener('click', e => {
    const row = e.target.closest('.wf-row');
    if (row) showSpan(Number(row.dataset.i));
  });
  window.addEventListener('hashchange', route);
  route();
  renderTraceList();
  connect();
});
