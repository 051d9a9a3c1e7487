// Jarvis operator console. Plain ES2020, no framework, no build step.
//
// Everything the agents or the cluster supply is shown with textContent, never
// parsed as HTML: plans, summaries and names are untrusted text.
//
// Feed events: the fields of each kind's `details` (tool, approval, cluster,
// alert, safety, rule, system) are defined, with their json names, in
// store/event_kinds.go. Read them there before using a new one.
'use strict';

(() => {
  const FEED_TYPES = ['tool', 'approval', 'cluster', 'alert', 'safety', 'rule', 'system'];
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
    // The clusters Jarvis serves, each one's overview and why it cannot be
    // read (newClusters). With one cluster no event names one: all is under ''.
    clusters: newClusters(),
    conn: 'offline',          // the feed's state, as setConn was told
    problemSeq: 0,            // counts live reachability events, so an older health answer loses
    nodeEls: new Map(),
    tick: 0,
    approvalsLoad: null,
    approvalsAgain: false,
    noticeTimer: 0,
    view: 'overview',         // overview | guest | history | audit | rules | approval (from the location hash)
    guest: null,              // {vmid, cluster, seq, detail} of the open guest view ('' : the default cluster)
    guestSeq: 0,              // bumps on every guest load, so a late answer for another guest loses
    metricsSeq: 0,
    charts: [],               // uPlot instances of the guest view
    chartObserver: null,
    history: { rows: [], next: '', loading: false, seq: 0 },
    audit: { rows: [], next: 0, loading: false, seq: 0, query: '' },
    toolNamesLoaded: false,
    historyTimer: 0,
    demo: false,              // the server runs the simulated cluster (GET /api/demo)
    // The rules view: the list, what the form offers, the rule being changed.
    rules: { list: [], seq: 0, options: null, editing: null, timer: 0 },
    // The approval a #approval/<id> link opened: its id and the server's answer.
    linked: { id: '', seq: 0, data: null, focused: false },
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
    const list = problemList();
    let kind = state.conn;
    let text = words[kind] || kind;
    if (kind === 'live' && list.length) {
      kind = 'degraded';
      const word = list.every((p) => p.partial) ? 'degraded' : 'unreachable';
      // With several clusters, which: the others are fine.
      text = several() ? `${list.map((p) => p.cluster).join(', ')} ${word}` : `cluster ${word}`;
    }
    $('conn').dataset.state = kind;
    $('conn-text').textContent = text;
  }

  // ---------- cluster reachability ----------

  const BANNER_TITLE = 'Jarvis cannot read the Proxmox cluster.';

  // setClusterProblem shows why a cluster cannot be read (the watcher's
  // system events, or /api/health at load), or clears it when it can again.
  // key is the cluster the problem is of: '' with one cluster.
  function setClusterProblem(p, key = '') {
    if (p && p.error) state.clusters.problems.set(key, p);
    else state.clusters.problems.delete(key);
    renderProblems();
  }

  // problemList is every cluster's problem, as {cluster, error, fix, partial},
  // in the picker's order.
  function problemList() {
    return [...state.clusters.problems].map(([cluster, p]) => ({ ...p, cluster }))
      .sort((a, b) => state.clusters.names.indexOf(a.cluster) - state.clusters.names.indexOf(b.cluster));
  }

  function renderProblems() {
    const list = problemList();
    const many = several() && list.every((p) => p.cluster);
    $('cluster-banner').hidden = !list.length || !state.session;
    $('cluster-banner-title').textContent = many
      ? `Jarvis cannot read Proxmox cluster${list.length > 1 ? 's' : ''} ${list.map((p) => p.cluster).join(', ')}.`
      : BANNER_TITLE;
    // The fix is shown unless the cause already spells it out.
    const fixOf = (p) => (p.fix && !p.error.includes(p.fix) ? p.fix : '');
    const cause = $('cluster-banner-cause');
    const fix = $('cluster-banner-fix');
    if (many) {
      // One line per cluster, after its name.
      cause.replaceChildren(...list.map((p) => el('span', 'banner-line', `${p.cluster}: ${p.error}`)));
      const fixes = list.filter(fixOf).map((p) => el('span', 'banner-line', `${p.cluster}: ${fixOf(p)}`));
      fix.replaceChildren(...(fixes.length ? [el('span', 'banner-line', 'To fix:'), ...fixes] : []));
    } else {
      const p = list[0];
      cause.textContent = p ? p.error : '';
      fix.textContent = p && fixOf(p) ? `To fix: ${fixOf(p)}` : '';
    }
    fix.hidden = !fix.textContent;
    renderConn();
    renderUpdated();
    renderClusterChoice();
  }

  // problemKey is the cluster a reachability event is about. With several,
  // one that names none is from before they were configured: the default's.
  function problemKey(ev) {
    return eventCluster(ev) || (several() ? defaultCluster() : '');
  }

  function onReachability(ev) {
    const d = details(ev);
    if (d.dependency !== 'pve_api') return;
    state.problemSeq++;
    learnCluster(eventCluster(ev));
    const key = problemKey(ev);
    state.clusters.heard.set(key, state.problemSeq);
    if (d.state === 'failing') setClusterProblem({ error: d.error, fix: d.fix, partial: ev.severity !== 'critical' }, key);
    else if (d.state === 'recovered') setClusterProblem(null, key);
  }

  // loadHealth reads the cluster's state when the feed (re)opens: a failure that
  // began before, or while away, was announced on events this page never saw.
  // With several clusters, health pings the default one only; each cluster's
  // watcher keeps its open failure as an unresolved event (loadClusterProblems).
  async function loadHealth() {
    const seq = state.problemSeq;
    let h;
    try {
      h = await api('GET', '/api/health');
    } catch (err) {
      h = err.data; // 503 "down" still lists its problems
    }
    if (!h || !state.session) return;
    if (Array.isArray(h.clusters)) learnServerClusters(h.clusters);
    if (several()) {
      loadClusterProblems(seq);
      return;
    }
    if (!Array.isArray(h.problems) || seq !== state.problemSeq) return;
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

  // loadClusterProblems reads, with several clusters, why each cannot be
  // read: the newest open failure its watcher announced. What a live event
  // said of a cluster since seq is newer than the answer, and stays.
  async function loadClusterProblems(seq) {
    let data;
    try {
      data = await api('GET', '/api/memory/events/unresolved?type=system&limit=200');
    } catch (_) {
      return; // the live feed brings the next change
    }
    const c = state.clusters;
    if (!state.session || c !== state.clusters) return;
    const found = new Map();
    for (const ev of data.events || []) { // newest first
      const d = details(ev);
      const key = problemKey(ev);
      if (d.dependency !== 'pve_api' || d.state !== 'failing' || found.has(key)) continue;
      found.set(key, { error: d.error, fix: d.fix, partial: ev.severity !== 'critical' });
    }
    const newer = (key) => (c.heard.get(key) || 0) > seq;
    const next = new Map([...c.problems].filter(([key]) => newer(key)));
    for (const [key, p] of found) if (!newer(key)) next.set(key, p);
    c.problems = next;
    renderProblems();
  }

  // renderUpdated says when the overview was last filled, or why it is empty.
  function renderUpdated() {
    const out = $('cluster-updated');
    const c = state.clusters;
    const shown = shownCluster();
    const v = c.views.get(shown);
    const updated = v ? v.updated : null;
    // With one cluster, or before the second is known, any problem is this one's.
    const p = c.problems.get(shown) || (several() ? null : problemList()[0]) || null;
    if (updated) {
      out.textContent = `updated ${clockTime(updated)}${p ? ' · stale: Jarvis cannot read the cluster' : ''}`;
    } else if (p) {
      out.textContent = 'no snapshot yet: Jarvis cannot read the Proxmox cluster (why is in the red banner)';
    } else {
      out.textContent = c.watched && shown && !c.watched.has(shown)
        ? `Jarvis does not watch cluster ${shown}: no snapshots of it` : 'waiting for the first snapshot…';
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
    // A link to an approval (from a notification) survives the login: the
    // hash is kept, and the page says where it goes next.
    const r = parseRoute();
    const next = $('login-next');
    next.textContent = r.view === 'approval' ? `After you log in: approval ${r.id}.` : '';
    next.hidden = r.view !== 'approval';
    setConn('offline');
    $('login-password').focus();
  }

  function showConsole() {
    $('login-view').hidden = true;
    $('console-view').hidden = false;
    $('session-controls').hidden = false;
    route();
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
    loadDemo();
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
    state.clusters = newClusters();
    clustersChanged();
    state.nodeEls.clear();
    $('nodes').replaceChildren();
    $('guests').replaceChildren();
    $('storage').replaceChildren();
    updateFeedEmpty();
    clearPages();
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
      // A page (an approval link, say) moved the focus to its own heading.
      if (state.view === 'overview') $('main').focus();
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
    // Any event may be the first to name a cluster: one that cannot be read
    // has no snapshots, only its watcher's system event.
    learnCluster(eventCluster(ev));
    switch (ev.type) {
      case 'cluster':
        // A live snapshot naming no cluster: Jarvis serves one (again).
        if (live && !eventCluster(ev)) forgetClusters();
        applyCluster(ev);
        return; // snapshots feed the overview, not the activity list
      case 'approval':
        if (live) {
          loadApprovals();
          refreshHistorySoon();
          refreshLinkedApproval(details(ev).approval_id);
        }
        break;
      case 'rule':
        if (live) refreshRulesSoon();
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

  // The newest snapshot of each kind fills the overview before the poller's
  // next round. With several clusters, each cluster's are read on their own
  // (loadSnapshotsOf) once the console knows it.
  async function loadClusterSnapshots() {
    try {
      const data = await api('GET', '/api/memory/events?type=cluster&limit=6');
      for (const ev of (data.events || []).slice().reverse()) applyCluster(ev);
    } catch (_) { /* the live feed brings the next snapshot */ }
  }

  async function loadSnapshotsOf(cluster) {
    try {
      const data = await api('GET', `/api/memory/events?type=cluster&cluster=${encodeURIComponent(cluster)}&limit=6`);
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
    const cluster = eventCluster(ev);
    if (cluster) {
      li.dataset.cluster = cluster;
      meta.append(clusterTag(cluster, 'feed-cluster'), ' ');
    }
    if (tier) {
      const b = el('span', `badge tier tier-${tier}`, tier);
      meta.append(b, ' ');
    }
    if (ev.type === 'tool') {
      if (d.principal) parts.push(d.principal);
      // Who let a RED call run: a standing approval, or a person.
      if (d.rule) {
        li.dataset.rule = d.rule;
        const b = el('span', 'badge badge-rule', `by rule ${d.rule}`);
        b.dataset.testid = 'feed-rule';
        meta.append(b, ' ');
      } else if (d.decision === 'approved' && d.phase !== 'refused') {
        parts.push('approved by a person');
      }
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
    } else if (ev.type === 'rule') {
      if (d.phase) {
        li.dataset.phase = d.phase;
        meta.append(el('span', `badge rule-phase phase-${d.phase}`, d.phase), ' ');
      }
      if (d.principal) parts.push(`for ${d.principal}`);
      if (d.phase === 'used') {
        if (d.outcome) parts.push(d.outcome);
        if (d.target) parts.push(`${d.uses_left} left this hour for ${d.target}`);
      } else if (d.target) {
        parts.push(d.target);
      }
      if (d.actor && ['created', 'updated', 'revoked'].includes(d.phase)) parts.push(`by ${d.actor}`);
      if (d.reason) parts.push(d.reason);
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
    return { kinds, minSeverity: $('filter-severity').value, node: $('filter-node').value, cluster: $('filter-cluster').value };
  }

  function applyFilterTo(ev, li, f = filters()) {
    let show = f.kinds.has(ev.type);
    if (show && f.minSeverity) show = (SEVERITY_RANK[ev.severity] || 0) >= SEVERITY_RANK[f.minSeverity];
    if (show && f.node) show = ev.node === f.node;
    // What names no cluster (the switches, Jarvis itself) is every cluster's.
    if (show && f.cluster && eventCluster(ev)) show = eventCluster(ev) === f.cluster;
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
      learnCluster(a.cluster);
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
    markLinkedApproval();
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
    if (a.cluster) {
      li.dataset.cluster = a.cluster;
      q(li, '.approval-tool').after(clusterTag(a.cluster, 'approval-cluster'));
    }
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
      const where = a.cluster && several() ? ` on cluster ${a.cluster}` : '';
      b.setAttribute('aria-label', `${b.dataset.action === 'approve' ? 'Approve' : 'Deny'} ${a.tool}${where}: ${a.plan}`);
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

  // ---------- several clusters ----------

  // With JARVIS_CLUSTERS Jarvis serves several clusters, and its snapshots,
  // alerts, tool calls, approvals and audit rows name theirs. The console
  // learns the clusters from /api/health's `clusters` when it lists them,
  // else from the snapshots and approvals it sees. The overview then shows
  // one cluster at a time (the picker), and rows carry a small tag naming
  // theirs (shown only with several: app.css). With one cluster nothing
  // names one, and none of this shows.

  const CLUSTER_NAME = /^[a-z][a-z0-9-]{0,31}$/;

  function newClusters() {
    return {
      names: [],            // the clusters served: as the server listed them, else by name
      fromServer: false,    // names, def and watched came from /api/health
      def: '',              // the default cluster, when the server said which
      watched: null,        // a Set of the clusters watched, when the server said
      chosen: '',           // the cluster the operator picked for the overview
      views: new Map(),     // cluster ('' : none named) → its newest snapshots (clusterView)
      problems: new Map(),  // cluster ('' : none named) → {error, fix, partial} while it cannot be read
      heard: new Map(),     // cluster → state.problemSeq when a live event last said how it is
      fetched: new Set(),   // the clusters whose own snapshots were read
      problemsRead: false,  // each cluster's open failures were read
    };
  }

  function several() {
    return state.clusters.names.length > 1;
  }

  // defaultCluster is the server's default, or, until it says which, the
  // first name.
  function defaultCluster() {
    const c = state.clusters;
    return c.def || c.names[0] || '';
  }

  // shownCluster is the cluster the overview shows: '' with one cluster, and
  // the one known while the second is not yet.
  function shownCluster() {
    const c = state.clusters;
    if (several()) return c.names.includes(c.chosen) ? c.chosen : defaultCluster();
    return c.fromServer ? '' : c.names[0] || '';
  }

  function eventCluster(ev) {
    return ev && typeof ev.cluster === 'string' ? ev.cluster : '';
  }

  // clusterView is a cluster's newest snapshot of each kind, with the
  // sequence (event id) of each, so an older one never replaces a newer.
  function clusterView(key) {
    let v = state.clusters.views.get(key);
    if (!v) {
      v = { seq: { nodes: 0, guests: 0, storage: 0 }, nodes: [], guests: [], storage: [], updated: null, guestInfo: new Map() };
      state.clusters.views.set(key, v);
    }
    return v;
  }

  // learnCluster adds a cluster an event or an approval names, unless the
  // server listed the clusters itself.
  function learnCluster(name) {
    const c = state.clusters;
    if (!name || c.fromServer || c.names.includes(name) || !CLUSTER_NAME.test(name)) return;
    c.names = [...c.names, name].sort();
    clustersChanged();
  }

  // forgetClusters drops the clusters learnt from events (those of an
  // earlier setup, say) when the server shows it serves one.
  function forgetClusters() {
    const c = state.clusters;
    if (c.fromServer || !c.names.length) return;
    c.names = [];
    clustersChanged();
  }

  // learnServerClusters takes /api/health's clusters: names, or objects
  // {name, default, watched}, the default first.
  function learnServerClusters(list) {
    const items = list.map((x) => (typeof x === 'string' ? { name: x } : x || {}))
      .filter((x) => typeof x.name === 'string' && CLUSTER_NAME.test(x.name));
    const names = items.map((x) => x.name);
    const def = (items.find((x) => x.default === true) || items[0] || {}).name || '';
    const watched = items.some((x) => typeof x.watched === 'boolean')
      ? new Set(items.filter((x) => x.watched !== false).map((x) => x.name)) : null;
    const c = state.clusters;
    const key = (n, d, w) => JSON.stringify([n, d, w ? [...w] : null]);
    if (c.fromServer && key(names, def, watched) === key(c.names, c.def, c.watched)) return;
    Object.assign(c, { names, def, watched, fromServer: true });
    clustersChanged();
  }

  // clustersChanged shows what the clusters known change: the picker, the
  // filters, the tags and the overview. With several, each cluster's own
  // snapshots and open failures are read once.
  function clustersChanged() {
    const c = state.clusters;
    const many = several();
    document.body.dataset.clusters = many ? 'several' : 'one';
    if (many && state.session) {
      for (const name of c.names) {
        if (c.fetched.has(name)) continue;
        c.fetched.add(name);
        loadSnapshotsOf(name);
      }
      if (!c.problemsRead) {
        c.problemsRead = true;
        loadClusterProblems(state.problemSeq);
      }
    }
    renderOverview();
    renderProblems(); // the picker and the filters too
  }

  // renderOverview draws the shown cluster's newest snapshots.
  function renderOverview() {
    const v = state.clusters.views.get(shownCluster());
    renderNodes(v ? v.nodes : []);
    renderGuests(v ? v.guests : []);
    renderStorage(v ? v.storage : []);
    renderUpdated();
    const section = $('cluster-section');
    if (several()) section.dataset.cluster = shownCluster();
    else delete section.dataset.cluster;
  }

  // renderClusterChoice fills the overview's picker and the cluster filters
  // of the feed, the approvals history and the audit log; all are hidden
  // with one cluster.
  function renderClusterChoice() {
    const c = state.clusters;
    const many = several();
    $('cluster-pick-field').hidden = !many;
    fillSelect($('cluster-pick'), c.names.map((n) => [n, pickLabel(n)]), shownCluster());
    for (const [id, any] of [['filter-cluster', 'All clusters'], ['history-cluster', 'Every cluster'], ['audit-cluster', 'any']]) {
      $(`${id}-field`).hidden = !many;
      fillSelect($(id), [['', any], ...c.names.map((n) => [n, n])], $(id).value);
    }
  }

  function pickLabel(name) {
    const c = state.clusters;
    let label = name;
    if (c.fromServer && name === c.def) label += ' (default)';
    if (c.watched && !c.watched.has(name)) label += ' · not watched';
    if (c.problems.has(name)) label += ' · cannot be read';
    return label;
  }

  // fillSelect gives a select these [value, label] options, leaving them be
  // when they are the same (an open list must not close under the pointer),
  // and chooses value, or the first when it is gone.
  function fillSelect(sel, pairs, value) {
    const same = sel.options.length === pairs.length &&
      pairs.every(([v, l], i) => sel.options[i].value === v && sel.options[i].textContent === l);
    if (!same) sel.replaceChildren(...pairs.map(([v, l]) => option(v, l)));
    sel.value = pairs.some(([v]) => v === value) ? value : (pairs.length ? pairs[0][0] : '');
  }

  function onPickCluster() {
    state.clusters.chosen = $('cluster-pick').value;
    renderOverview();
    renderClusterChoice();
  }

  // clusterTag is the small tag naming a row's cluster.
  function clusterTag(name, testid) {
    const t = el('span', 'badge cluster-tag', name);
    t.dataset.testid = testid;
    t.title = `cluster ${name}`;
    return t;
  }

  function guestHref(cluster, vmid) {
    const id = encodeURIComponent(vmid);
    return cluster ? `#/guest/${encodeURIComponent(cluster)}/${id}` : `#/guest/${id}`;
  }

  // guestView is the snapshots of the open guest's cluster; a guest link
  // that names none is the default cluster's.
  function guestView(g) {
    const c = state.clusters;
    return c.views.get(g.cluster || (several() && c.fromServer ? c.def : ''));
  }

  // answersFor reports whether a guest read answered for cluster. A Jarvis
  // whose guest view takes no cluster reads the default one and names none:
  // then the answer is the cluster's when that is the default, or when the
  // guest's node is one only this cluster has (node names may repeat across
  // clusters; then it cannot tell, and says no).
  function answersFor(d, cluster) {
    if (!cluster) return true;
    if (d && typeof d.cluster === 'string' && d.cluster) return d.cluster === cluster;
    const c = state.clusters;
    if (c.fromServer) return cluster === c.def;
    const node = d && typeof d.node === 'string' ? d.node : '';
    return node !== '' && c.names.includes(cluster) && c.names.every((name) => {
      const v = c.views.get(name);
      const has = !!v && v.nodes.some((n) => n.node === node);
      return v && v.seq.nodes > 0 && has === (name === cluster);
    });
  }

  // The demo's crash button acts on the default cluster.
  function crashReaches(g) {
    return !g.cluster || (state.clusters.fromServer && g.cluster === state.clusters.def);
  }

  // ---------- cluster overview ----------

  // applyCluster keeps a snapshot as its cluster's newest of its kind (each
  // cluster's own sequence: two clusters' snapshots never replace each
  // other), and draws it when that cluster is the one shown.
  function applyCluster(ev) {
    const d = details(ev);
    const what = d.what;
    const key = eventCluster(ev);
    const v = clusterView(key);
    if (!(what in v.seq) || ev.id < v.seq[what]) return;
    v.seq[what] = ev.id;
    v[what] = Array.isArray(d[what]) ? d[what] : [];
    if (what === 'guests') v.guestInfo = new Map(v.guests.map((g) => [String(g.vmid), g]));
    const when = new Date(ev.time);
    if (!Number.isNaN(when.getTime())) v.updated = when;
    learnCluster(key);
    if (key !== shownCluster()) {
      if (what === 'guests' && state.view === 'guest' && state.guest && guestView(state.guest) === v) renderGuestHeader();
      return;
    }
    if (what === 'nodes') renderNodes(v.nodes);
    if (what === 'guests') renderGuests(v.guests);
    if (what === 'storage') renderStorage(v.storage);
    if (v.updated) renderUpdated();
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
    // A re-render must not steal the keyboard focus from a guest's link.
    const focused = document.activeElement && document.activeElement.classList.contains('guest-link')
      ? document.activeElement.dataset.vmid : '';
    // Each row names its cluster when the snapshot does, so its detail reads
    // that cluster.
    const cluster = shownCluster();
    for (const g of guests) {
      const tr = el('tr', 'guest-row');
      tr.dataset.testid = 'guest';
      tr.dataset.vmid = String(g.vmid);
      if (cluster) tr.dataset.cluster = cluster;
      tr.dataset.status = g.status || 'unknown';
      if (g.status === 'running') running++;
      tr.append(el('td', 'vmid', g.vmid));
      const name = el('td', 'name');
      const link = el('a', 'guest-link', g.name || '—');
      link.href = guestHref(cluster, g.vmid);
      link.dataset.vmid = String(g.vmid);
      link.dataset.testid = 'guest-link';
      link.setAttribute('aria-label', `${g.kind === 'lxc' ? 'Container' : 'VM'} ${g.vmid} ${g.name || ''}${several() && cluster ? ` on cluster ${cluster}` : ''}: details`);
      name.append(link, el('span', 'guest-kind', g.kind === 'lxc' ? 'CT' : 'VM'));
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
    if (focused) {
      const again = $('guests').querySelector(`.guest-link[data-vmid="${CSS.escape(focused)}"]`);
      if (again) again.focus();
    }
    if (state.view === 'guest' && state.guest) renderGuestHeader();
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

  // ---------- views ----------

  // The location hash names the view: #/ (overview), #/guest/101 (with
  // several clusters #/guest/lab/1101), #/approvals, #/audit. Links and the
  // browser's back button move between them.
  function parseRoute() {
    const h = location.hash.replace(/^#\/?/, '');
    let m = /^guest\/(\d{3,9})$/.exec(h);
    if (m) return { view: 'guest', vmid: m[1], cluster: '' };
    m = /^guest\/([a-z][a-z0-9-]{0,31})\/(\d{3,9})$/.exec(h);
    if (m) return { view: 'guest', vmid: m[2], cluster: m[1] };
    if (h === 'approvals') return { view: 'history' };
    if (h === 'audit') return { view: 'audit' };
    if (h === 'rules') return { view: 'rules' };
    // #approval/apr_… is where notifications point (#/approval/… works too).
    m = /^approval\/(.+)$/.exec(h);
    if (m) {
      let id = m[1];
      try { id = decodeURIComponent(id); } catch (_) { /* the server says what is wrong with it */ }
      return { view: 'approval', id };
    }
    m = /^guest\/(.*)$/.exec(h);
    if (m) return { view: 'guest', vmid: m[1], cluster: '' }; // the server says what is wrong with it
    return { view: 'overview' };
  }

  function route() {
    if (!state.session && $('console-view').hidden) return;
    const r = parseRoute();
    const before = state.view;
    state.view = r.view;
    const page = r.view !== 'overview';
    $('console-view').dataset.view = page ? 'page' : 'overview';
    $('cluster-section').hidden = page;
    $('feed-section').hidden = page;
    $('guest-view').hidden = r.view !== 'guest';
    $('history-view').hidden = r.view !== 'history';
    $('audit-view').hidden = r.view !== 'audit';
    $('rules-view').hidden = r.view !== 'rules';
    $('approval-view').hidden = r.view !== 'approval';
    for (const a of document.querySelectorAll('#views .view-link')) {
      if (a.dataset.view === r.view) a.setAttribute('aria-current', 'page');
      else a.removeAttribute('aria-current');
    }
    if (r.view !== 'guest') closeGuest();
    if (r.view !== 'approval') closeLinkedApproval();
    if (r.view === 'guest') openGuest(r.vmid, r.cluster);
    if (r.view === 'history' && before !== 'history') {
      loadHistory(false);
      $('history-title').focus();
    }
    if (r.view === 'audit' && before !== 'audit') {
      loadToolNames();
      loadAudit(false);
      $('audit-title').focus();
    }
    if (r.view === 'rules' && before !== 'rules') {
      loadRuleOptions();
      loadRules();
      $('rules-title').focus();
    }
    if (r.view === 'approval') openLinkedApproval(r.id);
  }

  // clearPages forgets what the pages showed: a next login starts empty.
  function clearPages() {
    closeGuest();
    state.history = { rows: [], next: '', loading: false, seq: state.history.seq + 1 };
    state.audit = { rows: [], next: 0, loading: false, seq: state.audit.seq + 1, query: '' };
    clearTimeout(state.historyTimer);
    $('history-rows').replaceChildren();
    $('history-more').hidden = true;
    $('history-count').textContent = '';
    $('history-error').textContent = '';
    $('audit-rows').replaceChildren();
    $('audit-more').hidden = true;
    $('audit-count').textContent = '';
    $('audit-error').textContent = '';
    clearTimeout(state.rules.timer);
    state.rules = { list: [], seq: state.rules.seq + 1, options: null, editing: null, timer: 0 };
    $('rules-rows').replaceChildren();
    $('rules-error').textContent = '';
    resetRuleForm();
    closeLinkedApproval();
    state.demo = false;
    $('guest-demo').hidden = true;
    state.view = 'overview';
  }

  function fmtDateTime(iso) {
    const d = new Date(iso);
    if (!iso || Number.isNaN(d.getTime())) return '';
    return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${clockTime(d)}`;
  }

  function timeCell(iso) {
    const td = el('td', 'when');
    const text = fmtDateTime(iso);
    if (!text) {
      td.textContent = '—';
      return td;
    }
    const t = el('time', '', text);
    t.dateTime = new Date(iso).toISOString();
    t.title = new Date(iso).toLocaleString();
    td.append(t);
    return td;
  }

  function badge(text, cls) {
    return el('span', `badge ${cls || ''}`.trim(), text);
  }

  function yesNo(v) {
    return v ? 'yes' : 'no';
  }

  // dl builds a definition list of [label, value] pairs; a value may be a node.
  function dl(pairs) {
    const list = el('dl', 'facts');
    for (const [k, v] of pairs) {
      if (v === undefined || v === null || v === '') continue;
      list.append(el('dt', '', k));
      const dd = el('dd');
      if (v instanceof Node) dd.append(v); else dd.textContent = String(v);
      list.append(dd);
    }
    return list;
  }

  // table builds a small read-only table: head is the column names, rows are
  // arrays of cell values (text or nodes).
  function table(head, rows, cls) {
    const wrap = el('div', 'table-scroll');
    const t = el('table', `data-table ${cls || ''}`.trim());
    const tr = el('tr');
    for (const h of head) {
      const th = el('th', '', h);
      th.scope = 'col';
      tr.append(th);
    }
    const thead = el('thead');
    thead.append(tr);
    const tbody = el('tbody');
    for (const r of rows) {
      const row = el('tr');
      for (const v of r) {
        const td = el('td');
        if (v instanceof Node) td.append(v); else td.textContent = v === undefined || v === null || v === '' ? '—' : String(v);
        row.append(td);
      }
      tbody.append(row);
    }
    t.append(thead, tbody);
    wrap.append(t);
    return wrap;
  }

  // ---------- guest detail ----------

  function closeGuest() {
    state.guest = null;
    state.guestSeq++;
    state.metricsSeq++;
    destroyCharts();
  }

  // openGuest shows guest vmid of cluster ('' : the default cluster).
  function openGuest(vmid, cluster) {
    if (state.guest && state.guest.vmid === vmid && state.guest.cluster === cluster) return;
    closeGuest();
    const seq = state.guestSeq;
    // ready settles once the detail said whether it is this cluster's guest;
    // the charts wait for it (their answer cannot tell).
    let settle;
    const ready = new Promise((resolve) => { settle = resolve; });
    state.guest = { vmid, cluster, seq, detail: null, ready, settle };
    for (const part of ['config', 'agent', 'snapshots', 'backups']) {
      $(`guest-${part}`).replaceChildren();
      $(`guest-${part}-error`).textContent = '';
    }
    $('guest-metrics-error').textContent = '';
    $('guest-metrics-summary').textContent = '';
    $('guest-protection').hidden = true;
    $('guest-demo').hidden = !state.demo || !crashReaches(state.guest);
    $('guest-crash').disabled = false;
    $('guest-crash-result').textContent = '';
    $('guest-badges').replaceChildren();
    $('guest-status').textContent = `Reading guest ${vmid} from the cluster…`;
    $('guest-view').dataset.vmid = vmid;
    if (cluster) $('guest-view').dataset.cluster = cluster;
    else delete $('guest-view').dataset.cluster;
    $('guest-view').dataset.loaded = 'false';
    renderGuestHeader();
    $('guest-title').focus();
    loadGuest(state.guest);
    loadMetrics(vmid);
  }

  // clusterQuery is the cluster parameter of a guest read ('' for the default).
  function clusterQuery(cluster, sep) {
    return cluster ? `${sep}cluster=${encodeURIComponent(cluster)}` : '';
  }

  async function loadGuest(g) {
    const { vmid, cluster, seq } = g;
    let d;
    try {
      d = await api('GET', `/api/guests/${encodeURIComponent(vmid)}${clusterQuery(cluster, '?')}`);
    } catch (err) {
      g.settle(false);
      if (seq !== state.guestSeq) return;
      $('guest-status').textContent = err.status === 400 ? err.message : `Could not read guest ${vmid}: ${err.message}`;
      $('guest-view').dataset.loaded = 'error';
      return;
    }
    const ours = answersFor(d, cluster);
    g.settle(ours);
    if (seq !== state.guestSeq || !state.guest) return;
    if (!ours) {
      // Another cluster's guest of the same number must never pass for this one.
      $('guest-status').textContent = `Not shown: this Jarvis's guest view reads its default cluster only, and cannot tell that its answer for guest ${vmid} is cluster ${cluster}'s. The overview lists the guest; the audit log has its calls.`;
      $('guest-view').dataset.loaded = 'other-cluster';
      return;
    }
    state.guest.detail = d;
    $('guest-status').textContent = '';
    renderGuestHeader();
    renderSection('config', d.config, renderConfig);
    renderSection('agent', d.agent, renderAgent);
    renderSection('snapshots', d.snapshots, renderSnapshots);
    renderSection('backups', d.backups, renderBackups);
    $('guest-view').dataset.loaded = 'true';
  }

  // renderSection shows one tool's answer, or its error sentence: a failing
  // tool costs its own card only.
  function renderSection(part, sec, render) {
    const box = $(`guest-${part}`);
    const error = $(`guest-${part}-error`);
    box.replaceChildren();
    error.textContent = '';
    if (!sec || sec.error || !sec.data) {
      error.textContent = (sec && sec.error) || 'No answer.';
      box.dataset.state = 'error';
      return;
    }
    try {
      render(box, sec.data);
      box.dataset.state = 'ok';
    } catch (err) {
      box.replaceChildren();
      error.textContent = `The answer of ${sec.tool} could not be shown: ${err.message}`;
      box.dataset.state = 'error';
    }
  }

  function renderGuestHeader() {
    const g = state.guest;
    if (!g) return;
    const d = g.detail || {};
    const cfg = (d.config && d.config.data) || {};
    const view = guestView(g);
    const info = (view && view.guestInfo.get(String(g.vmid))) || {};
    const kind = cfg.kind || d.kind || info.kind;
    const name = cfg.name || info.name || '';
    $('guest-title').textContent = `${kind === 'lxc' ? 'Container' : kind ? 'VM' : 'Guest'} ${g.vmid}${name ? ` · ${name}` : ''}`;
    const badges = [];
    if (g.cluster) {
      const b = badge(`cluster ${g.cluster}`, 'badge-node cluster-tag');
      b.dataset.testid = 'guest-cluster';
      badges.push(b);
    }
    const node = cfg.node || d.node || info.node;
    if (node) badges.push(badge(`node ${node}`, 'badge-node'));
    if (info.status) badges.push(badge(info.status, `badge-state state-${info.status}`));
    if (cfg.template) badges.push(badge('template', 'badge-template'));
    if (cfg.lock) badges.push(badge(`locked: ${cfg.lock}`, 'badge-warn'));
    if (d.created_by_jarvis) {
      const b = badge('created by Jarvis', 'badge-jarvis');
      b.dataset.testid = 'badge-created';
      badges.push(b);
    }
    const prot = d.protection || {};
    if (prot.protected) {
      const b = badge('protected', 'badge-protected');
      b.dataset.testid = 'badge-protected';
      badges.push(b);
    }
    $('guest-badges').replaceChildren(...badges);
    // Why it is protected, in words: no change to it is allowed, reads are.
    const note = $('guest-protection');
    note.textContent = prot.protected ? `${(prot.reasons || []).join(' ')} Reads still work.` : '';
    note.hidden = !prot.protected;
  }

  function mib(n) {
    const v = Number(n);
    return Number.isFinite(v) ? bytes(v * 1024 * 1024) : '';
  }

  function chips(list, cls) {
    const span = el('span', 'chips');
    for (const t of list) span.append(el('span', `tag ${cls || ''}`.trim(), t));
    return span;
  }

  function renderConfig(box, c) {
    const kind = c.kind === 'lxc' ? 'container (LXC)' : c.kind === 'qemu' ? 'virtual machine (QEMU)' : c.kind;
    let cores = c.cores !== undefined ? String(c.cores) : '';
    if (cores && c.sockets && c.sockets > 1) cores = `${c.cores} × ${c.sockets} sockets`;
    let balloon = '';
    if (c.balloon_mib !== undefined && c.balloon_mib !== null) balloon = Number(c.balloon_mib) === 0 ? 'off' : `${mib(c.balloon_mib)} minimum`;
    const tagList = Array.isArray(c.tags) ? c.tags : typeof c.tags === 'string' ? c.tags.split(/[;,\s]+/) : [];
    const tags = tagList.filter(Boolean).length ? chips(tagList.filter(Boolean)) : '';
    box.append(dl([
      ['Name', c.name],
      ['Kind', kind],
      ['Node', c.node],
      ['OS type', c.ostype],
      ['Cores', cores],
      ['Memory', c.memory_mib !== undefined ? mib(c.memory_mib) : ''],
      ['Balloon', balloon],
      ['Swap', c.swap_mib !== undefined && c.swap_mib !== null ? mib(c.swap_mib) : ''],
      ['Start at boot', c.onboot !== undefined ? yesNo(c.onboot) : ''],
      ['Template', c.template !== undefined ? yesNo(c.template) : ''],
      ['Lock', c.lock],
      ['Tags', tags],
    ]));
    const disks = Array.isArray(c.disks) ? c.disks : [];
    box.append(el('h4', 'minor', `Disks (${disks.length})`));
    if (disks.length) {
      const t = table(['Slot', 'Storage', 'Size', 'Volume'],
        disks.map((k) => [k.slot, k.storage || 'host path', k.size_bytes ? bytes(k.size_bytes) : k.size, k.volume]), 'disks');
      t.dataset.testid = 'guest-disks';
      box.append(t);
    } else box.append(el('p', 'empty small', 'No disks.'));
    const nics = Array.isArray(c.nics) ? c.nics : [];
    box.append(el('h4', 'minor', `Network (${nics.length})`));
    if (nics.length) {
      const t = table(['Slot', 'Model', 'Bridge', 'MAC', 'IP', 'Firewall'],
        nics.map((n) => [n.slot, n.model, n.bridge, n.mac, n.ip, n.firewall === undefined ? '' : yesNo(n.firewall)]), 'nics');
      t.dataset.testid = 'guest-nics';
      box.append(t);
    } else box.append(el('p', 'empty small', 'No network devices.'));
    if (c.cloud_init) {
      const ci = c.cloud_init;
      box.append(el('h4', 'minor', 'Cloud-init'));
      const ips = Array.isArray(ci.ip_config) ? ci.ip_config : [];
      // Only whether secrets are set: their values never reach the console.
      box.append(dl([
        ['User', ci.user],
        ['IP config', ips.length ? ips.join(', ') : ''],
        ['SSH keys', ci.ssh_keys_set ? 'set' : 'not set'],
        ['Password', ci.password_set ? 'set' : 'not set'],
      ]));
    }
    box.append(el('h4', 'minor', 'Notes'));
    if (c.notes && String(c.notes).trim()) box.append(el('pre', 'notes', c.notes));
    else box.append(el('p', 'empty small', 'No notes.'));
  }

  function renderAgent(box, a) {
    if (!a.agent_running) {
      const p = el('p', 'agent-off');
      p.dataset.testid = 'agent-not-running';
      p.append(el('strong', '', 'Agent not running.'));
      if (a.message) p.append(' ', a.message);
      box.append(p);
      return;
    }
    box.append(dl([['Hostname', a.hostname], ['OS', a.os]]));
    const ifaces = (Array.isArray(a.interfaces) ? a.interfaces : []).filter((i) => i.name !== 'lo');
    if (!ifaces.length) {
      box.append(el('p', 'empty small', 'The agent reports no network interfaces.'));
      return;
    }
    box.append(table(['Interface', 'MAC', 'Addresses'],
      ifaces.map((i) => [i.name, i.mac, Array.isArray(i.ips) && i.ips.length ? i.ips.join('\n') : '']), 'ips'));
  }

  function renderSnapshots(box, s) {
    const list = Array.isArray(s.snapshots) ? s.snapshots.slice() : [];
    if (!list.length) {
      box.append(el('p', 'empty small', 'No snapshots.'));
      return;
    }
    list.sort((a, b) => String(b.created || '').localeCompare(String(a.created || '')));
    const rows = list.map((x) => {
      const name = el('span', 'snap-name', x.name);
      const cell = el('span');
      cell.append(name);
      if (x.name === s.current_parent) cell.append(' ', badge('current', 'badge-current'));
      return [cell, fmtDateTime(x.created), x.description, yesNo(x.with_ram)];
    });
    const t = table(['Name', 'Taken', 'Description', 'RAM'], rows, 'snapshots');
    t.dataset.testid = 'guest-snapshot-list';
    box.append(t);
  }

  function renderBackups(box, b) {
    const list = Array.isArray(b.backups) ? b.backups : [];
    if (!list.length) {
      box.append(el('p', 'empty small', 'No backups of this guest.'));
      return;
    }
    box.append(table(['Created', 'Size', 'Storage', 'Format', 'Protected', 'Notes'],
      list.map((x) => [fmtDateTime(x.created), x.size || bytes(x.size_bytes), x.storage, x.format, yesNo(x.protected), x.notes]), 'backups'));
    if (b.left_out) box.append(el('p', 'muted small', `${b.left_out} older backups are not shown.`));
  }

  // ---------- charts ----------

  function timeframe() {
    const r = document.querySelector('#guest-timeframe input[name="timeframe"]:checked');
    return r ? r.value : 'hour';
  }

  async function loadMetrics(vmid) {
    const seq = ++state.metricsSeq;
    const tf = timeframe();
    const g = state.guest;
    const cluster = g ? g.cluster : '';
    $('guest-metrics-error').textContent = '';
    $('guest-charts').setAttribute('aria-busy', 'true');
    let d;
    try {
      d = await api('GET', `/api/guests/${encodeURIComponent(vmid)}/metrics?timeframe=${encodeURIComponent(tf)}${clusterQuery(cluster, '&')}`);
    } catch (err) {
      if (seq !== state.metricsSeq) return;
      destroyCharts();
      $('guest-metrics-error').textContent = err.message;
      $('guest-charts').removeAttribute('aria-busy');
      return;
    }
    if (seq !== state.metricsSeq) return;
    if (cluster && !(d && d.cluster ? d.cluster === cluster : await g.ready)) {
      if (seq !== state.metricsSeq) return;
      $('guest-charts').removeAttribute('aria-busy');
      destroyCharts();
      $('guest-metrics-summary').textContent = '';
      $('guest-metrics-error').textContent = `No charts: this Jarvis's guest view reads its default cluster only, and cannot tell this is cluster ${cluster}'s guest.`;
      return;
    }
    if (seq !== state.metricsSeq) return;
    $('guest-charts').removeAttribute('aria-busy');
    const sec = d.metrics || {};
    if (sec.error || !sec.data) {
      destroyCharts();
      $('guest-metrics-summary').textContent = '';
      $('guest-metrics-error').textContent = sec.error || 'No answer.';
      return;
    }
    renderCharts(sec.data, tf);
  }

  function destroyCharts() {
    for (const c of state.charts) c.plot.destroy();
    state.charts = [];
    if (state.chartObserver) {
      state.chartObserver.disconnect();
      state.chartObserver = null;
    }
    $('guest-charts').replaceChildren();
  }

  // Seconds since the epoch from a point's time (RFC 3339 text, or a number in
  // seconds or milliseconds).
  function pointTime(t) {
    if (typeof t === 'number') return t > 1e12 ? t / 1000 : t;
    const ms = Date.parse(t);
    return Number.isNaN(ms) ? null : ms / 1000;
  }

  function num(v) {
    const n = Number(v);
    return v === null || v === undefined || !Number.isFinite(n) ? null : n;
  }

  function rate(n) {
    return `${bytes(n)}/s`;
  }

  // axis is the look of a chart axis in the console's dark theme (a new object
  // each time: the chart keeps what it is given).
  function axis(extra) {
    return { stroke: '#8e9bb3', grid: { stroke: '#1c2537', width: 1 }, ticks: { stroke: '#263248', width: 1 }, font: '11px system-ui, sans-serif', ...extra };
  }

  // Tick steps for byte scales: 1, 2, 4 … 512 of B, KiB, MiB, GiB, TiB, so the
  // axis reads 2.0 GiB, 4.0 GiB rather than 4.7 GiB.
  const BINARY_INCRS = [];
  for (let e = 0; e <= 40; e += 10) {
    for (let m = 1; m < 1024; m *= 2) BINARY_INCRS.push(m * 2 ** e);
  }

  function renderCharts(m, tf) {
    destroyCharts();
    const pts = (Array.isArray(m.points) ? m.points : [])
      .map((p) => ({ ...p, t: pointTime(p.time) }))
      .filter((p) => p.t !== null)
      .sort((a, b) => a.t - b.t);
    const sum = m.summary || {};
    const parts = [];
    if (num(sum.cpu_avg_percent) !== null) parts.push(`CPU average ${num(sum.cpu_avg_percent).toFixed(1)}%`);
    if (num(sum.cpu_max_percent) !== null) parts.push(`peak ${num(sum.cpu_max_percent).toFixed(1)}%`);
    if (num(sum.mem_max_bytes) !== null) parts.push(`memory peak ${bytes(num(sum.mem_max_bytes))}`);
    const word = { hour: 'the last hour', day: 'the last day', week: 'the last week' }[tf] || tf;
    const head = word.charAt(0).toUpperCase() + word.slice(1);
    $('guest-metrics-summary').textContent = `${head}${m.cf ? ` (${m.cf.toLowerCase()})` : ''}: ${pts.length} points${parts.length ? ` · ${parts.join(' · ')}` : ''}`;
    if (!pts.length) {
      $('guest-metrics-error').textContent = 'Proxmox has no samples for this timeframe yet.';
      return;
    }
    if (typeof window.uPlot !== 'function') {
      $('guest-metrics-error').textContent = 'The chart library did not load; reload the page.';
      return;
    }
    const xs = pts.map((p) => p.t);
    const specs = [
      {
        key: 'cpu', title: 'CPU', unit: (v) => `${v.toFixed(0)}%`, range: [0, 100],
        series: [{ label: 'CPU', stroke: '#38bdf8', fill: 'rgba(56, 189, 248, 0.14)', values: pts.map((p) => num(p.cpu_percent)) }],
      },
      {
        key: 'mem', title: 'Memory', unit: bytes, binary: true,
        series: [
          { label: 'used', stroke: '#a78bfa', fill: 'rgba(167, 139, 250, 0.14)', values: pts.map((p) => num(p.mem_used_bytes)) },
          { label: 'total', stroke: '#64748b', dash: [4, 4], values: pts.map((p) => num(p.mem_total_bytes)) },
        ],
      },
      {
        key: 'net', title: 'Network', unit: rate, binary: true,
        series: [
          { label: 'in', stroke: '#22c55e', values: pts.map((p) => num(p.net_in_bps)) },
          { label: 'out', stroke: '#f59e0b', values: pts.map((p) => num(p.net_out_bps)) },
        ],
      },
    ];
    const box = $('guest-charts');
    for (const spec of specs) {
      const fig = el('figure', 'chart');
      fig.dataset.testid = `chart-${spec.key}`;
      fig.dataset.chart = spec.key;
      const cap = el('figcaption', 'chart-title', spec.title);
      const area = el('div', 'chart-area');
      // The canvas is a picture: say what it shows in words too.
      const last = spec.series.map((s) => {
        const v = s.values.filter((x) => x !== null);
        return v.length ? `${s.label} ${spec.unit(v[v.length - 1])}` : '';
      }).filter(Boolean).join(', ');
      area.setAttribute('role', 'img');
      area.setAttribute('aria-label', `${spec.title} over ${word}${last ? `; latest: ${last}` : ''}`);
      fig.append(cap, area);
      box.append(fig);
      const width = Math.max(240, area.clientWidth || box.clientWidth || 300);
      const plot = new window.uPlot({
        width,
        height: 150,
        cursor: { drag: { x: false, y: false } },
        legend: { show: true, live: true },
        scales: { x: { time: true }, y: spec.range ? { range: spec.range } : { range: (u, min, max) => [0, max > 0 ? max * 1.1 : 1] } },
        axes: [
          axis(),
          axis({ size: 72, ...(spec.binary ? { incrs: BINARY_INCRS } : {}), values: (u, vals) => vals.map((v) => (v === null ? '' : spec.unit(v))) }),
        ],
        series: [
          { value: (u, v) => (v === null ? '—' : fmtDateTime(v * 1000)) },
          ...spec.series.map((s) => ({
            label: s.label, stroke: s.stroke, fill: s.fill, dash: s.dash, width: 1.5, spanGaps: false,
            points: { show: false }, value: (u, v) => (v === null ? '—' : spec.unit(v)),
          })),
        ],
      }, [xs, ...spec.series.map((s) => s.values)], area);
      state.charts.push({ plot, area });
    }
    if (typeof ResizeObserver === 'function') {
      state.chartObserver = new ResizeObserver(() => {
        for (const c of state.charts) {
          const w = Math.max(240, c.area.clientWidth);
          if (Math.abs(w - c.plot.width) > 2) c.plot.setSize({ width: w, height: 150 });
        }
      });
      for (const c of state.charts) state.chartObserver.observe(c.area);
    }
  }

  // ---------- approvals history ----------

  function refreshHistorySoon() {
    if (state.view !== 'history') return;
    clearTimeout(state.historyTimer);
    state.historyTimer = setTimeout(() => loadHistory(false), 500);
  }

  async function loadHistory(older) {
    const h = state.history;
    if (older && (!h.next || h.loading)) return;
    const seq = ++h.seq;
    h.loading = true;
    const params = new URLSearchParams({ limit: '50' });
    const status = $('history-status').value;
    if (status) params.set('status', status);
    const cluster = $('history-cluster').value;
    if (cluster) params.set('cluster', cluster);
    if (older) params.set('before', h.next);
    $('history-error').textContent = '';
    $('history-more').disabled = true;
    try {
      const page = await api('GET', `/api/approvals/history?${params}`);
      if (seq !== state.history.seq) return;
      h.rows = older ? h.rows.concat(page.approvals || []) : (page.approvals || []);
      h.next = page.more ? page.next_before : '';
      renderHistory(older ? page.approvals || [] : h.rows, older);
    } catch (err) {
      if (seq === state.history.seq && err.status !== 401) $('history-error').textContent = err.message;
    } finally {
      if (seq === state.history.seq) {
        h.loading = false;
        $('history-more').disabled = false;
      }
    }
  }

  function renderHistory(list, append) {
    const rows = list.map((a) => {
      const tr = el('tr');
      tr.dataset.testid = 'history-row';
      tr.dataset.approvalId = a.id;
      tr.dataset.status = a.status;
      tr.append(timeCell(a.created_at));
      const tool = el('td');
      if (a.cluster) tool.append(clusterTag(a.cluster, 'row-cluster'), ' ');
      tool.append(el('code', '', a.tool));
      tr.append(tool);
      const plan = el('td', 'plan', a.plan);
      plan.title = a.id;
      tr.append(plan);
      tr.append(el('td', 'who', a.principal));
      const st = el('td');
      const word = { consumed: 'approved, used', approved: 'approved' }[a.status] || a.status;
      st.append(badge(word, `decision-${a.status}`));
      tr.append(st);
      tr.append(el('td', 'who', a.decided_by || (a.status === 'expired' ? 'nobody (expired)' : '—')));
      // When it was decided; an expired request was never decided: when it lapsed.
      tr.append(timeCell(a.decided_at || (a.status === 'expired' ? a.expires_at : '')));
      return tr;
    });
    if (append) $('history-rows').append(...rows); else $('history-rows').replaceChildren(...rows);
    const n = state.history.rows.length;
    $('history-empty').hidden = n > 0;
    $('history-more').hidden = !state.history.next;
    $('history-count').textContent = n ? `${n} shown${state.history.next ? ' · older ones exist' : ''}` : '';
  }

  // ---------- audit log ----------

  async function loadToolNames() {
    if (state.toolNamesLoaded) return;
    try {
      const data = await api('GET', '/api/tools');
      const names = (data.tools || []).map((t) => t.name).sort();
      $('audit-tool-names').replaceChildren(...names.map((n) => {
        const o = el('option');
        o.value = n;
        return o;
      }));
      state.toolNamesLoaded = true;
    } catch (_) { /* typing a name works without the suggestions */ }
  }

  // auditQuery reads the filter form into the search's parameters.
  function auditQuery() {
    const p = new URLSearchParams();
    const text = (id, key) => {
      const v = $(id).value.trim();
      if (v) p.set(key, v);
    };
    text('audit-tool', 'tool');
    text('audit-principal', 'principal');
    text('audit-tier', 'tier');
    text('audit-decision', 'decision');
    text('audit-outcome', 'outcome');
    text('audit-cluster', 'cluster');
    for (const [id, key] of [['audit-since', 'since'], ['audit-until', 'until']]) {
      const v = $(id).value;
      if (!v) continue;
      const d = new Date(v); // datetime-local is the operator's local time
      if (Number.isNaN(d.getTime())) {
        p.set(key, v); // the server names what is wrong with it
      } else {
        p.set(key, d.toISOString());
      }
    }
    return p;
  }

  async function loadAudit(older) {
    const a = state.audit;
    if (older && (!a.next || a.loading)) return;
    const seq = ++a.seq;
    a.loading = true;
    const p = older ? new URLSearchParams(a.query) : auditQuery();
    if (!older) a.query = p.toString();
    p.set('limit', '100');
    if (older) p.set('before_id', String(a.next));
    $('audit-error').textContent = '';
    $('audit-more').disabled = true;
    $('audit-view').setAttribute('aria-busy', 'true');
    try {
      const page = await api('GET', `/api/audit/search?${p}`);
      if (seq !== state.audit.seq) return;
      const calls = page.calls || [];
      a.rows = older ? a.rows.concat(calls) : calls;
      a.next = page.more ? page.next_before_id : 0;
      renderAudit(calls, older);
    } catch (err) {
      if (seq !== state.audit.seq) return;
      if (err.status !== 401) $('audit-error').textContent = err.message;
      if (!older) {
        a.rows = [];
        a.next = 0;
        renderAudit([], false);
      }
    } finally {
      if (seq === state.audit.seq) {
        a.loading = false;
        $('audit-more').disabled = false;
        $('audit-view').removeAttribute('aria-busy');
      }
    }
  }

  function renderAudit(calls, append) {
    const rows = calls.map((c) => {
      const tr = el('tr');
      tr.dataset.testid = 'audit-row';
      tr.dataset.id = String(c.id);
      tr.dataset.tool = c.tool;
      tr.dataset.outcome = c.outcome || '';
      tr.append(timeCell(c.time));
      tr.append(el('td', 'who', c.principal));
      const tool = el('td');
      if (c.cluster) tool.append(clusterTag(c.cluster, 'row-cluster'), ' ');
      tool.append(el('code', '', c.tool));
      tr.append(tool);
      const tier = el('td');
      const t = tierName(c.tier);
      tier.append(badge(c.tier || '—', t ? `tier tier-${t}` : ''));
      tr.append(tier);
      tr.append(el('td', 'decision', c.decision));
      const out = el('td', 'outcome');
      out.append(badge(c.outcome || '—', `outcome-${c.outcome || 'none'}`));
      if (typeof c.duration_ms === 'number' && c.outcome !== 'running' && c.outcome !== 'refused') out.append(el('span', 'muted small', ` ${c.duration_ms} ms`));
      tr.append(out);
      const plan = el('td', 'plan', c.plan || '');
      if (c.args && c.args !== '{}') plan.title = c.args;
      tr.append(plan);
      tr.append(el('td', 'error-text', c.error || ''));
      return tr;
    });
    if (append) $('audit-rows').append(...rows); else $('audit-rows').replaceChildren(...rows);
    const n = state.audit.rows.length;
    $('audit-empty').hidden = n > 0;
    $('audit-more').hidden = !state.audit.next;
    $('audit-count').textContent = n ? `${n} calls shown${state.audit.next ? ' · older ones exist' : ''}` : '';
  }

  // ---------- demo ----------

  // loadDemo asks once whether this is `jarvis serve --demo`: only then does
  // the guest view offer to crash a simulated guest.
  async function loadDemo() {
    try {
      const d = await api('GET', '/api/demo');
      state.demo = !!(d && d.demo);
    } catch (_) {
      state.demo = false;
    }
    if (state.view === 'guest' && state.guest) $('guest-demo').hidden = !state.demo || !crashReaches(state.guest);
  }

  async function crashGuest() {
    const g = state.guest;
    if (!g || !state.demo) return;
    const button = $('guest-crash');
    const out = $('guest-crash-result');
    button.disabled = true;
    out.textContent = `Crashing guest ${g.vmid}…`;
    delete out.dataset.state;
    try {
      await api('POST', `/api/demo/guests/${encodeURIComponent(g.vmid)}/crash`);
      if (state.guest !== g) return;
      out.textContent = `Guest ${g.vmid} crashed in the simulated cluster. The watcher notices on its next poll and raises an alert; a rule with that trigger may then restart it.`;
      out.dataset.state = 'ok';
    } catch (err) {
      if (state.guest !== g) return;
      out.textContent = err.message;
      out.dataset.state = 'error';
    } finally {
      if (state.guest === g) button.disabled = false;
    }
  }

  // ---------- confirm dialog ----------

  // confirmDialog asks a yes/no question in a modal dialog (keyboard: Tab
  // between the buttons, Escape cancels; Cancel has the focus first). It
  // resolves true for OK.
  function confirmDialog(title, text, okLabel) {
    const dlg = $('confirm-dialog');
    $('confirm-title').textContent = title;
    $('confirm-text').textContent = text;
    $('confirm-ok').textContent = okLabel;
    const opener = document.activeElement;
    return new Promise((resolve) => {
      const done = (yes) => {
        $('confirm-ok').removeEventListener('click', onOK);
        $('confirm-cancel').removeEventListener('click', onCancel);
        dlg.removeEventListener('close', onClose);
        if (dlg.open) dlg.close();
        if (opener && opener.isConnected && typeof opener.focus === 'function') opener.focus();
        resolve(yes);
      };
      const onOK = () => done(true);
      const onCancel = () => done(false);
      const onClose = () => done(false);
      $('confirm-ok').addEventListener('click', onOK);
      $('confirm-cancel').addEventListener('click', onCancel);
      dlg.addEventListener('close', onClose);
      dlg.showModal();
      $('confirm-cancel').focus();
    });
  }

  // ---------- rules (standing approvals) ----------

  const TRIGGER_WORDS = {
    guest_stopped_unexpectedly: 'the guest stopped unexpectedly (crashed)',
    guest_stopped: 'the guest was stopped',
    node_unreachable: 'its node is unreachable',
    node_memory: 'its node is short of memory',
    storage_full: 'a storage is nearly full',
    service_failed: 'the service failed',
  };

  function refreshRulesSoon() {
    if (state.view !== 'rules') return;
    clearTimeout(state.rules.timer);
    state.rules.timer = setTimeout(() => loadRules(), 400);
  }

  async function loadRuleOptions() {
    try {
      const o = await api('GET', '/api/rules/options');
      state.rules.options = o;
      fillRuleForm(o);
    } catch (err) {
      if (err.status !== 401) $('rule-form-error').textContent = `Could not read what a rule can name: ${err.message}`;
    }
  }

  function option(value, text, disabled) {
    const o = el('option', '', text);
    o.value = value;
    if (disabled) o.disabled = true;
    return o;
  }

  // fillRuleForm puts the callers, the RED tools and the triggers in the
  // form's lists, keeping what is chosen.
  function fillRuleForm(o) {
    const forSel = $('rule-for');
    const keepFor = forSel.value;
    forSel.replaceChildren(...(o.callers || []).map((c) => option(c.for,
      c.can_call_red ? c.label : `${c.label}: ceiling ${c.max_tier}, cannot make RED calls`, !c.can_call_red)));
    if (keepFor) selectValue(forSel, keepFor);
    const toolSel = $('rule-tool');
    const keepTool = toolSel.value;
    const tools = o.tools || [];
    toolSel.replaceChildren(...tools.map((t) => option(t.name, t.title ? `${t.name} · ${t.title}` : t.name)));
    if (!tools.length) toolSel.append(option('', 'no RED tools here (read-only?)', true));
    if (keepTool) selectValue(toolSel, keepTool);
    const trigSel = $('rule-trigger');
    const keepTrig = trigSel.value;
    trigSel.replaceChildren(option('', 'no trigger: any time'),
      ...(o.triggers || []).map((k) => option(k, `${k}: ${TRIGGER_WORDS[k] || 'an alert of this kind'}`)));
    selectValue(trigSel, keepTrig);
    describeToolArgs();
  }

  // selectValue chooses value in a select, adding it when the list lacks it
  // (a rule for a token that has since been revoked, say).
  function selectValue(sel, value) {
    if (![...sel.options].some((o) => o.value === value)) sel.append(option(value, value));
    sel.value = value;
  }

  // describeToolArgs says which arguments the chosen tool takes.
  function describeToolArgs() {
    const o = state.rules.options;
    const t = o && (o.tools || []).find((x) => x.name === $('rule-tool').value);
    const out = $('rule-tool-args');
    if (!t) {
      out.textContent = '';
      return;
    }
    const names = (t.args || []).map((a) => (a.required ? `${a.name} (required)` : a.name));
    out.textContent = names.length ? `${t.name} takes: ${names.join(', ')}.` : `${t.name} takes no arguments.`;
  }

  // Arguments are written one per line, name=value1,value2, with \, for a
  // comma inside a value; the same name on two lines adds values.
  function parseRuleArgs(text) {
    const args = {};
    const lines = text.split('\n');
    for (let i = 0; i < lines.length; i++) {
      const line = lines[i].trim();
      if (!line) continue;
      const eq = line.indexOf('=');
      if (eq <= 0) throw new Error(`Arguments, line ${i + 1}: write name=value1,value2 (got "${line}").`);
      const name = line.slice(0, eq).trim();
      const values = [];
      let cur = '';
      const rest = line.slice(eq + 1);
      for (let j = 0; j < rest.length; j++) {
        if (rest[j] === '\\' && rest[j + 1] === ',') {
          cur += ',';
          j++;
        } else if (rest[j] === ',') {
          values.push(cur.trim());
          cur = '';
        } else {
          cur += rest[j];
        }
      }
      values.push(cur.trim());
      const clean = values.filter((v) => v !== '');
      if (!clean.length) throw new Error(`Arguments, line ${i + 1}: ${name} needs at least one value (* allows any).`);
      args[name] = (args[name] || []).concat(clean);
    }
    return args;
  }

  function ruleArgsText(args) {
    return Object.keys(args || {}).sort()
      .map((k) => `${k}=${(args[k] || []).map((v) => String(v).replace(/,/g, '\\,')).join(',')}`).join('\n');
  }

  function resetRuleForm() {
    state.rules.editing = null;
    $('rule-form').reset();
    $('rule-form-title').textContent = 'New rule';
    $('rule-submit').textContent = 'Create rule';
    $('rule-cancel').hidden = true;
    $('rule-form-error').textContent = '';
    $('rule-form').removeAttribute('data-editing');
    describeToolArgs();
  }

  // The field a 400 names, to put the cursor in.
  const RULE_FIELDS = {
    for: 'rule-for', tool: 'rule-tool', args: 'rule-args', trigger: 'rule-trigger', per_target_per_hour: 'rule-per-hour',
    max_failures: 'rule-max-failures', expires_in: 'rule-expires', expires_at: 'rule-expires', note: 'rule-note',
  };

  function countValue(id) {
    const v = $(id).value.trim();
    return /^\d+$/.test(v) ? Number(v) : v;
  }

  async function onRuleSubmit(e) {
    e.preventDefault();
    const error = $('rule-form-error');
    const status = $('rule-form-status');
    error.textContent = '';
    status.textContent = '';
    let args;
    try {
      args = parseRuleArgs($('rule-args').value);
    } catch (err) {
      error.textContent = err.message;
      $('rule-args').focus();
      return;
    }
    const body = {
      for: $('rule-for').value,
      tool: $('rule-tool').value,
      args,
      trigger: $('rule-trigger').value,
      per_target_per_hour: countValue('rule-per-hour'),
      max_failures: countValue('rule-max-failures'),
      expires_in: $('rule-expires').value.trim(),
      note: $('rule-note').value.trim(),
    };
    const editing = state.rules.editing;
    const button = $('rule-submit');
    button.disabled = true;
    try {
      const r = editing
        ? await api('PUT', `/api/rules/${encodeURIComponent(editing.id)}`, body)
        : await api('POST', '/api/rules', body);
      resetRuleForm();
      status.textContent = editing
        ? `Rule ${r.id} is now version ${r.version}: ${r.tool} for ${r.principal}.`
        : `Rule ${r.id} created: ${r.tool} for ${r.principal}, until ${fmtDateTime(r.expires_at)}.`;
      await loadRules();
    } catch (err) {
      if (err.status === 401) return;
      error.textContent = err.message;
      const d = err.data && err.data.details;
      const field = d && typeof d === 'object' ? d.field : '';
      if (field && RULE_FIELDS[field]) $(RULE_FIELDS[field]).focus();
    } finally {
      button.disabled = false;
    }
  }

  async function loadRules() {
    const seq = ++state.rules.seq;
    $('rules-error').textContent = '';
    $('rules-view').setAttribute('aria-busy', 'true');
    try {
      const data = await api('GET', '/api/rules?all=1');
      if (seq !== state.rules.seq) return;
      state.rules.list = data.rules || [];
      renderRules(state.rules.list);
    } catch (err) {
      if (seq === state.rules.seq && err.status !== 401) $('rules-error').textContent = err.message;
    } finally {
      if (seq === state.rules.seq) $('rules-view').removeAttribute('aria-busy');
    }
  }

  const RULE_STATUS_WORDS = {
    active: 'lets calls through',
    stopped: 'stopped after failures in a row: change or revoke it',
    expired: 'expired',
    revoked: 'revoked',
  };

  // relative says how far a time is from now, in words.
  function relative(iso) {
    const ms = Date.parse(iso) - now();
    if (Number.isNaN(ms)) return '';
    return ms >= 0 ? `in ${duration(ms / 1000)}` : `${duration(-ms / 1000)} ago`;
  }

  function renderRules(list) {
    const rows = list.map((r) => {
      const tr = el('tr');
      tr.dataset.testid = 'rule-row';
      tr.dataset.ruleId = r.id;
      tr.dataset.status = r.status;
      const st = el('td');
      const b = badge(r.status, `rule-status rule-${r.status}`);
      b.dataset.testid = 'rule-status';
      b.title = RULE_STATUS_WORDS[r.status] || r.status;
      st.append(b);
      tr.append(st);
      tr.append(el('td', 'who', r.principal));
      const tool = el('td', 'rule-tool');
      tool.append(el('code', '', r.tool), el('span', 'muted small', ` v${r.version}`), el('br'), el('span', 'rule-id muted small', r.id));
      if (r.note) tool.append(el('br'), el('span', 'rule-note muted small', r.note));
      tr.append(tool);
      const args = el('td', 'rule-args');
      const names = Object.keys(r.args || {}).sort();
      if (!names.length) args.append(el('span', 'muted', 'no arguments'));
      for (const n of names) {
        const vs = r.args[n] || [];
        args.append(el('div', '', `${n} = ${vs.includes('*') ? 'any' : vs.join(', ')}`));
      }
      tr.append(args);
      const trig = el('td');
      if (r.trigger) {
        trig.append(el('code', '', r.trigger));
        trig.title = `only while an alert says ${TRIGGER_WORDS[r.trigger] || r.trigger}`;
      } else trig.append(el('span', 'muted', 'any time'));
      tr.append(trig);
      const budget = el('td', 'rule-budget');
      budget.append(el('div', '', `${r.per_target_per_hour} per hour per target`),
        el('div', 'muted small', `stops after ${r.max_failures} failures in a row`));
      tr.append(budget);
      tr.append(spentCell(r));
      const exp = el('td', 'when');
      if (r.revoked_at) {
        exp.append(el('span', '', `revoked ${fmtDateTime(r.revoked_at)}`), el('br'), el('span', 'muted small', `by ${r.revoked_by || '?'}`));
      } else {
        const t = el('time', '', fmtDateTime(r.expires_at));
        t.dateTime = r.expires_at;
        exp.append(t, el('br'), el('span', 'muted small', relative(r.expires_at)));
      }
      tr.append(exp);
      const act = el('td', 'rule-actions-cell');
      if (r.status !== 'revoked') {
        const edit = el('button', 'btn btn-small', 'Change');
        edit.type = 'button';
        edit.dataset.testid = 'rule-edit';
        edit.setAttribute('aria-label', `Change rule ${r.id}: ${r.tool} for ${r.principal}`);
        edit.addEventListener('click', () => editRule(r));
        const rev = el('button', 'btn btn-deny btn-small', 'Revoke');
        rev.type = 'button';
        rev.dataset.testid = 'rule-revoke';
        rev.setAttribute('aria-label', `Revoke rule ${r.id}: ${r.tool} for ${r.principal}`);
        rev.addEventListener('click', () => revokeRule(r, rev));
        act.append(edit, rev);
      }
      tr.append(act);
      return tr;
    });
    $('rules-rows').replaceChildren(...rows);
    $('rules-empty').hidden = list.length > 0;
  }

  function spentCell(r) {
    const td = el('td', 'rule-spent');
    const sp = r.spend || {};
    const uses = sp.uses_last_hour || {};
    const targets = Object.keys(uses).sort();
    for (const t of targets) td.append(el('div', '', `${t}: ${uses[t]} of ${r.per_target_per_hour} this hour`));
    const fails = sp.failures_in_a_row || 0;
    const f = el('div', fails ? 'rule-fails' : 'muted', `${fails} of ${r.max_failures} failures in a row`);
    f.dataset.testid = 'rule-failures';
    td.append(f);
    if (sp.running) td.append(el('div', 'muted', `${sp.running} running`));
    td.append(el('div', 'muted small', sp.total_uses ? `${sp.total_uses} uses, last ${fmtDateTime(sp.last_used)}` : 'not used yet'));
    return td;
  }

  function editRule(r) {
    state.rules.editing = r;
    const form = $('rule-form');
    form.dataset.editing = r.id;
    $('rule-form-title').textContent = `Change rule ${r.id} (makes version ${r.version + 1})`;
    $('rule-submit').textContent = `Save version ${r.version + 1}`;
    $('rule-cancel').hidden = false;
    $('rule-form-error').textContent = '';
    $('rule-form-status').textContent = '';
    // The form names a token by its id; the rule carries its principal id.
    const callers = (state.rules.options && state.rules.options.callers) || [];
    const who = callers.find((c) => c.principal === r.principal);
    selectValue($('rule-for'), who ? who.for : r.principal);
    selectValue($('rule-tool'), r.tool);
    selectValue($('rule-trigger'), r.trigger || '');
    $('rule-args').value = ruleArgsText(r.args);
    $('rule-per-hour').value = String(r.per_target_per_hour);
    $('rule-max-failures').value = String(r.max_failures);
    $('rule-note').value = r.note || '';
    describeToolArgs();
    form.scrollIntoView({ block: 'start', behavior: 'smooth' });
    $('rule-for').focus({ preventScroll: true });
  }

  async function revokeRule(r, button) {
    const yes = await confirmDialog(`Revoke rule ${r.id}?`,
      `${r.tool} for ${r.principal} will wait for a person again, at once. A revoked rule cannot be brought back; you can create a new one.`, 'Revoke');
    if (!yes) return;
    button.disabled = true;
    $('rules-error').textContent = '';
    try {
      await api('DELETE', `/api/rules/${encodeURIComponent(r.id)}`);
      $('rule-form-status').textContent = `Rule ${r.id} revoked.`;
      if (state.rules.editing && state.rules.editing.id === r.id) resetRuleForm();
    } catch (err) {
      if (err.status !== 401) $('rules-error').textContent = err.message;
      button.disabled = false;
    }
    await loadRules();
    // The row was drawn again: the focus goes back to the view, not to nowhere.
    if (!document.activeElement || document.activeElement === document.body) $('rules-title').focus();
  }

  // ---------- one approval, from a link ----------

  function closeLinkedApproval() {
    for (const [, item] of state.approvals) delete item.el.dataset.linked;
    state.linked = { id: '', seq: state.linked.seq + 1, data: null, focused: false };
  }

  function openLinkedApproval(id) {
    if (state.linked.id === id) return;
    closeLinkedApproval();
    state.linked.id = id;
    const view = $('approval-view');
    view.dataset.approvalId = id;
    view.dataset.status = 'loading';
    $('approval-title').textContent = `Approval ${id}`;
    $('approval-badge').replaceChildren();
    $('approval-facts').replaceChildren();
    $('approval-status').textContent = `Reading approval ${id}…`;
    $('approval-title').focus();
    loadLinkedApproval();
  }

  function refreshLinkedApproval(id) {
    if (state.view === 'approval' && state.linked.id && id === state.linked.id) loadLinkedApproval();
  }

  async function loadLinkedApproval() {
    const id = state.linked.id;
    const seq = state.linked.seq;
    let a;
    try {
      a = await api('GET', `/api/approvals/${encodeURIComponent(id)}`);
    } catch (err) {
      if (seq !== state.linked.seq || err.status === 401) return;
      $('approval-view').dataset.status = err.status === 404 ? 'missing' : 'error';
      $('approval-status').textContent = err.status === 404
        ? `There is no approval ${id}: the link may be from another Jarvis, or the request was never stored.`
        : err.message;
      return;
    }
    if (seq !== state.linked.seq) return;
    state.linked.data = a;
    renderLinkedApproval(a);
  }

  // linkedStatus is the approval's status as it stands now: a pending one past
  // its expiry is expired even before Jarvis's sweeper marks it.
  function linkedStatus(a) {
    return a.status === 'pending' && Date.parse(a.expires_at) <= now() ? 'expired' : a.status;
  }

  function renderLinkedApproval(a) {
    const status = linkedStatus(a);
    const view = $('approval-view');
    view.dataset.status = status;
    $('approval-title').textContent = `Approval ${a.id}`;
    const word = { consumed: 'approved, used', approved: 'approved' }[status] || status;
    const b = badge(word, status === 'pending' ? 'badge-warn' : `decision-${status}`);
    b.dataset.testid = 'approval-view-status';
    $('approval-badge').replaceChildren(b);
    let text;
    switch (status) {
      case 'pending':
        text = `Waiting for you: ${a.principal} asks to run ${a.tool}. Approve or deny it in the highlighted card above, before ${fmtDateTime(a.expires_at)}.`;
        break;
      case 'approved':
        text = `Approved by ${a.decided_by || 'someone'} at ${fmtDateTime(a.decided_at)}. The caller may now repeat the call once with this approval id.`;
        break;
      case 'consumed':
        text = `Approved by ${a.decided_by || 'someone'} at ${fmtDateTime(a.decided_at)}, and used at ${fmtDateTime(a.consumed_at)}.`;
        break;
      case 'denied':
        text = `Denied by ${a.decided_by || 'someone'} at ${fmtDateTime(a.decided_at)}. Nothing ran.`;
        break;
      case 'expired':
        text = `Expired at ${fmtDateTime(a.expires_at)} without a decision. Nothing ran; the caller must ask again.`;
        break;
      default:
        text = `Status: ${status}.`;
    }
    $('approval-status').textContent = text;
    let args = a.args || '';
    const cut = args.lastIndexOf(' sha256:');
    const json = cut >= 0 ? args.slice(0, cut) : args;
    try { args = JSON.stringify(JSON.parse(json), null, 2); } catch (_) { /* show as stored */ }
    const pre = el('pre', '', args);
    const tier = tierName(a.tier);
    $('approval-facts').replaceChildren(dl([
      ['Tool', a.tool],
      ['Cluster', a.cluster],
      ['Tier', tier ? badge(tier, `tier tier-${tier}`) : a.tier],
      ['Plan', a.plan],
      ['Asked by', a.principal],
      ['Asked at', fmtDateTime(a.created_at)],
      [status === 'pending' ? 'Expires' : 'Expiry', fmtDateTime(a.expires_at)],
      ['Decided by', a.decided_by],
      ['Decided at', fmtDateTime(a.decided_at)],
      ['Used at', fmtDateTime(a.consumed_at)],
      ['Arguments', pre],
    ]));
    markLinkedApproval();
  }

  // markLinkedApproval highlights the linked request in the pending list and,
  // the first time it is there, scrolls to it and puts the focus on it.
  function markLinkedApproval() {
    const id = state.view === 'approval' ? state.linked.id : '';
    for (const [aid, item] of state.approvals) {
      if (aid === id) item.el.dataset.linked = '';
      else delete item.el.dataset.linked;
    }
    const item = id && state.approvals.get(id);
    if (!item || state.linked.focused) return;
    state.linked.focused = true;
    item.el.tabIndex = -1;
    item.el.scrollIntoView({ block: 'center' });
    item.el.focus({ preventScroll: true });
  }

  // ---------- wiring ----------

  function wire() {
    $('login-form').addEventListener('submit', onLogin);
    $('logout').addEventListener('click', onLogout);
    $('kill-switch').addEventListener('click', (e) => toggleSwitch('kill_switch', e.currentTarget));
    $('read-only').addEventListener('click', (e) => toggleSwitch('read_only', e.currentTarget));
    $('feed-filters').addEventListener('change', applyFilters);
    window.addEventListener('hashchange', route);
    // A click anywhere on a guest's row opens it, as its link does.
    $('guests').addEventListener('click', (e) => {
      if (e.target.closest('a')) return;
      const tr = e.target.closest('tr[data-vmid]');
      if (tr) location.hash = guestHref(tr.dataset.cluster || '', tr.dataset.vmid);
    });
    $('guest-timeframe').addEventListener('change', () => {
      if (state.guest) loadMetrics(state.guest.vmid);
    });
    $('history-status').addEventListener('change', () => loadHistory(false));
    $('history-cluster').addEventListener('change', () => loadHistory(false));
    $('cluster-pick').addEventListener('change', onPickCluster);
    $('history-more').addEventListener('click', () => loadHistory(true));
    $('audit-filters').addEventListener('submit', (e) => {
      e.preventDefault();
      loadAudit(false);
    });
    // Clearing the form lists everything again (after the browser resets the fields).
    $('audit-filters').addEventListener('reset', () => setTimeout(() => loadAudit(false), 0));
    $('audit-more').addEventListener('click', () => loadAudit(true));
    $('rule-form').addEventListener('submit', onRuleSubmit);
    $('rule-tool').addEventListener('change', describeToolArgs);
    $('rule-cancel').addEventListener('click', () => {
      resetRuleForm();
      $('rule-form-status').textContent = 'Change cancelled; the rule is as it was.';
    });
    $('guest-crash').addEventListener('click', crashGuest);
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
