// The Expiring view: the caller's domains by expiry date, with their
// lifecycle, the auto-renew switch and the renew and restore actions (an
// operator sees every account's and can renew all that a filter selects).
// A view registered with the desk (window.regdesk), which signs its calls in
// with the session. API strings only ever become text nodes.
(function () {
  'use strict';

  const R = window.regdesk;
  const el = R.h;
  const api = R.api;
  const LIFECYCLES = ['', 'active', 'expired', 'redemption', 'pending_delete'];
  const DAY = 24 * 60 * 60 * 1000;

  const ids = {
    days: 'expiring-days', lifecycle: 'expiring-lifecycle',
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

  function build(section, params) {
    const days = el('select', { id: ids.days });
    const chosen = params.get('days') ?? '90';
    for (const [v, label] of [['30', '30 days'], ['90', '90 days'], ['365', 'a year'], ['', 'any time']]) {
      days.append(el('option', { value: v, selected: v === chosen }, label));
    }
    const lifecycle = el('select', { id: ids.lifecycle });
    for (const v of LIFECYCLES) {
      lifecycle.append(el('option', { value: v, selected: v === (params.get('lifecycle') || '') }, v ? v.replace('_', ' ') : 'any lifecycle'));
    }
    const changed = () => {
      R.setViewParams({ days: days.value === '90' ? '' : days.value || 'any', lifecycle: lifecycle.value });
      load();
    };
    days.addEventListener('change', changed);
    lifecycle.addEventListener('change', changed);
    const bulk = el('button', { type: 'button', class: 'btn small', id: ids.bulk, hidden: !R.isOperator(), onclick: renewAll }, 'Renew all shown');
    R.clear(section).append(
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
            ...['Domain', 'Expires', 'Lifecycle', 'Next step', 'Auto-renew', ...(R.isOperator() ? ['Account'] : []), 'Actions']
              .map((t) => el('th', { scope: 'col' }, t)))),
          el('tbody', { id: ids.body })),
        el('p', { id: ids.empty, class: 'empty', hidden: true }, 'No domain expires in this window.')));
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
      el('td', {}, R.timeEl(d.expires_at)),
      el('td', {}, el('span', { class: `badge lifecycle-${d.lifecycle}` }, String(d.lifecycle || '').replace('_', ' '))),
      el('td', { class: 'muted' }, d.next_step ? `${d.next_step} · ${String(d.next_step_at || '').slice(0, 10)}` : '—'),
      el('td', {}, toggle),
      R.isOperator() ? el('td', { class: 'muted' }, R.accountName(d.account_id)) : null,
      el('td', {}, actions));
  }

  async function load() {
    const body = $(ids.body);
    try {
      const clock = await api('GET', '/clock');
      if (clock && Number.isFinite(clock.now_ms)) deskNow = clock.now_ms;
      const page = await api('GET', `/domains?${filterQuery()}`);
      const items = (page && page.items) || [];
      items.sort((a, b) => String(a.expires_at).localeCompare(String(b.expires_at)));
      while (body.firstChild) body.removeChild(body.firstChild);
      for (const d of items) body.append(row(d));
      $(ids.empty).hidden = items.length > 0;
      say('', true);
    } catch (e) {
      say(R.errorText(e, 'Loading the domains'), true);
    }
  }

  async function switchAutoRenew(d, toggle) {
    try {
      await api('PATCH', `/domains/${encodeURIComponent(d.name)}`, { auto_renew: toggle.checked });
      say(`Auto-renew of ${d.name} is ${toggle.checked ? 'on' : 'off'}.`);
    } catch (e) {
      toggle.checked = !toggle.checked;
      say(R.errorText(e, 'Switching auto-renew'), true);
    }
  }

  async function order(d, operation) {
    try {
      const r = await api('POST', '/requests', { domain: d.name, operation, submit: true });
      say(`${operation} of ${d.name} ordered: request ${r.id} is ${r.state}.`);
      await load();
    } catch (e) {
      say(R.errorText(e, `The ${operation} of ${d.name}`), true);
    }
  }

  async function renewAll() {
    const q = filterQuery();
    const body = {};
    if (q.get('expiring_before')) body.expiring_before = q.get('expiring_before');
    if (q.get('lifecycle')) body.lifecycle = q.get('lifecycle');
    if (!(await R.confirmDialog('Renew all shown', 'Renew every domain shown for a year?', 'Renew'))) return;
    try {
      const r = await api('POST', '/domains/renew', body);
      say(`Renewals ordered: ${r.placed.length}; refused: ${r.refused.length}.`);
      await load();
    } catch (e) {
      say(R.errorText(e, 'The bulk renewal'), true);
    }
  }

  R.registerView({
    id: 'expiring',
    label: 'Expiring',
    load: (section, params) => {
      build(section, params);
      return load();
    },
  });
})();
