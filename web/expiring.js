// The Expiring view: the caller's domains by expiry date, with their
// lifecycle, the auto-renew switch and the renew and restore actions (an
// operator sees every account's and can renew all that a filter selects).
// Self-contained: it adds its own tab and section, and talks to the JSON API
// with the signed-in token. API strings only ever become text nodes.
(function () {
  'use strict';

  const TOKEN_KEY = 'regdesk.token';
  const LIFECYCLES = ['', 'active', 'expired', 'redemption', 'pending_delete'];
  const DAY = 24 * 60 * 60 * 1000;
  let me = null;

  function el(tag, attrs, ...children) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (k.startsWith('on')) e.addEventListener(k.slice(2), v);
      else if (v !== false && v !== undefined && v !== null) e.setAttribute(k, v === true ? '' : v);
    }
    for (const c of children) e.append(c instanceof Node ? c : document.createTextNode(String(c)));
    return e;
  }

  async function api(method, path, body) {
    const headers = {};
    const token = sessionStorage.getItem(TOKEN_KEY);
    if (token) headers.Authorization = `Bearer ${token}`;
    const init = { method, headers, credentials: 'same-origin' };
    if (body !== undefined) {
      headers['Content-Type'] = 'application/json';
      init.body = JSON.stringify(body);
    }
    const res = await fetch(`/api/v1${path}`, init);
    const text = await res.text();
    let data = null;
    try { data = text ? JSON.parse(text) : null; } catch (_) { data = null; }
    if (!res.ok) {
      const err = (data && data.error) || {};
      const msg = err.message || `HTTP ${res.status}`;
      throw new Error(err.field && !msg.startsWith(err.field) ? `${err.field}: ${msg}` : msg);
    }
    return data;
  }

  const ids = {
    section: 'view-expiring', tab: 'tab-expiring', days: 'expiring-days', lifecycle: 'expiring-lifecycle',
    body: 'expiring-body', empty: 'expiring-empty', error: 'expiring-error', status: 'expiring-status', bulk: 'expiring-bulk',
  };
  const $ = (id) => document.getElementById(id);

  function say(text, isError) {
    const target = $(isError ? ids.error : ids.status);
    const other = $(isError ? ids.status : ids.error);
    target.textContent = text || '';
    target.hidden = !text;
    other.hidden = true;
  }

  function build() {
    const days = el('select', { id: ids.days });
    for (const [v, label] of [['30', '30 days'], ['90', '90 days'], ['365', 'a year'], ['', 'any time']]) {
      days.append(el('option', { value: v, selected: v === '90' }, label));
    }
    const lifecycle = el('select', { id: ids.lifecycle });
    for (const v of LIFECYCLES) lifecycle.append(el('option', { value: v }, v ? v.replace('_', ' ') : 'any lifecycle'));
    days.addEventListener('change', load);
    lifecycle.addEventListener('change', load);
    const bulk = el('button', { type: 'button', class: 'btn small', id: ids.bulk, hidden: true, onclick: renewAll }, 'Renew all shown');
    const section = el('section', { id: ids.section, class: 'view', hidden: true, 'aria-labelledby': 'expiring-title' },
      el('div', { class: 'view-head' },
        el('h1', { id: 'expiring-title' }, 'Expiring'),
        el('div', { class: 'view-head-actions' },
          el('label', { for: ids.days, class: 'muted' }, 'Expiring within'), days,
          el('label', { for: ids.lifecycle, class: 'muted' }, 'Lifecycle'), lifecycle, bulk)),
      el('p', { id: ids.error, class: 'error', role: 'alert', hidden: true }),
      el('p', { id: ids.status, class: 'notice', role: 'status', hidden: true }),
      el('div', { class: 'table-wrap card' },
        el('table', { class: 'grid', id: 'expiring' },
          el('caption', { class: 'sr-only' }, 'Domains by expiry date'),
          el('thead', {}, el('tr', {},
            ...['Domain', 'Expires', 'Lifecycle', 'Next step', 'Auto-renew', 'Account', 'Actions']
              .map((t) => el('th', { scope: 'col' }, t)))),
          el('tbody', { id: ids.body })),
        el('p', { id: ids.empty, class: 'empty', hidden: true }, 'No domain expires in this window.')));
    $('main').append(section);
    const tabs = document.querySelector('nav.tabs');
    if (tabs && !$(ids.tab)) tabs.append(el('a', { href: '#', id: ids.tab }, 'Expiring'));
  }

  // The desk's clock, which a test clock may have moved away from this
  // browser's.
  let deskNow = Date.now();

  function filterQuery() {
    const q = new URLSearchParams({ limit: '500' });
    const days = $(ids.days).value;
    if (days) q.set('expiring_before', new Date(deskNow + Number(days) * DAY).toISOString().slice(0, 19) + 'Z');
    if ($(ids.lifecycle).value) q.set('lifecycle', $(ids.lifecycle).value);
    return q;
  }

  function row(d) {
    const actions = el('div', { class: 'btn-row' });
    if (d.lifecycle === 'active' || d.lifecycle === 'expired') {
      actions.append(el('button', { type: 'button', class: 'btn small', onclick: () => order(d, 'renew') }, 'Renew'));
    }
    if (d.lifecycle === 'redemption') {
      actions.append(el('button', { type: 'button', class: 'btn small', onclick: () => order(d, 'restore') }, 'Restore'));
    }
    const toggle = el('input', { type: 'checkbox', 'aria-label': `Auto-renew ${d.name}`, checked: !!d.auto_renew });
    toggle.addEventListener('change', () => switchAutoRenew(d, toggle));
    return el('tr', {},
      el('td', {}, d.name),
      el('td', {}, el('time', { datetime: d.expires_at }, String(d.expires_at || '').replace('T', ' ').slice(0, 16))),
      el('td', {}, el('span', { class: `badge lifecycle-${d.lifecycle}` }, String(d.lifecycle || '').replace('_', ' '))),
      el('td', { class: 'muted' }, d.next_step ? `${d.next_step} · ${String(d.next_step_at || '').slice(0, 10)}` : '—'),
      el('td', {}, toggle),
      el('td', { class: 'muted' }, `#${d.account_id}`),
      el('td', {}, actions));
  }

  async function load() {
    const body = $(ids.body);
    try {
      if (!me) me = await api('GET', '/me');
      const clock = await api('GET', '/clock');
      if (clock && Number.isFinite(clock.now_ms)) deskNow = clock.now_ms;
      $(ids.bulk).hidden = !(me && me.role === 'operator');
      const page = await api('GET', `/domains?${filterQuery()}`);
      const items = (page && page.items) || [];
      items.sort((a, b) => String(a.expires_at).localeCompare(String(b.expires_at)));
      while (body.firstChild) body.removeChild(body.firstChild);
      for (const d of items) body.append(row(d));
      $(ids.empty).hidden = items.length > 0;
      say('', true);
    } catch (e) {
      say(`Loading the domains failed: ${e.message}`, true);
    }
  }

  async function switchAutoRenew(d, toggle) {
    try {
      await api('PATCH', `/domains/${encodeURIComponent(d.name)}`, { auto_renew: toggle.checked });
      say(`Auto-renew of ${d.name} is ${toggle.checked ? 'on' : 'off'}.`);
    } catch (e) {
      toggle.checked = !toggle.checked;
      say(`Switching auto-renew failed: ${e.message}`, true);
    }
  }

  async function order(d, operation) {
    try {
      const r = await api('POST', '/requests', { domain: d.name, operation, submit: true });
      say(`${operation} of ${d.name} ordered: request ${r.id} is ${r.state}.`);
      await load();
    } catch (e) {
      say(`The ${operation} of ${d.name} failed: ${e.message}`, true);
    }
  }

  async function renewAll() {
    const q = filterQuery();
    const body = {};
    if (q.get('expiring_before')) body.expiring_before = q.get('expiring_before');
    if (q.get('lifecycle')) body.lifecycle = q.get('lifecycle');
    if (!window.confirm('Renew every domain shown for a year?')) return;
    try {
      const r = await api('POST', '/domains/renew', body);
      say(`Renewals ordered: ${r.placed.length}; refused: ${r.refused.length}.`);
      await load();
    } catch (e) {
      say(`The bulk renewal failed: ${e.message}`, true);
    }
  }

  function open(e) {
    if (e) e.preventDefault();
    for (const v of document.querySelectorAll('main > .view')) v.hidden = v.id !== ids.section;
    const detail = $('detail');
    if (detail) detail.hidden = true;
    for (const a of document.querySelectorAll('nav.tabs a')) {
      if (a.id === ids.tab) a.setAttribute('aria-current', 'page');
      else a.removeAttribute('aria-current');
    }
    load();
  }

  function init() {
    if (!$('main')) return;
    build();
    $(ids.tab).addEventListener('click', open);
    // While this view is open, the main script's refresh may show its own
    // view again: this one keeps the page, until another tab is chosen or
    // the user signs out.
    const keep = new MutationObserver(() => {
      const mine = $(ids.section);
      if (mine.hidden) return;
      const topbar = $('topbar');
      if (topbar && topbar.hidden) { mine.hidden = true; return; }
      for (const v of document.querySelectorAll('main > .view')) if (v !== mine && !v.hidden) v.hidden = true;
    });
    keep.observe(document.body, { attributes: true, subtree: true, attributeFilter: ['hidden'] });
    // Another tab: the main script shows its view; this one steps aside
    // first (in the capture phase, before the main script's handler runs).
    const tabs = document.querySelector('nav.tabs');
    if (tabs) {
      tabs.addEventListener('click', (e) => {
        const link = e.target.closest('a');
        if (!link || link.id === ids.tab) return;
        $(ids.section).hidden = true;
        $(ids.tab).removeAttribute('aria-current');
      }, true);
    }
  }

  if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', init);
  else init();
})();
