// regdesk "Open Work": the operators' and customers' desk over the JSON API.
// Plain DOM code, no framework. API strings only ever reach the page through
// textContent and DOM properties, never through innerHTML.
'use strict';

(() => {
  const POLL_MS = 3000;
  const PAGE_SIZE = 50;

  const STATES = [
    ['new', 'New'],
    ['incomplete', 'Incomplete'],
    ['review', 'In review'],
    ['queued', 'Queued'],
    ['processing', 'In progress'],
    ['limbo', 'Limbo'],
    ['failed', 'Failed'],
    ['finished', 'Finished'],
  ];
  const STATE_LABEL = Object.fromEntries(STATES);
  const OPERATIONS = ['create', 'transfer', 'renew', 'update', 'release', 'delete', 'hold', 'backorder', 'privacy'];
  const INTERNAL = [
    ['needs_attention', 'needs attention'],
    ['missing_information', 'missing information'],
  ];

  // The filter builder's fields, their operators and the API query
  // parameter each (field, operator) pair maps to. `list` parameters take
  // several values joined by commas (any of them matches).
  const FIELDS = {
    internal_status: {
      label: 'Internal Status',
      ops: { is: 'internal_status', is_not: 'not_internal_status' },
      list: true,
      choices: () => INTERNAL,
    },
    state: {
      label: 'State',
      ops: { is: 'state', is_not: 'not_state' },
      list: true,
      choices: () => STATES.map(([v, l]) => [v, `${l} (${v})`]),
    },
    operation: {
      label: 'Operation',
      ops: { is: 'operation', is_not: 'not_operation' },
      list: true,
      choices: () => OPERATIONS.map((o) => [o, o]),
    },
    domain: {
      label: 'Domain',
      ops: { is: 'domain', is_not: 'not_domain', contains: 'domain_contains' },
      list: false,
      choices: null,
    },
    account: {
      label: 'Account',
      ops: { is: 'account_id', is_not: 'not_account_id' },
      list: false,
      operatorOnly: true,
      choices: () => state.accounts.map((a) => [String(a.id), `${a.name} (#${a.id})`]),
    },
  };
  const OP_LABEL = { is: 'is', is_not: 'is not', contains: 'contains' };
  // Query parameter -> [field, operator], for reading a filter back from the URL.
  const PARAM_FIELD = {};
  for (const [field, def] of Object.entries(FIELDS)) {
    for (const [op, param] of Object.entries(def.ops)) PARAM_FIELD[param] = [field, op];
  }

  const ACTION_LABEL = {
    submit: 'Submit',
    authorise: 'Authorise',
    'send-back': 'Send back',
    abort: 'Abort',
    retry: 'Retry',
    resolve: 'Resolve',
    annotate: 'Annotate',
  };
  const BULK_ACTIONS = { authorise: 'Authorise', abort: 'Abort', retry: 'Retry' };

  // Views beyond the three built into the page register here (views.js,
  // expiring.js): {id, label, operatorOnly, load(section, params)}; each
  // gets a tab, a section and its own parameters in the URL.
  const EXTRA_VIEWS = [];
  const CORE_VIEWS = ['requests', 'notifications', 'scheduled'];

  const state = {
    csrf: null,
    me: null,
    accounts: [],
    view: 'requests',
    filters: [], // [{field, op, value}]
    openId: null,
    pageCursors: [null], // `after` of each page seen, for "first page"
    pageIndex: 0,
    next: null,
    rows: [],
    selected: new Set(),
    detail: null,
    openForm: null,
    eventCursor: null,
    pollTimer: null,
    polling: false,
    notificationsNext: null,
    lastFocusedRow: null,
    listSeq: 0,
    detailSeq: 0,
  };

  const $ = (id) => document.getElementById(id);

  // ----- DOM helpers --------------------------------------------------------

  /** Builds an element; string children become text nodes. */
  function h(tag, attrs, ...children) {
    const el = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === null || v === undefined || v === false) continue;
      if (k === 'class') el.className = v;
      else if (k === 'text') el.textContent = v;
      else if (k === 'dataset') Object.assign(el.dataset, v);
      else if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
      else if (k in el && typeof v !== 'string') el[k] = v;
      else el.setAttribute(k, v === true ? '' : String(v));
    }
    for (const c of children.flat()) {
      if (c === null || c === undefined || c === false) continue;
      el.append(c instanceof Node ? c : document.createTextNode(String(c)));
    }
    return el;
  }

  function clear(el) {
    while (el.firstChild) el.removeChild(el.firstChild);
    return el;
  }

  function show(el, on) {
    el.hidden = !on;
  }

  function setMessage(el, text) {
    el.textContent = text || '';
    el.hidden = !text;
  }

  function fmtTime(iso) {
    if (!iso) return '—';
    // Times are RFC 3339 UTC; show them compactly, still in UTC, so that
    // everyone on a support call reads the same clock.
    const m = /^(\d{4}-\d{2}-\d{2})T(\d{2}:\d{2}:\d{2})/.exec(iso);
    return m ? `${m[1]} ${m[2]}` : iso;
  }

  /** The time in the viewer's own zone, named: what hovering a time shows. */
  function localTime(iso) {
    const d = new Date(iso);
    if (Number.isNaN(d.getTime())) return iso;
    return d.toLocaleString(undefined, {
      year: 'numeric', month: '2-digit', day: '2-digit', hour: '2-digit', minute: '2-digit', second: '2-digit', timeZoneName: 'short',
    });
  }

  function timeEl(iso) {
    if (!iso) return document.createTextNode('—');
    return h('time', { datetime: iso, title: `${localTime(iso)} (your time); ${iso}` }, fmtTime(iso));
  }

  function stateBadge(st, failure) {
    const label = STATE_LABEL[st] || st;
    const b = h('span', { class: `badge state-${st}`, dataset: { state: st }, title: st }, label);
    if (failure) b.append(h('span', { class: 'badge-sub' }, `· ${failure}`));
    return b;
  }

  function accountName(id) {
    const a = state.accounts.find((x) => x.id === id);
    if (a) return `${a.name} #${id}`;
    if (state.me && state.me.id === id) return `${state.me.name} #${id}`;
    return `#${id}`;
  }

  function isOperator() {
    return !!state.me && state.me.role === 'operator';
  }

  let toastTimer = null;
  function toast(text) {
    const t = $('toast');
    t.textContent = text;
    t.hidden = false;
    clearTimeout(toastTimer);
    toastTimer = setTimeout(() => { t.hidden = true; }, 4000);
  }

  // ----- API ----------------------------------------------------------------

  class ApiError extends Error {
    constructor(status, code, message, field) {
      super(message);
      this.status = status;
      this.code = code;
      this.field = field || null;
    }
  }

  /** The error in words: its message, naming the field when the message does not. */
  function errorText(e, doing) {
    let msg = e && e.message ? e.message : String(e);
    if (e && e.field && !msg.startsWith(e.field)) msg = `${e.field}: ${msg}`;
    return doing ? `${doing} failed: ${msg}` : msg;
  }

  async function api(method, path, body, raw) {
    // The session cookie goes with every request; a write also carries the
    // session's CSRF token, which only this origin's pages can read.
    const headers = {};
    if (method !== 'GET' && state.csrf) headers['X-CSRF-Token'] = state.csrf;
    const init = { method, headers };
    if (body !== undefined) {
      headers['Content-Type'] = 'application/json';
      init.body = JSON.stringify(body);
    }
    let res;
    try {
      res = await fetch(`/api/v1${path}`, init);
    } catch (err) {
      throw new ApiError(0, 'network', `the server could not be reached (${err.message})`);
    }
    if (res.status === 401 && state.me) {
      signedOut('Your session has ended. Sign in again.');
    }
    if (res.ok && raw) return res;
    if (res.status === 204) return null;
    const text = await res.text();
    let data = null;
    try {
      data = text ? JSON.parse(text) : null;
    } catch (_) {
      data = null;
    }
    if (!res.ok) {
      const err = (data && data.error) || {};
      throw new ApiError(res.status, err.code || String(res.status), err.message || `HTTP ${res.status}`, err.field);
    }
    return data;
  }

  // ----- routing: the URL holds the view, the filter and the open request --

  function filterParams(filters) {
    const params = new URLSearchParams();
    const lists = {};
    for (const f of filters) {
      const def = FIELDS[f.field];
      const value = String(f.value || '').trim();
      if (!def || !value) continue;
      const param = def.ops[f.op];
      if (!param) continue;
      if (def.list) (lists[param] = lists[param] || []).push(value);
      else params.set(param, value); // single-valued: the last one applies
    }
    for (const [param, values] of Object.entries(lists)) params.set(param, [...new Set(values)].join(','));
    return params;
  }

  function readRoute() {
    const p = new URLSearchParams(location.hash.replace(/^#/, ''));
    const view = p.get('view');
    const filters = [];
    for (const [k, v] of p) {
      const fo = PARAM_FIELD[k];
      if (!fo) continue;
      const def = FIELDS[fo[0]];
      const values = def.list ? v.split(',') : [v];
      for (const value of values) if (value.trim()) filters.push({ field: fo[0], op: fo[1], value: value.trim() });
    }
    const open = Number(p.get('open'));
    return {
      view: viewIds().includes(view) ? view : 'requests',
      filters,
      openId: Number.isInteger(open) && open > 0 ? open : null,
    };
  }

  function viewIds() {
    return CORE_VIEWS.concat(EXTRA_VIEWS.filter((v) => !v.operatorOnly || isOperator()).map((v) => v.id));
  }

  function routeHash(view, filters, openId) {
    const p = new URLSearchParams();
    if (view && view !== 'requests') p.set('view', view);
    if (!CORE_VIEWS.includes(view)) return `#${p}`;
    for (const [k, v] of filterParams(filters)) p.set(k, v);
    if (openId) p.set('open', String(openId));
    const s = p.toString();
    return s ? `#${s}` : '#';
  }

  /** Writes the state into the URL (a link is a saved view) and renders it. */
  function navigate({ view = state.view, filters = state.filters, openId = state.openId, replace = false } = {}) {
    const hash = routeHash(view, filters, openId);
    const url = `${location.pathname}${location.search}${hash === '#' ? '' : hash}`;
    if (replace) history.replaceState(null, '', url);
    else if (hash !== (location.hash || '#')) history.pushState(null, '', url);
    applyRoute();
  }

  let lastFilterKey = null;
  let lastExtraHash = null;
  function applyRoute() {
    const r = readRoute();
    const viewChanged = r.view !== state.view;
    state.view = r.view;
    // Rows still being edited (no value yet) are not in the URL; keep them
    // on the screen, in place, unless the URL now says something else.
    if (filterParams(r.filters).toString() !== filterParams(state.filters).toString()) {
      state.filters = r.filters;
    }
    const filterKey = filterParams(state.filters).toString();
    renderTabs();
    renderFilters();
    if (state.view === 'requests') {
      if (filterKey !== lastFilterKey || viewChanged) {
        lastFilterKey = filterKey;
        state.pageCursors = [null];
        state.pageIndex = 0;
        state.selected.clear();
        setMessage($('bulk-result'), '');
        loadRequests();
      }
    } else if (state.view === 'notifications') {
      lastFilterKey = null;
      loadNotifications();
    } else if (state.view === 'scheduled') {
      lastFilterKey = null;
      loadScheduled();
    } else {
      lastFilterKey = null;
      // A link followed fires both popstate and hashchange: load once.
      if (location.hash !== lastExtraHash || viewChanged) loadExtraView(state.view);
    }
    if (CORE_VIEWS.includes(state.view)) lastExtraHash = null;
    else lastExtraHash = location.hash;
    if (r.openId !== state.openId || (r.openId && !state.detail)) {
      state.openId = r.openId;
      if (r.openId) openDetail(r.openId);
      else closeDetailPanel();
    }
  }

  // ----- sign in / out --------------------------------------------------------

  /** Signs in with a name and password: the server sets the session cookie. */
  async function signIn(name, password) {
    const res = await api('POST', '/session', { name, password });
    await enter(res);
  }

  /** Shows the desk for the session `res` ({account, csrf_token}) names. */
  async function enter(res) {
    state.csrf = res.csrf_token;
    const me = await api('GET', '/me');
    state.me = me;
    state.accounts = [];
    if (me.role === 'operator') {
      try {
        const list = await api('GET', '/accounts');
        state.accounts = list.items || [];
      } catch (_) {
        state.accounts = [];
      }
    }
    document.body.classList.toggle('is-operator', me.role === 'operator');
    $('who-name').textContent = me.name;
    $('who-role').textContent = me.role;
    show($('signin'), false);
    show($('set-password'), false);
    show($('topbar'), true);
    renderExtraTabs();
    renderBulkControls();
    lastFilterKey = null;
    state.view = null;
    applyRoute();
    await startPolling();
  }

  /** Ends the session on the server, then shows the sign-in form. */
  async function signOut() {
    try {
      await api('DELETE', '/session');
    } catch (_) {
      // The cookie may be gone already; the form is shown either way.
    }
    signedOut('You are signed out.');
  }

  function signedOut(message) {
    stopPolling();
    Object.assign(state, {
      csrf: null, me: null, accounts: [], detail: null, openId: null, rows: [], eventCursor: null,
    });
    state.selected.clear();
    lastFilterKey = null;
    document.body.classList.remove('is-operator');
    for (const v of ['view-requests', 'view-notifications', 'view-scheduled', 'topbar', 'detail', 'set-password']) show($(v), false);
    for (const v of EXTRA_VIEWS) if (v.section) show(v.section, false);
    clear($('requests-body'));
    show($('signin'), true);
    setMessage($('signin-error'), message || '');
    $('password').value = '';
    $(($('name').value ? 'password' : 'name')).focus();
  }

  /** The form a one-time set-password link (#set-password=TOKEN) opens. */
  function showSetPassword(token) {
    show($('signin'), false);
    show($('set-password'), true);
    $('set-password-form').dataset.token = token;
    history.replaceState(null, '', location.pathname);
    $('new-password').focus();
  }

  // ----- views registered from other files -----------------------------------------

  function registerView(view) {
    EXTRA_VIEWS.push(view);
    if (state.me) {
      renderExtraTabs();
      applyRoute();
    }
  }

  function renderExtraTabs() {
    const nav = document.querySelector('nav.tabs');
    for (const a of nav.querySelectorAll('a[data-extra]')) a.remove();
    for (const v of EXTRA_VIEWS) {
      if (v.operatorOnly && !isOperator()) continue;
      nav.append(h('a', {
        href: `#view=${encodeURIComponent(v.id)}`,
        id: `tab-${v.id}`,
        dataset: { view: v.id, extra: '1' },
        onclick: (e) => { e.preventDefault(); navigate({ view: v.id, openId: null, filters: [] }); },
      }, v.label));
    }
  }

  function loadExtraView(id) {
    const v = EXTRA_VIEWS.find((x) => x.id === id);
    if (!v) return;
    if (!v.section) {
      v.section = h('section', { id: `view-${v.id}`, class: 'view', 'aria-labelledby': `${v.id}-title` });
      $('main').append(v.section);
    }
    for (const o of EXTRA_VIEWS) if (o.section) show(o.section, o === v);
    show(v.section, true);
    v.load(v.section, new URLSearchParams(location.hash.replace(/^#/, '')));
  }

  /** Puts a registered view's own parameters into the URL, without reloading it. */
  function setViewParams(params) {
    const p = new URLSearchParams();
    p.set('view', state.view);
    for (const [k, v] of Object.entries(params)) if (v !== null && v !== undefined && v !== '') p.set(k, v);
    history.replaceState(null, '', `${location.pathname}#${p}`);
  }

  // ----- the filter builder ---------------------------------------------------

  function availableFields() {
    return Object.entries(FIELDS).filter(([, d]) => !d.operatorOnly || isOperator());
  }

  function renderFilters() {
    const box = clear($('filter-rows'));
    state.filters.forEach((f, i) => box.append(filterRow(f, i)));
    if (!state.filters.length) box.append(h('p', { class: 'muted small no-filters' }, 'No filters: every request you can see.'));
    const attention = state.filters.some((f) => f.field === 'internal_status' && f.op === 'is' && f.value === 'needs_attention');
    const missing = state.filters.some((f) => f.field === 'internal_status' && f.op === 'is' && f.value === 'missing_information');
    $('quick-attention').setAttribute('aria-pressed', String(attention));
    $('quick-missing').setAttribute('aria-pressed', String(missing));
  }

  function filterRow(f, i) {
    const def = FIELDS[f.field];
    const n = i + 1;
    const fieldSel = h('select', { class: 'f-field', 'aria-label': `Filter ${n} field` },
      availableFields().map(([k, d]) => h('option', { value: k, selected: k === f.field }, d.label)));
    const opSel = h('select', { class: 'f-op', 'aria-label': `Filter ${n} operator` },
      Object.keys(def.ops).map((op) => h('option', { value: op, selected: op === f.op }, OP_LABEL[op])));
    let valueEl;
    const choices = def.choices ? def.choices() : null;
    if (choices && choices.length) {
      valueEl = h('select', { class: 'f-value', 'aria-label': `Filter ${n} value` },
        h('option', { value: '', disabled: true, selected: !f.value }, 'choose…'),
        choices.map(([v, l]) => h('option', { value: v, selected: v === f.value }, l)));
    } else {
      valueEl = h('input', {
        class: 'f-value',
        type: f.field === 'account' ? 'number' : 'search',
        'aria-label': `Filter ${n} value`,
        placeholder: f.field === 'domain' ? 'example.com' : 'value',
        value: f.value || '',
        spellcheck: 'false',
        autocomplete: 'off',
      });
    }
    fieldSel.addEventListener('change', () => {
      const nd = FIELDS[fieldSel.value];
      state.filters[i] = { field: fieldSel.value, op: Object.keys(nd.ops)[0], value: '' };
      renderFilters();
      focusFilterValue(i);
      if (String(f.value || '').trim()) commitFilters();
    });
    opSel.addEventListener('change', () => {
      state.filters[i].op = opSel.value;
      commitFilters();
    });
    if (valueEl.tagName === 'SELECT') {
      valueEl.addEventListener('change', () => {
        state.filters[i].value = valueEl.value;
        commitFilters();
      });
    } else {
      let t = null;
      valueEl.addEventListener('input', () => {
        state.filters[i].value = valueEl.value;
        clearTimeout(t);
        t = setTimeout(() => commitFilters(true), 350);
      });
      valueEl.addEventListener('keydown', (e) => {
        if (e.key === 'Enter') {
          clearTimeout(t);
          state.filters[i].value = valueEl.value;
          commitFilters();
        }
      });
    }
    const remove = h('button', {
      type: 'button', class: 'btn ghost icon small', 'aria-label': `Remove filter ${n}`, title: 'Remove filter',
      onclick: () => {
        state.filters.splice(i, 1);
        commitFilters();
        renderFilters();
      },
    }, '✕');
    return h('div', { class: 'filter-row', dataset: { index: String(i) } },
      h('span', { class: 'f-join muted', 'aria-hidden': 'true' }, i === 0 ? 'Where' : 'and'),
      fieldSel, opSel, valueEl, remove);
  }

  function focusFilterValue(i) {
    const rows = $('filter-rows').querySelectorAll('.f-value');
    const el = rows[i === undefined ? rows.length - 1 : i];
    if (el) el.focus();
  }

  /** Puts the filter into the URL; typing replaces the history entry. */
  function commitFilters(typing) {
    const focusedIndex = document.activeElement && document.activeElement.closest('.filter-row')
      ? Number(document.activeElement.closest('.filter-row').dataset.index) : null;
    const focusedClass = document.activeElement ? document.activeElement.className : '';
    navigate({ filters: state.filters, replace: !!typing });
    if (focusedIndex !== null) {
      const row = $('filter-rows').querySelectorAll('.filter-row')[focusedIndex];
      const el = row && row.querySelector(`.${focusedClass.split(' ')[0]}`);
      if (el) {
        el.focus();
        if (el.tagName === 'INPUT' && el.type === 'search') el.setSelectionRange(el.value.length, el.value.length);
      }
    }
  }

  function addFilter(f) {
    state.filters.push(f || { field: 'domain', op: 'contains', value: '' });
    renderFilters();
    focusFilterValue();
  }

  function quickFilter(value) {
    const others = state.filters.filter((f) => f.field !== 'internal_status');
    const already = state.filters.some((f) => f.field === 'internal_status' && f.op === 'is' && f.value === value);
    state.filters = already ? others : others.concat([{ field: 'internal_status', op: 'is', value }]);
    navigate({ filters: state.filters });
  }

  // ----- the request table ----------------------------------------------------

  function listQuery(extra) {
    const p = filterParams(state.filters);
    for (const [k, v] of Object.entries(extra || {})) if (v !== null && v !== undefined) p.set(k, v);
    return p.toString();
  }

  async function loadRequests() {
    show($('view-requests'), true);
    const seq = ++state.listSeq;
    const after = state.pageCursors[state.pageIndex];
    try {
      const page = await api('GET', `/requests?${listQuery({ limit: PAGE_SIZE, after })}`);
      if (seq !== state.listSeq) return;
      state.rows = page.items || [];
      state.next = page.next || null;
      setMessage($('list-error'), '');
      renderRequests();
    } catch (e) {
      if (seq !== state.listSeq) return;
      setMessage($('list-error'), errorText(e, 'Loading the work requests'));
    }
  }

  function renderRequests() {
    const body = $('requests-body');
    const focused = document.activeElement && document.activeElement.closest
      ? document.activeElement.closest('#requests-body tr') : null;
    const focusId = focused ? focused.dataset.id : null;
    clear(body);
    const visible = new Set(state.rows.map((r) => r.id));
    for (const id of [...state.selected]) if (!visible.has(id)) state.selected.delete(id);
    for (const r of state.rows) body.append(requestRow(r));
    show($('requests-empty'), state.rows.length === 0);
    const from = state.pageIndex * PAGE_SIZE + (state.rows.length ? 1 : 0);
    const to = state.pageIndex * PAGE_SIZE + state.rows.length;
    $('page-info').textContent = state.rows.length
      ? `Showing ${from}–${to}${state.next ? '' : ` of ${to}`} · page ${state.pageIndex + 1}`
      : '';
    $('next-page').disabled = !state.next;
    $('first-page').disabled = state.pageIndex === 0;
    if (focusId) {
      const row = body.querySelector(`tr[data-id="${CSS.escape(focusId)}"]`);
      if (row) row.focus();
    }
    markOpenRow();
    renderSelection();
  }

  function requestRow(r) {
    const check = h('input', {
      type: 'checkbox',
      class: 'row-check',
      'aria-label': `Select request ${r.id} (${r.domain})`,
      checked: state.selected.has(r.id),
    });
    check.addEventListener('click', (e) => e.stopPropagation());
    check.addEventListener('change', () => {
      if (check.checked) state.selected.add(r.id);
      else state.selected.delete(r.id);
      renderSelection();
    });
    const tr = h('tr', {
      tabindex: '0',
      class: 'req-row',
      dataset: { id: String(r.id), state: r.state },
      'aria-label': `Request ${r.id}: ${r.operation} ${r.domain}, ${STATE_LABEL[r.state] || r.state}`,
    },
    h('td', { class: 'col-check' }, check),
    h('td', { class: 'col-id', 'data-label': 'ID' }, `#${r.id}`),
    h('td', { class: 'col-domain', 'data-label': 'Domain' }, h('span', { class: 'domain' }, r.domain)),
    h('td', { class: 'col-op', 'data-label': 'Operation' }, r.operation),
    h('td', { class: 'col-state', 'data-label': 'State' }, stateBadge(r.state, r.failure)),
    h('td', { class: 'col-wait', 'data-label': 'Waiting on' }, r.waiting_on || '—'),
    h('td', { class: 'col-account', 'data-label': 'Account' }, accountName(r.account_id)),
    h('td', { class: 'col-time col-created', 'data-label': 'Created' }, timeEl(r.created_at)),
    h('td', { class: 'col-time', 'data-label': 'Updated' }, timeEl(r.updated_at)));
    tr.addEventListener('click', () => openRequest(r.id));
    tr.addEventListener('keydown', (e) => {
      if (e.target !== tr) return;
      if (e.key === 'Enter' || e.key === ' ') {
        e.preventDefault();
        openRequest(r.id);
      } else if (e.key === 'ArrowDown' && tr.nextElementSibling) {
        e.preventDefault();
        tr.nextElementSibling.focus();
      } else if (e.key === 'ArrowUp' && tr.previousElementSibling) {
        e.preventDefault();
        tr.previousElementSibling.focus();
      }
    });
    return tr;
  }

  function markOpenRow() {
    for (const tr of document.querySelectorAll('tr.req-row')) {
      const open = String(state.openId) === tr.dataset.id;
      tr.classList.toggle('is-open', open);
      if (open) tr.setAttribute('aria-current', 'true');
      else tr.removeAttribute('aria-current');
    }
  }

  function renderSelection() {
    // "Everything matching the filter" with no filter would be everything.
    const filtered = filterParams(state.filters).toString() !== '';
    show($('bulk-filter-action').closest('.bulk-part'), filtered);
    const n = state.selected.size;
    $('selected-count').textContent = n ? `${n} selected` : 'No rows selected';
    for (const b of $('bulk-selected-buttons').querySelectorAll('button')) b.disabled = n === 0;
    const page = $('select-page');
    page.checked = n > 0 && n === state.rows.length;
    page.indeterminate = n > 0 && n < state.rows.length;
  }

  function renderBulkControls() {
    const actions = isOperator() ? Object.keys(BULK_ACTIONS) : ['abort'];
    const box = clear($('bulk-selected-buttons'));
    for (const a of actions) {
      box.append(h('button', {
        type: 'button',
        class: `btn small${a === 'abort' ? ' danger' : ''}`,
        dataset: { bulk: a },
        onclick: () => bulkSelected(a),
      }, `${BULK_ACTIONS[a]} selected`));
    }
    const sel = clear($('bulk-filter-action'));
    for (const a of actions) sel.append(h('option', { value: a }, BULK_ACTIONS[a]));
    renderSelection();
  }

  function filterSummary() {
    const parts = state.filters
      .filter((f) => String(f.value || '').trim())
      .map((f) => {
        const def = FIELDS[f.field];
        const choice = def.choices ? (def.choices().find(([v]) => v === f.value) || [])[1] : null;
        return `${def.label} ${OP_LABEL[f.op]} “${choice || f.value}”`;
      });
    return parts.length ? parts.join(' and ') : 'no filter: every request you can see';
  }

  async function bulkSelected(action) {
    const ids = [...state.selected];
    if (!ids.length) return;
    const ok = await confirmDialog(
      `${BULK_ACTIONS[action]} ${ids.length} request${ids.length === 1 ? '' : 's'}?`,
      `${BULK_ACTIONS[action]} the selected request${ids.length === 1 ? '' : 's'}: ${ids.map((i) => `#${i}`).join(', ')}. Requests whose state does not allow it are left as they are.`,
      BULK_ACTIONS[action],
      action === 'abort',
    );
    if (ok) runBulk(action, { ids });
  }

  async function bulkFilter() {
    const action = $('bulk-filter-action').value;
    const ok = await confirmDialog(
      `${BULK_ACTIONS[action]} everything matching the filter?`,
      `${BULK_ACTIONS[action]} every request matching ${filterSummary()} (at most 1000 at once). Requests whose state does not allow it are left as they are.`,
      `${BULK_ACTIONS[action]} all matching`,
      action === 'abort',
    );
    if (!ok) return;
    const filter = Object.fromEntries(filterParams(state.filters));
    runBulk(action, { filter });
  }

  async function runBulk(action, target) {
    const out = $('bulk-result');
    try {
      const res = await api('POST', '/requests/bulk', { action, ...target });
      const done = (res.done || []).length;
      const failed = res.failed || [];
      clear(out);
      out.className = failed.length ? 'notice warn' : 'notice ok';
      out.append(h('strong', { class: 'bulk-counts' }, `${BULK_ACTIONS[action]}: ${done} done, ${failed.length} failed.`));
      if (failed.length) {
        const list = h('ul', { class: 'bulk-failures' });
        for (const f of failed.slice(0, 20)) {
          list.append(h('li', {}, `#${f.id}: ${errorText(f.error || {})}`));
        }
        if (failed.length > 20) list.append(h('li', {}, `… and ${failed.length - 20} more`));
        out.append(list);
      }
      out.hidden = false;
      // Shown at once: the rows acted on are no longer selected, even while
      // the list reloads.
      state.selected.clear();
      renderSelection();
      await loadRequests();
      if (state.openId) openDetail(state.openId, true);
    } catch (e) {
      out.className = 'notice error';
      out.textContent = errorText(e, `${BULK_ACTIONS[action]} (bulk)`);
      out.hidden = false;
    }
  }

  async function exportCsv() {
    const btn = $('export-csv');
    btn.disabled = true;
    try {
      // Fetched here and handed to the browser as a file, so that a refusal
      // shows in the page rather than as a downloaded error.
      const res = await api('GET', `/requests.csv?${listQuery()}`, undefined, true);
      const blob = await res.blob();
      const url = URL.createObjectURL(blob);
      const a = h('a', { href: url, download: 'requests.csv', class: 'sr-only' });
      document.body.append(a);
      a.click();
      a.remove();
      setTimeout(() => URL.revokeObjectURL(url), 10000);
    } catch (e) {
      setMessage($('list-error'), errorText(e, 'The CSV export'));
    } finally {
      btn.disabled = false;
    }
  }

  // ----- the in-page confirm dialog --------------------------------------------

  function confirmDialog(title, text, okLabel, danger) {
    const dlg = $('confirm');
    $('confirm-title').textContent = title;
    $('confirm-text').textContent = text;
    const ok = $('confirm-ok');
    ok.textContent = okLabel || 'Confirm';
    ok.className = `btn ${danger ? 'danger-solid' : 'primary'}`;
    const back = document.activeElement;
    return new Promise((resolve) => {
      const done = () => {
        dlg.removeEventListener('close', done);
        resolve(dlg.returnValue === 'ok');
        if (back && back.focus) back.focus();
      };
      dlg.returnValue = 'cancel';
      dlg.addEventListener('close', done);
      dlg.showModal();
      $('confirm-cancel').focus();
    });
  }

  // ----- the detail panel ------------------------------------------------------

  function openRequest(id) {
    const active = document.activeElement;
    if (active && active.matches && active.matches('tr.req-row')) state.lastFocusedRow = String(id);
    navigate({ openId: id });
  }

  function closeDetail() {
    navigate({ openId: null });
  }

  function closeDetailPanel() {
    state.detail = null;
    state.openForm = null;
    show($('detail'), false);
    document.body.classList.remove('detail-open');
    markOpenRow();
    if (state.lastFocusedRow) {
      const row = document.querySelector(`tr.req-row[data-id="${CSS.escape(state.lastFocusedRow)}"]`);
      if (row) row.focus();
      state.lastFocusedRow = null;
    }
  }

  async function openDetail(id, quiet) {
    const seq = ++state.detailSeq;
    const panel = $('detail');
    if (!quiet) {
      setMessage($('detail-error'), '');
      setMessage($('detail-status'), '');
    }
    const first = !state.detail || state.detail.id !== id;
    if (first) {
      state.openForm = null;
      $('detail-kicker').textContent = `Request #${id}`;
      $('detail-title').textContent = 'Loading…';
      clear($('detail-badges'));
      clear($('detail-content'));
      clear($('action-buttons'));
      clear($('action-form'));
    }
    show(panel, true);
    document.body.classList.add('detail-open');
    markOpenRow();
    if (first) panel.focus();
    try {
      const d = await api('GET', `/requests/${id}`);
      if (seq !== state.detailSeq || state.openId !== id) return;
      const prevActions = state.detail && state.detail.id === id ? state.detail.allowed_actions.join() : null;
      state.detail = d;
      renderDetail(d, prevActions !== d.allowed_actions.join());
    } catch (e) {
      if (seq !== state.detailSeq) return;
      if (first) $('detail-title').textContent = `Request #${id}`;
      setMessage($('detail-error'), errorText(e, 'Loading the request'));
    }
  }

  function section(title, ...content) {
    const id = `sec-${title.toLowerCase().replace(/[^a-z]+/g, '-')}`;
    return h('section', { class: 'detail-section', 'aria-labelledby': id, dataset: { section: title.toLowerCase() } },
      h('h3', { id }, title), ...content);
  }

  function dl(pairs) {
    const list = h('dl', { class: 'facts' });
    for (const [k, v] of pairs) {
      if (v === null || v === undefined || v === '') continue;
      list.append(h('div', { class: 'fact' }, h('dt', {}, k), h('dd', {}, v)));
    }
    return list;
  }

  /** Flattens params into dotted keys (contacts.owner.name) for reading. */
  function flatten(value, prefix, out) {
    if (value && typeof value === 'object' && !Array.isArray(value)) {
      const keys = Object.keys(value);
      if (!keys.length && prefix) out.push([prefix, '{}']);
      for (const k of keys) flatten(value[k], prefix ? `${prefix}.${k}` : k, out);
    } else if (Array.isArray(value)) {
      if (value.every((x) => x === null || typeof x !== 'object')) out.push([prefix, value.join(', ') || '—']);
      else value.forEach((x, i) => flatten(x, `${prefix}[${i}]`, out));
    } else {
      out.push([prefix, value === null ? '—' : String(value)]);
    }
    return out;
  }

  function money(cents) {
    const n = Number(cents) / 100;
    return Number.isFinite(n) ? n.toFixed(2) : String(cents);
  }

  /** Why a request waits in review, from the rules the server applies. */
  function reviewReason(d) {
    const p = d.params || {};
    if (p.premium) return 'It is a premium name: premium orders are always reviewed by an operator.';
    if (p.phase) return `It is a ${p.phase} order: orders in a launch phase are always reviewed.`;
    const a = state.accounts.find((x) => x.id === d.account_id) || (state.me && state.me.id === d.account_id ? state.me : null);
    if (a && a.review_all) return `The account ${a.name} has every order reviewed before it is processed.`;
    if (a) return `Its amount is over the account's review limit of ${(a.review_limit_cents / 100).toFixed(2)}.`;
    return 'Its amount is over the account\'s review limit, or the account has every order reviewed.';
  }

  function renderDetail(d, actionsChanged) {
    $('detail-kicker').textContent = `Request #${d.id} · ${d.operation}`;
    $('detail-title').textContent = d.domain;
    const badges = clear($('detail-badges'));
    badges.append(stateBadge(d.state, d.failure));
    if (d.waiting_on) badges.append(h('span', { class: 'badge plain' }, `waiting on ${d.waiting_on}`));

    if (actionsChanged || !$('action-buttons').childElementCount) renderActions(d);

    const c = clear($('detail-content'));
    if (d.missing && d.missing.length) {
      c.append(h('div', { class: 'callout warn', 'data-section': 'missing' },
        h('strong', {}, 'Missing information'),
        h('ul', { class: 'missing-list' }, d.missing.map((m) => h('li', {}, h('code', {}, m)))),
        (d.state === 'incomplete' || d.state === 'new') && (!isOperator() || d.account_id === state.me.id)
          ? h('a', { href: `#view=order&request=${d.id}`, class: 'btn small primary', id: 'fill-missing' }, 'Fill in what is missing')
          : null));
    }
    if (d.state === 'review') {
      c.append(h('div', { class: 'callout', 'data-section': 'review' },
        h('strong', {}, 'Why it needs review'), h('p', {}, reviewReason(d))));
    }
    if (d.last_error && d.state === 'limbo') {
      c.append(h('div', { class: 'callout danger' }, h('strong', {}, 'Last error'), h('p', {}, d.last_error)));
    }
    c.append(section('Summary', dl([
      ['Account', isOperator() ? accountName(d.account_id) : null],
      ['State', stateBadge(d.state, d.failure)],
      ['Waiting on', d.waiting_on],
      ['Failure', d.failure],
      ['Order status', d.order_status],
      ['Task status', d.task_status],
      ['Runs at', d.exec_date ? timeEl(d.exec_date) : null],
      ['Depends on', d.depends_on ? `#${d.depends_on}` : null],
      ['Attempts', d.attempts ? String(d.attempts) : null],
      ['Last error', d.state !== 'limbo' ? d.last_error : null],
      ['Created', timeEl(d.created_at)],
      ['Updated', timeEl(d.updated_at)],
    ])));

    const params = flatten(d.params || {}, '', []);
    c.append(section('Parameters', params.length
      ? dl(params.map(([k, v]) => [k, v]))
      : h('p', { class: 'muted' }, 'No parameters.')));

    const notes = d.annotations || [];
    c.append(section(`Annotations`, notes.length
      ? h('ul', { class: 'annotations' }, notes.map((a) => h('li', {},
        h('p', { class: 'note-text' }, a.text),
        h('p', { class: 'muted small' }, `${a.actor} · `, timeEl(a.at)))))
      : h('p', { class: 'muted' }, 'No annotations.')));

    const hist = d.history || [];
    c.append(section('History', h('ol', { class: 'timeline' }, hist.map((t) => h('li', { dataset: { to: t.to } },
      h('div', { class: 'tl-head' },
        t.from ? stateBadge(t.from) : h('span', { class: 'badge plain' }, 'created'),
        h('span', { class: 'arrow', 'aria-label': 'to' }, '→'),
        stateBadge(t.to)),
      h('p', { class: 'tl-meta muted small' }, `${t.event} by ${t.actor} · `, timeEl(t.at)),
      t.reason ? h('p', { class: 'tl-reason' }, t.reason) : null)))));

    const items = d.invoice_items || [];
    c.append(section('Invoice items', items.length
      ? h('table', { class: 'mini' },
        h('thead', {}, h('tr', {}, h('th', { scope: 'col' }, 'Kind'), h('th', { scope: 'col' }, 'Description'), h('th', { scope: 'col', class: 'num' }, 'Amount'))),
        h('tbody', {}, items.map((it) => h('tr', {},
          h('td', {}, it.kind), h('td', {}, it.description), h('td', { class: 'num' }, money(it.amount_cents))))),
        h('tfoot', {}, h('tr', {},
          h('th', { scope: 'row', colspan: '2' }, 'Total'),
          h('td', { class: 'num total' }, money(items.reduce((sum, it) => sum + Number(it.amount_cents || 0), 0))))))
      : h('p', { class: 'muted' }, 'No invoice items.')));

    const ns = d.notifications || [];
    c.append(section('Notifications', ns.length
      ? h('ul', { class: 'plain-list' }, ns.map((n) => h('li', {},
        h('code', {}, notificationType(n)), ' ', n.message, ' ',
        h('span', { class: 'muted small' }, n.read_at ? '(read)' : '(unread)', ' · ', timeEl(n.created_at)))))
      : h('p', { class: 'muted' }, 'No notifications.')));
  }

  function renderActions(d) {
    const box = clear($('action-buttons'));
    const acts = d.allowed_actions || [];
    if (state.openForm && !acts.includes(state.openForm)) state.openForm = null;
    for (const a of acts) {
      const cls = a === 'abort' ? 'danger' : (a === 'authorise' || a === 'submit' || a === 'retry') ? 'primary' : '';
      box.append(h('button', {
        type: 'button',
        class: `btn small ${cls}`,
        dataset: { action: a },
        'aria-expanded': ['send-back', 'abort', 'resolve', 'annotate'].includes(a) ? String(state.openForm === a) : null,
        onclick: () => onAction(a),
      }, ACTION_LABEL[a] || a));
    }
    if (!acts.length) box.append(h('p', { class: 'muted' }, 'No actions in this state.'));
    renderActionForm();
  }

  function onAction(a) {
    if (a === 'submit' || a === 'authorise' || a === 'retry') {
      doAction(a, {});
      return;
    }
    state.openForm = state.openForm === a ? null : a;
    for (const b of $('action-buttons').querySelectorAll('button[aria-expanded]')) {
      b.setAttribute('aria-expanded', String(b.dataset.action === state.openForm));
    }
    renderActionForm();
    const first = $('action-form').querySelector('textarea, select, input');
    if (first) first.focus();
  }

  function field(label, control, hint) {
    const id = `af-${control.name}`;
    control.id = id;
    return h('div', { class: 'form-field' }, h('label', { for: id }, label), control,
      hint ? h('p', { class: 'muted small', id: `${id}-hint` }, hint) : null);
  }

  function renderActionForm() {
    const box = clear($('action-form'));
    const a = state.openForm;
    if (!a) return;
    const form = h('form', { class: 'action-form card inset', dataset: { form: a }, novalidate: true });
    let submitLabel = ACTION_LABEL[a];
    if (a === 'send-back') {
      form.append(field('Annotation (required)', h('textarea', { name: 'annotation', rows: '3' }),
        'Tell the owner what to fix; it is kept in the request\'s history.'));
      submitLabel = 'Send back to incomplete';
    } else if (a === 'abort') {
      form.append(field('Reason (optional)', h('textarea', { name: 'reason', rows: '2' })));
      submitLabel = 'Abort request';
    } else if (a === 'resolve') {
      const outcome = h('select', { name: 'outcome' },
        h('option', { value: 'finished' }, 'finished: the work was done'),
        h('option', { value: 'failed' }, 'failed'));
      const failure = h('select', { name: 'failure' },
        ['registry', 'invalid', 'declined', 'aborted'].map((f) => h('option', { value: f }, f)));
      const failureField = field('Failure', failure);
      failureField.hidden = true;
      outcome.addEventListener('change', () => { failureField.hidden = outcome.value !== 'failed'; });
      form.append(field('Outcome', outcome), failureField, field('Note (optional)', h('textarea', { name: 'note', rows: '2' })));
      submitLabel = 'Resolve';
    } else if (a === 'annotate') {
      form.append(field('Annotation', h('textarea', { name: 'text', rows: '3' })));
      submitLabel = 'Add annotation';
    }
    form.append(h('div', { class: 'btn-row' },
      h('button', { type: 'submit', class: `btn small ${a === 'abort' ? 'danger-solid' : 'primary'}` }, submitLabel),
      h('button', { type: 'button', class: 'btn small ghost', onclick: () => onAction(a) }, 'Cancel')));
    form.addEventListener('submit', (e) => {
      e.preventDefault();
      const body = {};
      for (const el of form.elements) {
        if (!el.name || el.closest('[hidden]')) continue;
        const v = el.value.trim();
        // Required fields go to the server even when empty, so that the
        // refusal is the server's own words.
        if (v || (a === 'send-back' && el.name === 'annotation') || (a === 'annotate' && el.name === 'text')) body[el.name] = v;
      }
      doAction(a, body, form);
    });
    box.append(form);
  }

  async function doAction(action, body, form) {
    const d = state.detail;
    if (!d) return;
    setMessage($('detail-error'), '');
    setMessage($('detail-status'), '');
    const buttons = $('detail').querySelectorAll('#action-buttons button, #action-form button');
    for (const b of buttons) b.disabled = true;
    if (form) for (const el of form.elements) el.removeAttribute('aria-invalid');
    try {
      const res = await api('POST', `/requests/${d.id}/${action}`, body);
      state.openForm = null;
      state.detail = res;
      renderDetail(res, true);
      setMessage($('detail-status'), `${ACTION_LABEL[action]}: done. The request is now ${STATE_LABEL[res.state] || res.state}.`);
      loadRequests();
      refreshUnread();
    } catch (e) {
      setMessage($('detail-error'), errorText(e, ACTION_LABEL[action]));
      if (form && e.field) {
        const el = form.elements.namedItem(e.field);
        if (el && el.setAttribute) {
          el.setAttribute('aria-invalid', 'true');
          el.setAttribute('aria-errormessage', 'detail-error');
          el.focus();
        }
      }
    } finally {
      for (const b of buttons) b.disabled = false;
    }
  }

  // ----- notifications ---------------------------------------------------------

  async function loadNotifications(more) {
    show($('view-notifications'), true);
    const status = $('notification-status').value;
    const list = $('notification-list');
    try {
      const after = more ? state.notificationsNext : null;
      const q = new URLSearchParams({ status, limit: String(PAGE_SIZE) });
      if (after) q.set('after', after);
      const page = await api('GET', `/notifications?${q}`);
      if (!more) clear(list);
      for (const n of page.items || []) list.append(notificationItem(n));
      state.notificationsNext = page.next || null;
      show($('notifications-more'), !!state.notificationsNext);
      show($('notifications-empty'), list.childElementCount === 0);
      setMessage($('notifications-error'), '');
    } catch (e) {
      setMessage($('notifications-error'), errorText(e, 'Loading the notifications'));
    }
    refreshUnread();
  }

  /** The seed's notification type path, e.g. domain/create/success. */
  function notificationType(n) {
    return [n.type, n.action, n.status].filter(Boolean).join('/');
  }

  function notificationItem(n) {
    const kind = String(n.status || '').replace(/[^a-z]/g, '');
    const li = h('li', { class: `note card kind-${kind}`, dataset: { id: String(n.id) } },
      h('div', { class: 'note-main' },
        h('p', { class: 'note-type' },
          h('code', {}, notificationType(n)),
          h('span', { class: `badge status-${kind}` }, n.status),
          n.read_at ? h('span', { class: 'badge plain' }, 'read') : null),
        h('p', { class: 'note-message' }, n.message),
        h('p', { class: 'muted small' },
          n.domain ? `${n.domain} · ` : '',
          timeEl(n.created_at),
          n.request_id ? ' · ' : '',
          n.request_id ? h('a', {
            href: routeHash('requests', state.filters, n.request_id),
            onclick: (e) => { e.preventDefault(); navigate({ view: 'requests', openId: n.request_id }); },
          }, `request #${n.request_id}`) : null)));
    if (!n.read_at) {
      li.append(h('button', {
        type: 'button',
        class: 'btn small',
        'aria-label': `Mark notification ${n.id} read`,
        onclick: async (e) => {
          const b = e.currentTarget;
          b.disabled = true;
          try {
            await api('DELETE', `/notification/${n.id}`);
            if ($('notification-status').value === 'unread') li.remove();
            else loadNotifications();
            show($('notifications-empty'), $('notification-list').childElementCount === 0);
            toast('Marked read.');
            refreshUnread();
          } catch (err) {
            b.disabled = false;
            setMessage($('notifications-error'), errorText(err, 'Marking the notification read'));
          }
        },
      }, 'Mark read'));
    }
    return li;
  }

  async function refreshUnread() {
    try {
      const page = await api('GET', '/notifications?status=unread&limit=500');
      const n = (page.items || []).length;
      const c = $('unread-count');
      c.textContent = page.next ? '500+' : String(n);
      c.hidden = n === 0;
      c.setAttribute('aria-label', `${c.textContent} unread`);
    } catch (_) {
      // The badge is a convenience; the list shows errors itself.
    }
  }

  // ----- scheduled tasks -------------------------------------------------------

  async function loadScheduled() {
    show($('view-scheduled'), true);
    try {
      const page = await api('GET', '/scheduled');
      const body = clear($('scheduled-body'));
      for (const r of page.items || []) {
        const tr = h('tr', {
          tabindex: '0',
          class: 'req-row',
          dataset: { id: String(r.id) },
          'aria-label': `Scheduled request ${r.id}: ${r.operation} ${r.domain}`,
        },
        h('td', { 'data-label': 'ID' }, `#${r.id}`),
        h('td', { 'data-label': 'Domain' }, h('span', { class: 'domain' }, r.domain)),
        h('td', { 'data-label': 'Operation' }, r.operation),
        h('td', { 'data-label': 'Runs at' }, timeEl(r.exec_date)),
        h('td', { class: 'col-account', 'data-label': 'Account' }, accountName(r.account_id)),
        h('td', { 'data-label': 'Created' }, timeEl(r.created_at)));
        tr.addEventListener('click', () => navigate({ openId: r.id }));
        tr.addEventListener('keydown', (e) => {
          if (e.key === 'Enter' && e.target === tr) navigate({ openId: r.id });
        });
        body.append(tr);
      }
      show($('scheduled-empty'), !(page.items || []).length);
      setMessage($('scheduled-error'), '');
    } catch (e) {
      setMessage($('scheduled-error'), errorText(e, 'Loading the scheduled tasks'));
    }
  }

  // ----- views -------------------------------------------------------------------

  function renderTabs() {
    for (const v of EXTRA_VIEWS) if (v.section && v.id !== state.view) show(v.section, false);
    for (const t of document.querySelectorAll('nav.tabs a[data-extra]')) {
      if (t.dataset.view === state.view) t.setAttribute('aria-current', 'page');
      else t.removeAttribute('aria-current');
    }
    for (const v of CORE_VIEWS) {
      show($(`view-${v}`), state.view === v);
      const tab = $(`tab-${v}`);
      tab.href = routeHash(v, v === 'requests' ? state.filters : state.filters, null);
      if (state.view === v) tab.setAttribute('aria-current', 'page');
      else tab.removeAttribute('aria-current');
    }
  }

  // ----- self-refresh: follow the event feed ---------------------------------------

  async function startPolling() {
    stopPolling();
    // Start from the end of the feed: older events are already on screen.
    let cursor = '0';
    try {
      const page = await api('GET', '/events?after=latest');
      cursor = page.next || cursor;
    } catch (_) {
      // Polling starts from the beginning; it catches up on its own.
    }
    if (!state.me) return;
    state.eventCursor = cursor;
    refreshUnread();
    state.pollTimer = setInterval(poll, POLL_MS);
  }

  function stopPolling() {
    clearInterval(state.pollTimer);
    state.pollTimer = null;
  }

  async function poll() {
    if (state.polling || !state.me || document.hidden || state.eventCursor === null) return;
    state.polling = true;
    try {
      const page = await api('GET', `/events?after=${state.eventCursor}&limit=500`);
      const items = page.items || [];
      if (!items.length) return;
      state.eventCursor = page.next || state.eventCursor;
      const touched = new Set(items.map((e) => e.request_id));
      if (state.view === 'requests') await loadRequests();
      else if (state.view === 'scheduled') await loadScheduled();
      else if (state.view === 'notifications' && $('notification-status').value !== 'read') await loadNotifications();
      if (state.openId && touched.has(state.openId)) await openDetail(state.openId, true);
      refreshUnread();
    } catch (_) {
      // A missed poll is retried on the next tick.
    } finally {
      state.polling = false;
    }
  }

  // ----- wiring ------------------------------------------------------------------------

  function isTyping(el) {
    return el && (el.tagName === 'INPUT' || el.tagName === 'TEXTAREA' || el.tagName === 'SELECT' || el.isContentEditable);
  }

  function wire() {
    $('signin-form').addEventListener('submit', async (e) => {
      e.preventDefault();
      const name = $('name').value.trim();
      const password = $('password').value;
      for (const el of [$('name'), $('password')]) el.removeAttribute('aria-invalid');
      const empty = !name ? $('name') : (!password ? $('password') : null);
      if (empty) {
        empty.setAttribute('aria-invalid', 'true');
        setMessage($('signin-error'), !name ? 'Enter your account name.' : 'Enter your password.');
        empty.focus();
        return;
      }
      $('signin-button').disabled = true;
      try {
        await signIn(name, password);
      } catch (err) {
        state.me = null;
        state.csrf = null;
        let text = errorText(err, 'Signing in');
        if (err.status === 401) text = 'That name and password do not match an account. Check them and try again.';
        else if (err.status === 429) text = `Too many failed sign-ins: ${err.message}`;
        setMessage($('signin-error'), text);
        $('password').select();
      } finally {
        $('signin-button').disabled = false;
      }
    });
    $('set-password-form').addEventListener('submit', async (e) => {
      e.preventDefault();
      const token = $('set-password-form').dataset.token;
      try {
        const res = await api('POST', '/password-link', { token, password: $('new-password').value });
        await enter(res);
        toast('Your password is set.');
      } catch (err) {
        setMessage($('set-password-error'), errorText(err, 'Setting the password'));
        $('new-password').setAttribute('aria-invalid', 'true');
        $('new-password').focus();
      }
    });
    $('sign-out').addEventListener('click', () => signOut());
    for (const v of ['requests', 'notifications', 'scheduled']) {
      $(`tab-${v}`).addEventListener('click', (e) => {
        e.preventDefault();
        navigate({ view: v, openId: null });
      });
    }
    $('add-filter').addEventListener('click', () => addFilter());
    $('clear-filters').addEventListener('click', () => {
      state.filters = [];
      navigate({ filters: [] });
    });
    $('quick-attention').addEventListener('click', () => quickFilter('needs_attention'));
    $('quick-missing').addEventListener('click', () => quickFilter('missing_information'));
    $('next-page').addEventListener('click', () => {
      if (!state.next) return;
      state.pageCursors[state.pageIndex + 1] = state.next;
      state.pageIndex += 1;
      state.selected.clear();
      loadRequests();
    });
    $('first-page').addEventListener('click', () => {
      state.pageIndex = 0;
      state.selected.clear();
      loadRequests();
    });
    $('select-page').addEventListener('change', (e) => {
      if (e.target.checked) for (const r of state.rows) state.selected.add(r.id);
      else state.selected.clear();
      for (const c of document.querySelectorAll('#requests-body .row-check')) {
        c.checked = state.selected.has(Number(c.closest('tr').dataset.id));
      }
      renderSelection();
    });
    $('bulk-filter-go').addEventListener('click', bulkFilter);
    $('export-csv').addEventListener('click', exportCsv);
    $('detail-close').addEventListener('click', closeDetail);
    $('notification-status').addEventListener('change', () => loadNotifications());
    $('notifications-more').addEventListener('click', () => loadNotifications(true));

    document.addEventListener('keydown', (e) => {
      if (!state.me) return;
      if ($('confirm').open) return; // the dialog handles its own keys
      if (e.key === '/' && !isTyping(document.activeElement) && !e.ctrlKey && !e.metaKey && !e.altKey) {
        e.preventDefault();
        if (state.view !== 'requests') navigate({ view: 'requests', openId: null });
        if (!state.filters.length) addFilter();
        else focusFilterValue();
      } else if (e.key === 'Escape' && state.openId) {
        e.preventDefault();
        closeDetail();
      }
    });
    window.addEventListener('popstate', applyRoute);
    window.addEventListener('hashchange', applyRoute);
    document.addEventListener('visibilitychange', () => { if (!document.hidden) poll(); });
  }

  async function boot() {
    wire();
    const link = /^#set-password=([^&]+)/.exec(location.hash);
    if (link) {
      showSetPassword(decodeURIComponent(link[1]));
      return;
    }
    try {
      // A new tab of a signed-in browser: the cookie says who it is.
      await enter(await api('GET', '/session'));
    } catch (e) {
      signedOut(e.status === 401 || e.status === 0 ? '' : errorText(e, 'Signing in'));
    }
  }

  // The regdesk API that views in other files use.
  window.regdesk = {
    api, h, clear, show, setMessage, timeEl, fmtTime, stateBadge, errorText, toast, confirmDialog,
    registerView, setViewParams, navigate, isOperator, accountName,
    me: () => state.me,
    accounts: () => state.accounts,
    refreshAccounts: async () => {
      if (!isOperator()) return;
      state.accounts = (await api('GET', '/accounts')).items || [];
    },
  };

  // After every deferred script: the other files' views are registered.
  document.addEventListener('DOMContentLoaded', boot);
})();
