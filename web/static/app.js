// Jarvis operator console. Plain ES2020, no framework, no build step.
//
// Everything the agents or the cluster supply is shown with textContent, never
// parsed as HTML: plans, summaries and names are untrusted text.
//
// Feed events: the fields of each kind's `details` (tool, approval, cluster,
// alert, safety, system) are defined, with their json names, in
// store/event_kinds.go. Read them there before using a new one.
'use strict';

(() => {
  const FEED_TYPES = ['tool', 'approval', 'cluster', 'alert', 'safety', 'system'];
  const FEED_CAP = 300;          // events kept in the activity list
  const RECENT_LIMIT = 50;       // events fetched on load and after a reconnect
  const MAX_BACKOFF_MS = 30000;  // longest wait between our own reconnect attempts
  const SEVERITY_RANK = { info: 0, warning: 1, critical: 2 };

  const $ = (id) => document.getElementById(id);

  const state = {
    session: false,
    es: null,
    everOpened: false,
    reopenTimer: 0,
    backoff: 1000,
    clockOffset: 0,           // server time minus local time, when they differ noticeably
    safety: { kill_switch: false, read_only: false },
    events: [],               // newest first
    eventNodes: new Map(),    // event id → <li>
    approvals: new Map(),     // approval id → {data, el}
    deciding: new Set(),      // approval ids with a decision in flight
    clusterSeq: { nodes: 0, guests: 0, storage: 0 },
    clusterUpdated: null,     // time of the newest snapshot shown
    conn: 'offline',          // the feed's state, as setConn was told
    clusterProblem: null,     // {error, fix, partial} while the cluster cannot be read
    problemSeq: 0,            // counts live reachability events, so an older health answer loses
    nodeEls: new Map(),
    tick: 0,
    approvalsLoad: null,
    approvalsAgain: false,
    noticeTimer: 0,
  };

  // ---------- small helpers ----------

  function el(tag, className, text) {
    const e = document.createElement(tag);
    if (className) e.className = className;
    if (text !== undefined && text !== null) e.textContent = String(text);
    return e;
  }

  function fromTemplate(id) {
    return $(id).content.firstElementChild.cloneNode(true);
  }

  function q(root, selector) {
    return root.querySelector(selector);
  }

  function now() {
    return Date.now() + state.clockOffset;
  }

  function pad(n) {
    return String(n).padStart(2, '0');
  }

  function clockTime(d) {
    return `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
  }

  function duration(seconds) {
    seconds = Math.max(0, Math.floor(seconds));
    const d = Math.floor(seconds / 86400);
    const h = Math.floor((seconds % 86400) / 3600);
    const m = Math.floor((seconds % 3600) / 60);
    if (d > 0) return `${d}d ${h}h`;
    if (h > 0) return `${h}h ${m}m`;
    return `${m}m`;
  }

  function countdown(ms) {
    const total = Math.max(0, Math.ceil(ms / 1000));
    const h = Math.floor(total / 3600);
    const m = Math.floor((total % 3600) / 60);
    const s = total % 60;
    return h > 0 ? `${h}:${pad(m)}:${pad(s)}` : `${m}:${pad(s)}`;
  }

  function bytes(n) {
    if (!Number.isFinite(n) || n <= 0) return '0 B';
    const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB'];
    let i = 0;
    while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
    return `${n >= 100 || i === 0 ? n.toFixed(0) : n.toFixed(1)} ${units[i]}`;
  }

  function percent(v) {
    const n = Number(v);
    return Number.isFinite(n) ? Math.min(100, Math.max(0, n)) : 0;
  }

  function tierName(t) {
    return ['green', 'yellow', 'red'].includes(t) ? t : '';
  }

  // ---------- HTTP ----------

  class HTTPError extends Error {
    constructor(message, status, data) {
      super(message);
      this.status = status;
      this.data = data;
    }
  }

  // api calls the JSON API with the session cookie. A 401 outside the login form
  // means the session ended: the console goes back to the login screen.
  async function api(method, path, body) {
    const init = { method, credentials: 'same-origin', headers: { Accept: 'application/json' } };
    if (body !== undefined) {
      init.headers['Content-Type'] = 'application/json';
      init.body = JSON.stringify(body);
    }
    let res;
    try {
      res = await fetch(path, init);
    } catch (err) {
      throw new HTTPError('Jarvis did not answer; check that it is running and the network is up.', 0, null);
    }
    noteServerClock(res);
    const text = await res.text();
    let data = null;
    if (text) {
      try { data = JSON.parse(text); } catch (_) { data = null; }
    }
    if (!res.ok) {
      const msg = (data && data.error) || `${method} ${path} failed (HTTP ${res.status})`;
      const err = new HTTPError(msg, res.status, data);
      if (res.status === 401 && path !== '/api/auth/login') sessionEnded();
      throw err;
    }
    return data;
  }

  // Countdowns use the server's clock when the two differ by more than a few seconds.
  function noteServerClock(res) {
    const d = Date.parse(res.headers.get('Date') || '');
    if (Number.isNaN(d)) return;
    const off = d - Date.now();
    state.clockOffset = Math.abs(off) > 3000 ? off : 0;
  }

  // ---------- connection state ----------

  // The pill says "live" only when the feed is open and the cluster can be read:
  // a live feed of a cluster Jarvis cannot reach shows the problem instead.
  function setConn(kind) {
    state.conn = kind;
    renderConn();
  }

  function renderConn() {
    const words = { live: 'live', connecting: 'connecting…', reconnecting: 'reconnecting…', offline: 'offline' };
    const p = state.clusterProblem;
    let kind = state.conn;
    let text = words[kind] || kind;
    if (kind === 'live' && p) {
      kind = 'degraded';
      text = p.partial ? 'cluster degraded' : 'cluster unreachable';
    }
    $('conn').dataset.state = kind;
    $('conn-text').textContent = text;
  }

  // ---------- cluster reachability ----------

  // setClusterProblem shows why the cluster cannot be read (the watcher's
  // system events, or /api/health at load), or clears it when it can again.
  function setClusterProblem(p) {
    state.clusterProblem = p && p.error ? p : null;
    p = state.clusterProblem;
    const banner = $('cluster-banner');
    banner.hidden = !p || !state.session;
    $('cluster-banner-cause').textContent = p ? p.error : '';
    // The fix is shown unless the cause already spells it out.
    const fix = p && p.fix && !p.error.includes(p.fix) ? `To fix: ${p.fix}` : '';
    $('cluster-banner-fix').textContent = fix;
    $('cluster-banner-fix').hidden = !fix;
    renderConn();
    renderUpdated();
  }

  function onReachability(ev) {
    const d = details(ev);
    if (d.dependency !== 'pve_api') return;
    state.problemSeq++;
    if (d.state === 'failing') setClusterProblem({ error: d.error, fix: d.fix, partial: ev.severity !== 'critical' });
    else if (d.state === 'recovered') setClusterProblem(null);
  }

  // loadHealth reads the cluster's state when the feed (re)opens: a failure that
  // began before, or while away, was announced on events this page never saw.
  async function loadHealth() {
    const seq = state.problemSeq;
    let h;
    try {
      h = await api('GET', '/api/health');
    } catch (err) {
      h = err.data; // 503 "down" still lists its problems
    }
    if (!h || !Array.isArray(h.problems) || seq !== state.problemSeq || !state.session) return;
    const ps = h.problems.filter((p) => p && p.dependency === 'pve_api');
    if (!ps.length) {
      setClusterProblem(null);
      return;
    }
    setClusterProblem({
      error: ps.map((p) => p.error).join('; '),
      fix: ps.map((p) => p.fix).filter(Boolean).join('; '),
      partial: h.pve_api === 'degraded',
    });
  }

  // renderUpdated says when the overview was last filled, or why it is empty.
  function renderUpdated() {
    const out = $('cluster-updated');
    const p = state.clusterProblem;
    if (state.clusterUpdated) {
      out.textContent = `updated ${clockTime(state.clusterUpdated)}${p ? ' · stale: Jarvis cannot read the cluster' : ''}`;
    } else {
      out.textContent = p ? 'no snapshot yet: Jarvis cannot read the Proxmox cluster (why is in the red banner)' : 'waiting for the first snapshot…';
    }
    out.dataset.problem = p ? 'true' : 'false';
    if (p) out.title = p.error; else out.removeAttribute('title');
  }

  function notice(message) {
    const n = $('notice');
    n.textContent = message;
    n.hidden = !message;
    clearTimeout(state.noticeTimer);
    if (message) state.noticeTimer = setTimeout(() => { n.hidden = true; }, 10000);
  }

  // ---------- views ----------

  function showLogin(message) {
    $('console-view').hidden = true;
    $('session-controls').hidden = true;
    $('banner').hidden = true;
    $('cluster-banner').hidden = true;
    $('login-view').hidden = false;
    $('login-error').textContent = message || '';
    setConn('offline');
    $('login-password').focus();
  }

  function showConsole() {
    $('login-view').hidden = true;
    $('console-view').hidden = false;
    $('session-controls').hidden = false;
  }

  // ---------- session ----------

  async function boot() {
    wire();
    setConn('connecting');
    try {
      const s = await api('GET', '/api/safety');
      showConsole();
      applySafety(s);
      startSession();
    } catch (err) {
      if (err.status === 401) {
        showLogin();
        return;
      }
      setConn('offline');
      notice(`${err.message} Trying again…`);
      setTimeout(() => { bootRetry(); }, 5000);
    }
  }

  async function bootRetry() {
    try {
      const s = await api('GET', '/api/safety');
      notice('');
      showConsole();
      applySafety(s);
      startSession();
    } catch (err) {
      if (err.status === 401) { showLogin(); return; }
      setTimeout(() => { bootRetry(); }, 5000);
    }
  }

  function startSession() {
    if (state.session) return;
    state.session = true;
    // Open the stream first, then read history: an event landing in between is
    // caught by one or the other, and duplicates are dropped by id.
    openFeed();
    loadHealth();
    loadApprovals();
    loadRecent();
    loadClusterSnapshots();
    state.tick = setInterval(tickCountdowns, 1000);
  }

  function stopSession() {
    state.session = false;
    closeFeed();
    clearTimeout(state.reopenTimer);
    clearInterval(state.tick);
    state.everOpened = false;
    state.backoff = 1000;
    state.events = [];
    state.eventNodes.clear();
    $('feed').replaceChildren();
    state.approvals.clear();
    state.deciding.clear();
    $('approvals').replaceChildren();
    renderApprovalCount();
    state.clusterSeq = { nodes: 0, guests: 0, storage: 0 };
    state.clusterUpdated = null;
    setClusterProblem(null);
    state.nodeEls.clear();
    $('nodes').replaceChildren();
    $('guests').replaceChildren();
    $('storage').replaceChildren();
    updateFeedEmpty();
  }

  function sessionEnded() {
    if (!state.session && !$('login-view').hidden) return;
    stopSession();
    showLogin('Your session ended; log in again.');
  }

  async function onLogin(ev) {
    ev.preventDefault();
    const input = $('login-password');
    const button = $('login-submit');
    const error = $('login-error');
    if (!input.value) {
      error.textContent = 'Enter the operator password.';
      input.focus();
      return;
    }
    button.disabled = true;
    error.textContent = '';
    try {
      await api('POST', '/api/auth/login', { password: input.value });
      input.value = '';
      const s = await api('GET', '/api/safety');
      showConsole();
      applySafety(s);
      startSession();
      $('main').focus();
    } catch (err) {
      if (err.status === 401) error.textContent = 'Wrong password.';
      else if (err.status === 429) error.textContent = 'Too many attempts; wait a minute and try again.';
      else error.textContent = err.message;
      input.select();
    } finally {
      button.disabled = false;
    }
  }

  async function onLogout() {
    try { await api('POST', '/api/auth/logout'); } catch (_) { /* the cookie is cleared either way */ }
    stopSession();
    showLogin();
  }

  // ---------- live feed ----------

  function openFeed() {
    closeFeed();
    setConn(state.everOpened ? 'reconnecting' : 'connecting');
    const es = new EventSource('/api/events');
    state.es = es;
    es.onopen = () => {
      setConn('live');
      state.backoff = 1000;
      if (state.everOpened) {
        // Fill anything missed while away (a fresh EventSource has no Last-Event-ID).
        loadHealth();
        loadApprovals();
        loadRecent();
      }
      state.everOpened = true;
    };
    for (const type of FEED_TYPES) es.addEventListener(type, onFeedMessage);
    es.onerror = () => {
      if (es.readyState === EventSource.CONNECTING) {
        // The browser retries by itself and replays from Last-Event-ID.
        setConn('reconnecting');
        return;
      }
      // The browser gave up (an HTTP error such as 401): check the session and retry ourselves.
      closeFeed();
      setConn('offline');
      scheduleReopen();
    };
  }

  function closeFeed() {
    if (state.es) {
      state.es.close();
      state.es = null;
    }
  }

  function scheduleReopen() {
    clearTimeout(state.reopenTimer);
    const wait = state.backoff;
    state.backoff = Math.min(MAX_BACKOFF_MS, state.backoff * 2);
    state.reopenTimer = setTimeout(async () => {
      if (!state.session) return;
      try {
        await api('GET', '/api/safety');
      } catch (err) {
        if (err.status === 401) return; // sessionEnded already showed the login
        scheduleReopen();
        return;
      }
      openFeed();
    }, wait);
  }

  function onFeedMessage(msg) {
    let ev;
    try { ev = JSON.parse(msg.data); } catch (_) { return; }
    if (!ev || typeof ev.id !== 'number') return;
    handleEvent(ev, true);
  }

  function handleEvent(ev, live) {
    switch (ev.type) {
      case 'cluster':
        applyCluster(ev);
        return; // snapshots feed the overview, not the activity list
      case 'approval':
        if (live) loadApprovals();
        break;
      case 'safety':
        if (live) loadSafety();
        break;
      case 'alert':
        markResolved(ev);
        break;
      case 'system':
        // History may be older than what health said; only live news counts.
        if (live) onReachability(ev);
        break;
      default:
        break;
    }
    addEvent(ev, live);
  }

  async function loadRecent() {
    try {
      const data = await api('GET', `/api/memory/events?limit=${RECENT_LIMIT}`);
      // Oldest first, so resolutions find the alerts they resolve.
      for (const ev of (data.events || []).slice().reverse()) handleEvent(ev, false);
    } catch (err) {
      if (err.status !== 401) notice(`Could not load recent activity: ${err.message}`);
    }
  }

  // The newest snapshot of each kind fills the overview before the poller's next round.
  async function loadClusterSnapshots() {
    try {
      const data = await api('GET', '/api/memory/events?type=cluster&limit=6');
      for (const ev of (data.events || []).slice().reverse()) applyCluster(ev);
    } catch (_) { /* the live feed brings the next snapshot */ }
  }

  // ---------- activity list ----------

  function addEvent(ev, live) {
    if (state.eventNodes.has(ev.id)) return;
    const li = renderEvent(ev);
    if (live) {
      li.dataset.fresh = '';
      setTimeout(() => { delete li.dataset.fresh; }, 1700);
    }
    // Keep newest first; DOM order follows state.events exactly.
    let i = 0;
    while (i < state.events.length && state.events[i].id > ev.id) i++;
    const feed = $('feed');
    const next = state.events[i];
    state.events.splice(i, 0, ev);
    state.eventNodes.set(ev.id, li);
    feed.insertBefore(li, next ? state.eventNodes.get(next.id) : null);
    while (state.events.length > FEED_CAP) {
      const old = state.events.pop();
      const node = state.eventNodes.get(old.id);
      if (node) node.remove();
      state.eventNodes.delete(old.id);
    }
    if (ev.node) addNodeOption(ev.node);
    applyFilterTo(ev, li);
    updateFeedEmpty();
  }

  function renderEvent(ev) {
    const li = fromTemplate('tpl-event');
    const d = details(ev);
    li.dataset.id = String(ev.id);
    li.dataset.type = ev.type;
    li.dataset.severity = ev.severity || 'info';
    const tier = tierName(d.tier);
    if (tier) li.dataset.tier = tier;
    if (ev.resolved) li.dataset.resolved = '';

    const when = new Date(ev.time);
    const t = q(li, '.event-time');
    if (!Number.isNaN(when.getTime())) {
      t.textContent = clockTime(when);
      t.dateTime = when.toISOString();
      t.title = when.toLocaleString();
    }
    const type = q(li, '.event-type');
    type.textContent = ev.type;
    type.classList.add(`type-${ev.type}`);
    q(li, '.event-summary').textContent = ev.summary || '';

    const meta = q(li, '.event-meta');
    const parts = [];
    if (tier) {
      const b = el('span', `badge tier tier-${tier}`, tier);
      meta.append(b, ' ');
    }
    if (ev.type === 'tool') {
      if (d.principal) parts.push(d.principal);
      if (d.outcome === 'unknown') {
        // A write that may or may not have happened: it must stand out, and its
        // reason (what to check before retrying) is shown, not only hovered.
        li.dataset.outcome = 'unknown';
        meta.append(el('span', 'badge outcome-unknown', 'outcome unknown'), ' ');
        if (d.reason) parts.push(d.reason);
      } else if (d.outcome) parts.push(d.outcome);
      if (typeof d.duration_ms === 'number' && d.phase === 'ended') parts.push(`${d.duration_ms} ms`);
    } else if (ev.type === 'approval') {
      if (d.principal) parts.push(`asked by ${d.principal}`);
    } else if (ev.source) {
      parts.push(ev.source);
    }
    if (ev.node) parts.push(`node ${ev.node}`);
    if (ev.severity && ev.severity !== 'info') parts.push(ev.severity);
    if (parts.length) meta.append(parts.join(' · '));
    if (meta.textContent) meta.title = d.reason ? `${meta.textContent}\n${d.reason}` : meta.textContent;
    return li;
  }

  function details(ev) {
    const d = ev.details;
    if (d && typeof d === 'object') return d;
    if (typeof d === 'string') {
      try { return JSON.parse(d) || {}; } catch (_) { return {}; }
    }
    return {};
  }

  function markResolved(ev) {
    const d = details(ev);
    if (d.state !== 'resolved' || typeof d.alert_id !== 'number') return;
    const li = state.eventNodes.get(d.alert_id);
    if (li) li.dataset.resolved = '';
  }

  function filters() {
    const kinds = new Set();
    for (const box of document.querySelectorAll('#feed-filters input[name="kind"]')) {
      if (box.checked) kinds.add(box.value);
    }
    return { kinds, minSeverity: $('filter-severity').value, node: $('filter-node').value };
  }

  function applyFilterTo(ev, li, f = filters()) {
    let show = f.kinds.has(ev.type);
    if (show && f.minSeverity) show = (SEVERITY_RANK[ev.severity] || 0) >= SEVERITY_RANK[f.minSeverity];
    if (show && f.node) show = ev.node === f.node;
    li.hidden = !show;
  }

  function applyFilters() {
    const f = filters();
    for (const ev of state.events) applyFilterTo(ev, state.eventNodes.get(ev.id), f);
    updateFeedEmpty();
  }

  function updateFeedEmpty() {
    const any = state.events.length > 0;
    const visible = state.events.some((ev) => !state.eventNodes.get(ev.id).hidden);
    const empty = $('feed-empty');
    empty.hidden = visible;
    empty.textContent = any ? 'No activity matches these filters.' : 'No activity yet.';
  }

  function addNodeOption(name) {
    const select = $('filter-node');
    for (const o of select.options) if (o.value === name) return;
    const opt = el('option', '', name);
    opt.value = name;
    // Keep the list sorted after "All nodes".
    let before = null;
    for (let i = 1; i < select.options.length; i++) {
      if (select.options[i].value > name) { before = select.options[i]; break; }
    }
    select.insertBefore(opt, before);
  }

  // ---------- approvals ----------

  // loadApprovals refreshes the pending list; calls during a load coalesce into one more.
  async function loadApprovals() {
    if (state.approvalsLoad) {
      state.approvalsAgain = true;
      return state.approvalsLoad;
    }
    state.approvalsLoad = (async () => {
      try {
        do {
          state.approvalsAgain = false;
          const data = await api('GET', '/api/approvals?status=pending');
          renderApprovals(data.approvals || []);
        } while (state.approvalsAgain && state.session);
      } catch (err) {
        if (err.status !== 401) notice(`Could not load approvals: ${err.message}`);
      } finally {
        state.approvalsLoad = null;
      }
    })();
    return state.approvalsLoad;
  }

  function renderApprovals(list) {
    if (!state.session) return;
    list = list.slice().sort((a, b) => Date.parse(a.expires_at) - Date.parse(b.expires_at));
    const keep = new Set(list.map((a) => a.id));
    for (const [id, item] of state.approvals) {
      if (!keep.has(id)) {
        item.el.remove();
        state.approvals.delete(id);
        state.deciding.delete(id);
      }
    }
    const ul = $('approvals');
    let prev = null;
    for (const a of list) {
      let item = state.approvals.get(a.id);
      if (!item) {
        item = { data: a, el: renderApproval(a) };
        state.approvals.set(a.id, item);
      }
      item.data = a;
      const want = prev ? prev.nextSibling : ul.firstChild;
      if (want !== item.el) ul.insertBefore(item.el, want);
      prev = item.el;
    }
    renderApprovalCount();
    holdApprovals();
    tickCountdowns();
  }

  // holdApprovals disables Approve while a safety switch is on: the server refuses
  // such an approval anyway, so the button says why instead of failing. Deny stays.
  function holdApprovals() {
    const why = state.safety.kill_switch ? 'Approve is off while the kill switch is on.'
      : state.safety.read_only ? 'Approve is off while read-only mode is on.' : '';
    for (const [id, { data, el: li }] of state.approvals) {
      const held = q(li, '.approval-held');
      held.textContent = why;
      held.hidden = !why;
      if (state.deciding.has(id) || Date.parse(data.expires_at) <= now()) continue;
      const approve = q(li, 'button[data-action="approve"]');
      approve.disabled = !!why;
      approve.title = why;
    }
  }

  function renderApproval(a) {
    const li = fromTemplate('tpl-approval');
    li.dataset.approvalId = a.id;
    const tier = tierName(a.tier) || 'yellow';
    li.dataset.tier = tier;
    const badge = q(li, '.tier');
    badge.textContent = a.tier || 'unknown';
    badge.classList.add(`tier-${tier}`);
    q(li, '.approval-tool').textContent = a.tool;
    q(li, '.approval-plan').textContent = a.plan;
    q(li, '.approval-principal').textContent = a.principal;
    q(li, '.approval-id').textContent = a.id;
    // Approval args are the redacted JSON, then " sha256:<hash of the exact arguments>".
    let args = a.args || '';
    const cut = args.lastIndexOf(' sha256:');
    const json = cut >= 0 ? args.slice(0, cut) : args;
    try { args = JSON.stringify(JSON.parse(json), null, 2) + (cut >= 0 ? '\n' + args.slice(cut + 1) : ''); } catch (_) { /* show as sent */ }
    q(li, '[data-testid="approval-args"]').textContent = args;
    for (const b of li.querySelectorAll('button[data-action]')) {
      b.setAttribute('aria-label', `${b.dataset.action === 'approve' ? 'Approve' : 'Deny'} ${a.tool}: ${a.plan}`);
      b.addEventListener('click', () => decide(a.id, b.dataset.action));
    }
    return li;
  }

  function renderApprovalCount() {
    const n = state.approvals.size;
    const c = $('approvals-count');
    c.textContent = String(n);
    if (n > 0) c.dataset.nonzero = ''; else delete c.dataset.nonzero;
    $('approvals-empty').hidden = n > 0;
    document.title = n > 0 ? `(${n}) Jarvis console` : 'Jarvis console';
  }

  // decide sends the operator's answer once: the buttons lock on the first click and
  // further clicks are ignored until the server has answered.
  async function decide(id, action) {
    const item = state.approvals.get(id);
    if (!item || state.deciding.has(id)) return;
    state.deciding.add(id);
    const li = item.el;
    const buttons = li.querySelectorAll('button[data-action]');
    for (const b of buttons) b.disabled = true;
    li.dataset.busy = '';
    const clicked = q(li, `button[data-action="${action}"]`);
    clicked.textContent = action === 'approve' ? 'Approving…' : 'Denying…';
    const error = q(li, '.approval-error');
    error.textContent = '';
    try {
      await api('POST', `/api/approvals/${encodeURIComponent(id)}/${action}`);
      li.dataset.decided = action;
      clicked.textContent = action === 'approve' ? 'Approved' : 'Denied';
    } catch (err) {
      if (err.status === 409 && err.data && err.data.details && err.data.details.reason === 'safety_switch') {
        // Refused because a switch is on: nothing was decided.
        error.textContent = err.message;
        clicked.textContent = 'Approve';
        delete li.dataset.busy;
        state.deciding.delete(id);
        for (const b of buttons) b.disabled = false;
        loadSafety();
        return;
      } else if (err.status === 409 || err.status === 404) {
        clicked.textContent = 'Already decided';
      } else {
        // Nothing was decided: let the operator try again.
        error.textContent = err.message;
        clicked.textContent = action === 'approve' ? 'Approve' : 'Deny';
        for (const b of buttons) b.disabled = false;
        delete li.dataset.busy;
        state.deciding.delete(id);
        return;
      }
    }
    loadApprovals();
  }

  function tickCountdowns() {
    let expired = false;
    for (const [id, { data, el: li }] of state.approvals) {
      const left = Date.parse(data.expires_at) - now();
      const c = q(li, '.approval-countdown');
      if (Number.isNaN(left)) {
        c.textContent = '';
        continue;
      }
      if (left <= 0) {
        c.textContent = 'expired';
        c.dataset.expired = '';
        if (!state.deciding.has(id)) {
          for (const b of li.querySelectorAll('button[data-action]')) b.disabled = true;
        }
        expired = true;
        continue;
      }
      c.textContent = `expires in ${countdown(left)}`;
      c.title = `expires at ${new Date(Date.parse(data.expires_at)).toLocaleTimeString()}`;
      if (left <= 60000) c.dataset.urgent = ''; else delete c.dataset.urgent;
    }
    // The server's sweeper marks it expired and announces it; until then, re-check now and then.
    if (expired && Math.floor(Date.now() / 1000) % 5 === 0) loadApprovals();
  }

  // ---------- safety switches ----------

  async function loadSafety() {
    try {
      applySafety(await api('GET', '/api/safety'));
    } catch (err) {
      if (err.status !== 401) notice(`Could not read the safety switches: ${err.message}`);
    }
  }

  function applySafety(s) {
    state.safety = { kill_switch: !!s.kill_switch, read_only: !!s.read_only };
    const ks = $('kill-switch');
    const ro = $('read-only');
    ks.setAttribute('aria-checked', String(state.safety.kill_switch));
    ro.setAttribute('aria-checked', String(state.safety.read_only));
    ks.disabled = false;
    ro.disabled = false;
    ks.title = state.safety.kill_switch ? 'Kill switch ON: every state-changing call is refused. Click to release.' : 'Stop agents from changing anything';
    ro.title = state.safety.read_only ? 'Read-only mode ON: only reads are allowed. Click to allow changes again.' : 'Allow reads only';
    const banner = $('banner');
    if (state.safety.kill_switch) {
      banner.textContent = 'Kill switch is ON — Jarvis refuses every action that changes anything.';
      banner.dataset.kind = 'danger';
      banner.hidden = false;
    } else if (state.safety.read_only) {
      banner.textContent = 'Read-only mode — agents can look but not change anything.';
      banner.dataset.kind = 'info';
      banner.hidden = false;
    } else {
      banner.hidden = true;
    }
    holdApprovals();
  }

  async function toggleSwitch(key, button) {
    if (button.disabled) return;
    const want = !state.safety[key];
    button.disabled = true;
    try {
      applySafety(await api('PUT', '/api/safety', { [key]: want }));
    } catch (err) {
      button.disabled = false;
      if (err.status !== 401) notice(`Could not change the switch: ${err.message}`);
    }
  }

  // ---------- cluster overview ----------

  function applyCluster(ev) {
    const d = details(ev);
    const what = d.what;
    if (!(what in state.clusterSeq) || ev.id < state.clusterSeq[what]) return;
    state.clusterSeq[what] = ev.id;
    if (what === 'nodes') renderNodes(d.nodes || []);
    if (what === 'guests') renderGuests(d.guests || []);
    if (what === 'storage') renderStorage(d.storage || []);
    const when = new Date(ev.time);
    if (!Number.isNaN(when.getTime())) {
      state.clusterUpdated = when;
      renderUpdated();
    }
  }

  function setMeter(m, label, value, title) {
    const pct = percent(value);
    q(m, '.meter-label').textContent = label;
    const bar = q(m, '.meter-bar');
    bar.setAttribute('aria-valuenow', pct.toFixed(0));
    bar.setAttribute('aria-label', `${label} ${pct.toFixed(0)} percent`);
    // CSSOM writes are allowed by the CSP (style attributes in markup are not).
    q(m, '.meter-fill').style.width = `${pct}%`;
    q(m, '.meter-value').textContent = `${pct.toFixed(0)}%`;
    m.dataset.level = pct >= 90 ? 'critical' : pct >= 75 ? 'high' : 'ok';
    if (title) m.title = title; else m.removeAttribute('title');
  }

  function renderNodes(nodes) {
    const ul = $('nodes');
    const seen = new Set();
    nodes = nodes.slice().sort((a, b) => String(a.node).localeCompare(String(b.node)));
    let prev = null;
    for (const n of nodes) {
      seen.add(n.node);
      let li = state.nodeEls.get(n.node);
      if (!li) {
        li = fromTemplate('tpl-node');
        li.dataset.node = n.node;
        q(li, '.node-name').textContent = n.node;
        const meters = q(li, '.meters');
        for (const key of ['cpu', 'ram', 'disk']) {
          const m = fromTemplate('tpl-meter');
          m.dataset.meter = key;
          m.dataset.testid = `node-${key}`;
          meters.append(m);
        }
        state.nodeEls.set(n.node, li);
        addNodeOption(n.node);
      }
      const status = n.status || 'unknown';
      li.dataset.status = status;
      const badge = q(li, '.node-status');
      badge.textContent = status;
      badge.className = `badge node-status status-${status}`;
      setMeter(q(li, '[data-meter="cpu"]'), 'CPU', n.cpu_percent);
      setMeter(q(li, '[data-meter="ram"]'), 'RAM', n.mem_percent,
        n.maxmem_bytes ? `${bytes(n.mem_bytes)} of ${bytes(n.maxmem_bytes)}` : '');
      setMeter(q(li, '[data-meter="disk"]'), 'Disk', n.disk_percent);
      const meta = [];
      if (n.maxmem_bytes) meta.push(`${bytes(n.mem_bytes)} / ${bytes(n.maxmem_bytes)} RAM`);
      if (status === 'online' && n.uptime_seconds) meta.push(`up ${duration(n.uptime_seconds)}`);
      q(li, '.node-meta').textContent = meta.join(' · ');
      const want = prev ? prev.nextSibling : ul.firstChild;
      if (want !== li) ul.insertBefore(li, want);
      prev = li;
    }
    for (const [name, li] of state.nodeEls) {
      if (!seen.has(name)) { li.remove(); state.nodeEls.delete(name); }
    }
  }

  function renderGuests(guests) {
    guests = guests.slice().sort((a, b) => a.vmid - b.vmid);
    const rows = [];
    let running = 0;
    for (const g of guests) {
      const tr = el('tr');
      tr.dataset.testid = 'guest';
      tr.dataset.vmid = String(g.vmid);
      tr.dataset.status = g.status || 'unknown';
      if (g.status === 'running') running++;
      tr.append(el('td', 'vmid', g.vmid));
      const name = el('td', 'name', g.name || '—');
      name.append(el('span', 'guest-kind', g.kind === 'lxc' ? 'CT' : 'VM'));
      tr.append(name);
      tr.append(el('td', 'node', g.node));
      const st = el('td');
      st.append(el('span', `state state-${g.status || 'unknown'}`, g.status || 'unknown'));
      tr.append(st);
      const running_ = g.status === 'running';
      tr.append(el('td', 'num hide-narrow', running_ ? `${percent(g.cpu_percent).toFixed(0)}%` : '—'));
      tr.append(el('td', 'num hide-narrow', running_ ? `${percent(g.mem_percent).toFixed(0)}%` : '—'));
      rows.push(tr);
    }
    $('guests').replaceChildren(...rows);
    $('guests-summary').textContent = guests.length ? `${running} running · ${guests.length - running} stopped` : '';
  }

  function renderStorage(list) {
    // Shared storage (NFS, Ceph, PBS) is one store seen from every node: show it once.
    const seenShared = new Set();
    list = list.filter((s) => {
      if (!s.shared) return true;
      if (seenShared.has(s.storage)) return false;
      seenShared.add(s.storage);
      return true;
    }).map((s) => (s.shared ? { ...s, node: 'shared' } : s));
    list.sort((a, b) => `${a.node}/${a.storage}`.localeCompare(`${b.node}/${b.storage}`));
    const items = [];
    for (const s of list) {
      const li = el('li', 'storage-item card');
      li.dataset.testid = 'storage-item';
      li.dataset.storage = `${s.node}/${s.storage}`;
      const head = el('div', 'storage-head');
      head.append(el('span', 'storage-name', s.storage));
      head.append(el('span', 'storage-node muted small', s.node));
      li.append(head);
      const m = fromTemplate('tpl-meter');
      setMeter(m, `${s.storage} on ${s.node}`, s.used_percent, s.total_bytes ? `${bytes(s.used_bytes)} of ${bytes(s.total_bytes)}` : '');
      li.append(m);
      const info = [s.type, s.status && s.status !== 'available' ? s.status : '',
        s.total_bytes ? `${bytes(s.used_bytes)} of ${bytes(s.total_bytes)}` : ''].filter(Boolean).join(' · ');
      li.append(el('p', 'node-meta muted small', info));
      items.push(li);
    }
    $('storage').replaceChildren(...items);
  }

  // ---------- wiring ----------

  function wire() {
    $('login-form').addEventListener('submit', onLogin);
    $('logout').addEventListener('click', onLogout);
    $('kill-switch').addEventListener('click', (e) => toggleSwitch('kill_switch', e.currentTarget));
    $('read-only').addEventListener('click', (e) => toggleSwitch('read_only', e.currentTarget));
    $('feed-filters').addEventListener('change', applyFilters);
    // Coming back online or to the tab: reconnect at once instead of waiting out the backoff.
    const nudge = () => {
      if (state.session && !state.es) {
        clearTimeout(state.reopenTimer);
        state.backoff = 1000;
        scheduleReopen();
      }
    };
    window.addEventListener('online', nudge);
    document.addEventListener('visibilitychange', () => { if (!document.hidden) nudge(); });
  }

  boot();
})();
