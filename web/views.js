// regdesk's views beside the work requests: ordering (and finishing an
// incomplete request), the portfolio, charges, the account's own settings,
// and for operators the accounts and the mail outbox. Each registers with
// app.js (window.regdesk) and keeps its filter in the URL. API strings reach
// the page only as text.
'use strict';

(() => {
  const R = window.regdesk;
  const { api, h, clear, show, setMessage, timeEl, errorText, toast } = R;

  const OPERATIONS = [
    ['create', 'Register a new domain'],
    ['transfer', 'Transfer a domain in (needs its auth code)'],
    ['renew', 'Renew a domain'],
    ['update', 'Update contacts, name servers or the transfer lock'],
    ['release', 'Release a domain'],
    ['delete', 'Delete a domain'],
    ['hold', 'Put a domain on hold'],
    ['privacy', 'Turn WHOIS privacy on or off'],
    ['backorder', 'Backorder a name that is taken'],
  ];
  // Which fields each operation shows.
  const FIELDS_OF = {
    create: ['period', 'owner', 'nameservers', 'premium', 'phase'],
    transfer: ['auth_code', 'period', 'owner', 'nameservers'],
    renew: ['period'],
    update: ['owner', 'nameservers', 'transfer_lock'],
    release: [],
    delete: [],
    hold: [],
    privacy: ['privacy'],
    backorder: ['owner'],
  };
  const NEEDS_OWNER = ['create', 'transfer', 'backorder'];

  function money(cents) {
    return (Number(cents) / 100).toFixed(2);
  }

  function heading(id, title, sub) {
    return h('div', { class: 'view-head' },
      h('h1', { id: `${id}-title` }, title),
      sub ? h('p', { class: 'muted' }, sub) : null);
  }

  /** A labelled control with a place for its error, tied by ids. */
  function field(id, label, control, hint) {
    control.id = id;
    const described = [hint ? `${id}-hint` : null, `${id}-error`].filter(Boolean).join(' ');
    control.setAttribute('aria-describedby', described);
    return h('div', { class: 'form-field', dataset: { field: id } },
      h('label', { for: id }, label), control,
      hint ? h('p', { class: 'muted small', id: `${id}-hint` }, hint) : null,
      h('p', { class: 'error field-error', id: `${id}-error`, hidden: true }));
  }

  function fieldError(form, id, text) {
    const el = form.querySelector(`#${CSS.escape(id)}`);
    const err = form.querySelector(`#${CSS.escape(id)}-error`);
    if (!el || !err) return false;
    el.setAttribute('aria-invalid', 'true');
    setMessage(err, text);
    return true;
  }

  function clearErrors(form) {
    for (const el of form.querySelectorAll('[aria-invalid]')) el.removeAttribute('aria-invalid');
    for (const el of form.querySelectorAll('.field-error')) setMessage(el, '');
  }

  /** Shows an API refusal beside the field it names, else in the form's message. */
  function showRefusal(form, e, ids, doing) {
    const id = e.field ? ids(e.field) : null;
    const placed = id && fieldError(form, id, errorText(e));
    setMessage(form.querySelector('.form-error'), placed ? 'Please correct the field marked below.' : errorText(e, doing));
    const bad = form.querySelector('[aria-invalid="true"]');
    if (bad) bad.focus();
  }

  function formError() {
    return h('p', { class: 'error form-error', role: 'alert', hidden: true });
  }

  // ----- order ----------------------------------------------------------------

  // An API field name -> the order form's control.
  function orderFieldId(f) {
    if (f === 'domain' || f === 'name') return 'order-domain';
    if (f === 'exec_date') return 'order-exec-date';
    if (f.startsWith('params.nameservers') || f === 'nameservers') return 'order-nameservers';
    const map = {
      'params.period': 'order-period',
      'params.contacts.owner.name': 'order-owner-name',
      'contacts.owner.name': 'order-owner-name',
      'params.contacts.owner.email': 'order-owner-email',
      'contacts.owner.email': 'order-owner-email',
      'params.contacts': 'order-owner-name',
      'params.auth_code': 'order-auth-code',
      auth_code: 'order-auth-code',
      'params.phase': 'order-phase',
      'params.transfer_lock': 'order-lock',
      'params.privacy': 'order-privacy',
      operation: 'order-operation',
    };
    return map[f] || null;
  }

  function orderControls(op, prefill) {
    const p = prefill || {};
    const shown = FIELDS_OF[op] || [];
    const parts = [];
    if (shown.includes('auth_code')) {
      parts.push(field('order-auth-code', 'Auth code (required)', h('input', { type: 'text', autocomplete: 'off', spellcheck: 'false', value: p.auth_code || '' }),
        'The transfer code the current registrar gives the domain\'s owner.'));
    }
    if (shown.includes('period')) {
      parts.push(field('order-period', 'Period in years', h('input', { type: 'number', min: '1', max: '10', step: '1', value: String(p.period || 1), inputmode: 'numeric' }), '1 to 10 years.'));
    }
    if (shown.includes('owner')) {
      const req = NEEDS_OWNER.includes(op) ? ' (required)' : '';
      parts.push(h('fieldset', { class: 'fieldset' },
        h('legend', {}, op === 'update' ? 'New owner contact (leave empty to keep it)' : 'Owner contact'),
        field('order-owner-name', `Owner name${req}`, h('input', { type: 'text', autocomplete: 'name', value: p.owner_name || '' })),
        field('order-owner-email', `Owner e-mail${req}`, h('input', { type: 'email', autocomplete: 'email', value: p.owner_email || '' }))));
    }
    if (shown.includes('nameservers')) {
      parts.push(field('order-nameservers', 'Name servers', h('textarea', { rows: '3', spellcheck: 'false' }, (p.nameservers || []).join('\n')),
        'One host name a line, e.g. ns1.example.net. Leave empty for none.'));
    }
    if (shown.includes('transfer_lock')) {
      parts.push(field('order-lock', 'Transfer lock', h('select', {},
        h('option', { value: '' }, 'Keep as it is'),
        h('option', { value: 'true' }, 'On: the domain cannot be transferred away'),
        h('option', { value: 'false' }, 'Off: allow a transfer away'))));
    }
    if (shown.includes('privacy')) {
      parts.push(field('order-privacy', 'WHOIS privacy', h('select', {},
        h('option', { value: 'true' }, 'On: hide the owner\'s details'),
        h('option', { value: 'false' }, 'Off: show them'))));
    }
    if (shown.includes('premium')) {
      parts.push(h('div', { class: 'form-field check' },
        h('input', { type: 'checkbox', id: 'order-premium' }),
        h('label', { for: 'order-premium' }, 'Premium name (priced by the registry; an operator reviews it)')));
    }
    if (shown.includes('phase')) {
      parts.push(field('order-phase', 'Launch phase', h('select', {},
        h('option', { value: '' }, 'None: general availability'),
        h('option', { value: 'sunrise' }, 'Sunrise (trademark holders; reviewed)'),
        h('option', { value: 'landrush' }, 'Landrush (reviewed)'))));
    }
    return parts;
  }

  /** The order form's params, as the API takes them; only what was filled in. */
  function orderParams(form, op) {
    const v = (id) => { const el = form.querySelector(`#${id}`); return el ? el.value.trim() : ''; };
    const params = {};
    if (form.querySelector('#order-period')) params.period = Number(v('order-period'));
    if (form.querySelector('#order-auth-code')) params.auth_code = v('order-auth-code');
    const name = v('order-owner-name');
    const email = v('order-owner-email');
    if (name || email || NEEDS_OWNER.includes(op) && form.querySelector('#order-owner-name')) {
      params.contacts = { owner: { name, email } };
    }
    const ns = v('order-nameservers');
    if (ns) params.nameservers = ns.split(/[\s,]+/).filter(Boolean);
    if (v('order-lock')) params.transfer_lock = v('order-lock') === 'true';
    if (form.querySelector('#order-privacy')) params.privacy = v('order-privacy') === 'true';
    const premium = form.querySelector('#order-premium');
    if (premium && premium.checked) params.premium = true;
    if (v('order-phase')) params.phase = v('order-phase');
    return params;
  }

  /** What the API would refuse or leave incomplete, checked before sending. */
  function orderChecks(form, op, domain, params) {
    const problems = [];
    if (!domain) problems.push(['order-domain', 'Enter the domain name, e.g. example.com.']);
    else if (!/^[a-z0-9-]+(\.[a-z0-9-]+)+\.?$/i.test(domain)) problems.push(['order-domain', 'A domain name is labels of letters, digits and hyphens joined by dots, e.g. example.com.']);
    if ('period' in params && !(Number.isInteger(params.period) && params.period >= 1 && params.period <= 10)) {
      problems.push(['order-period', 'The period is a whole number of years, 1 to 10.']);
    }
    if (NEEDS_OWNER.includes(op)) {
      if (!params.contacts.owner.name) problems.push(['order-owner-name', 'Enter the owner\'s name.']);
      if (!params.contacts.owner.email) problems.push(['order-owner-email', 'Enter the owner\'s e-mail address.']);
    }
    if (params.contacts && params.contacts.owner.email && !/^[^@\s]+@[^@\s]+\.[^@\s]+$/.test(params.contacts.owner.email)) {
      problems.push(['order-owner-email', 'An e-mail address looks like name@example.com.']);
    }
    if (op === 'transfer' && !params.auth_code) problems.push(['order-auth-code', 'A transfer needs the domain\'s auth code.']);
    if (op === 'update' && !params.contacts && !params.nameservers && !('transfer_lock' in params)) {
      problems.push(['order-nameservers', 'Change at least one thing: the owner, the name servers or the transfer lock.']);
    }
    for (const [id, text] of problems) fieldError(form, id, text);
    return problems.length === 0;
  }

  async function loadOrder(section, params) {
    const requestId = Number(params.get('request'));
    if (Number.isInteger(requestId) && requestId > 0) {
      await loadFinish(section, requestId);
      return;
    }
    const op = OPERATIONS.some(([o]) => o === params.get('operation')) ? params.get('operation') : 'create';
    renderOrderForm(section, op, params.get('domain') || '');
  }

  function renderOrderForm(section, op, domain) {
    clear(section);
    const opSel = h('select', {}, OPERATIONS.map(([o, l]) => h('option', { value: o, selected: o === op }, l)));
    const domainIn = h('input', { type: 'text', value: domain, spellcheck: 'false', autocapitalize: 'off', autocomplete: 'off', placeholder: 'example.com' });
    const extra = h('div', { id: 'order-fields' }, orderControls(op));
    const when = field('order-exec-date', 'Not before (optional)', h('input', { type: 'date' }), 'Leave empty to start as soon as possible.');
    const result = h('div', { id: 'order-result', role: 'status', 'aria-live': 'polite' });
    const form = h('form', { class: 'card order-form', id: 'order-form', novalidate: true },
      field('order-operation', 'What to do', opSel),
      field('order-domain', 'Domain', domainIn),
      extra, when, formError(),
      h('div', { class: 'btn-row' }, h('button', { type: 'submit', class: 'btn primary', id: 'order-submit' }, 'Place the order')));
    opSel.addEventListener('change', () => {
      clear(extra).append(...orderControls(opSel.value));
      R.setViewParams({ operation: opSel.value, domain: domainIn.value.trim() });
    });
    form.addEventListener('submit', (e) => { e.preventDefault(); placeOrder(form, opSel.value, domainIn.value.trim().toLowerCase(), result); });
    section.append(heading('order', 'Order', 'Every order becomes a work request: it is checked here and by the server, and you can follow it under Work requests.'), form, result);
  }

  async function placeOrder(form, op, domain, result) {
    clearErrors(form);
    setMessage(form.querySelector('.form-error'), '');
    const params = orderParams(form, op);
    if (!orderChecks(form, op, domain, params)) {
      setMessage(form.querySelector('.form-error'), 'Please correct the fields marked below.');
      const bad = form.querySelector('[aria-invalid="true"]');
      if (bad) bad.focus();
      return;
    }
    const body = { domain, operation: op, params, submit: true };
    const date = form.querySelector('#order-exec-date').value;
    if (date) body.exec_date = date;
    const button = form.querySelector('#order-submit');
    button.disabled = true;
    try {
      const r = await api('POST', '/requests', body);
      toast(`Order placed: request #${r.id}.`);
      followRequest(result, r);
    } catch (e) {
      showRefusal(form, e, orderFieldId, 'Placing the order');
    } finally {
      button.disabled = false;
    }
  }

  const TERMINAL = ['finished', 'failed'];
  const STATE_WORDS = {
    new: 'saved, not submitted yet',
    incomplete: 'waiting for missing information',
    review: 'waiting for an operator\'s review',
    queued: 'queued: it starts shortly',
    processing: 'in progress',
    limbo: 'held up: an operator has been told',
    failed: 'failed',
    finished: 'finished',
  };

  /** Shows a request's state and follows it until it ends. */
  function followRequest(box, r) {
    const render = (x) => {
      clear(box).append(h('div', { class: `callout ${x.state === 'failed' ? 'danger' : x.state === 'finished' ? 'ok' : ''}`, id: 'order-status', dataset: { state: x.state } },
        h('strong', {}, `Request #${x.id}: ${x.operation} ${x.domain}`),
        h('p', {}, R.stateBadge(x.state, x.failure), ' ', STATE_WORDS[x.state] || x.state),
        x.missing && x.missing.length ? h('p', {}, h('a', { href: `#view=order&request=${x.id}` }, 'Fill in what is missing')) : null,
        h('p', {}, h('a', { href: `#open=${x.id}` }, 'Open it in Work requests'))));
    };
    render(r);
    let tries = 0;
    const timer = setInterval(async () => {
      tries += 1;
      if (!box.isConnected || tries > 600) { clearInterval(timer); return; }
      try {
        const x = await api('GET', `/requests/${r.id}`);
        render(x);
        if (TERMINAL.includes(x.state) || x.state === 'incomplete') clearInterval(timer);
      } catch (_) {
        // Shown again on the next try.
      }
    }, 1000);
  }

  // Finishing an incomplete request: only the fields `missing` names.
  const MISSING_CONTROLS = {
    'contacts.owner.name': () => field('order-owner-name', 'Owner name', h('input', { type: 'text', autocomplete: 'name' })),
    'contacts.owner.email': () => field('order-owner-email', 'Owner e-mail', h('input', { type: 'email', autocomplete: 'email' })),
    auth_code: () => field('order-auth-code', 'Auth code', h('input', { type: 'text', autocomplete: 'off', spellcheck: 'false' }), 'The transfer code the current registrar gives the domain\'s owner.'),
    'contacts|nameservers|transfer_lock|auth_code': () => field('order-nameservers', 'Name servers', h('textarea', { rows: '3', spellcheck: 'false' }), 'One host name a line: what the update sets.'),
  };

  async function loadFinish(section, id) {
    clear(section).append(heading('order', `Finish request #${id}`));
    let r;
    try {
      r = await api('GET', `/requests/${id}`);
    } catch (e) {
      section.append(h('p', { class: 'error', role: 'alert' }, errorText(e, 'Loading the request')));
      return;
    }
    const missing = r.missing || [];
    if (!['new', 'incomplete'].includes(r.state) || !missing.length) {
      section.append(h('p', { class: 'notice' }, `Request #${id} (${r.operation} ${r.domain}) needs nothing more: it is ${STATE_WORDS[r.state] || r.state}.`));
      return;
    }
    const result = h('div', { id: 'order-result', role: 'status', 'aria-live': 'polite' });
    const form = h('form', { class: 'card order-form', id: 'finish-form', novalidate: true },
      h('p', {}, `${r.operation} ${r.domain} is missing: `, missing.join(', '), '. Fill in exactly that, then it is submitted again.'),
      (r.annotations || []).length ? h('p', { class: 'muted' }, `Note: ${r.annotations[r.annotations.length - 1].text}`) : null,
      missing.map((m) => (MISSING_CONTROLS[m] ? MISSING_CONTROLS[m]() : h('p', { class: 'muted' }, `${m}: ask an operator.`))),
      formError(),
      h('div', { class: 'btn-row' }, h('button', { type: 'submit', class: 'btn primary', id: 'finish-submit' }, 'Save and submit')));
    form.addEventListener('submit', (e) => { e.preventDefault(); finish(form, r, result); });
    section.append(form, result);
    const first = form.querySelector('input, textarea');
    if (first) first.focus();
  }

  async function finish(form, r, result) {
    clearErrors(form);
    const params = JSON.parse(JSON.stringify(r.params || {}));
    const v = (id) => { const el = form.querySelector(`#${id}`); return el ? el.value.trim() : null; };
    const problems = [];
    if (v('order-owner-name') !== null || v('order-owner-email') !== null) {
      params.contacts = params.contacts || {};
      params.contacts.owner = params.contacts.owner || {};
      if (v('order-owner-name') !== null) params.contacts.owner.name = v('order-owner-name');
      if (v('order-owner-email') !== null) params.contacts.owner.email = v('order-owner-email');
      if (v('order-owner-name') === '') problems.push(['order-owner-name', 'Enter the owner\'s name.']);
      if (v('order-owner-email') === '') problems.push(['order-owner-email', 'Enter the owner\'s e-mail address.']);
    }
    if (v('order-auth-code') !== null) {
      params.auth_code = v('order-auth-code');
      if (!params.auth_code) problems.push(['order-auth-code', 'Enter the auth code.']);
    }
    if (v('order-nameservers') !== null) {
      params.nameservers = v('order-nameservers').split(/[\s,]+/).filter(Boolean);
      if (!params.nameservers.length) problems.push(['order-nameservers', 'Enter at least one name server.']);
    }
    for (const [id, text] of problems) fieldError(form, id, text);
    if (problems.length) {
      setMessage(form.querySelector('.form-error'), 'Please correct the fields marked below.');
      form.querySelector('[aria-invalid="true"]').focus();
      return;
    }
    try {
      await api('PATCH', `/requests/${r.id}`, { params });
      const done = await api('POST', `/requests/${r.id}/submit`, {});
      toast(`Request #${r.id} submitted again.`);
      form.remove();
      followRequest(result, done);
    } catch (e) {
      showRefusal(form, e, orderFieldId, 'Submitting');
    }
  }

  R.registerView({ id: 'order', label: 'Order', load: loadOrder });

  /** For operators, an "Account" filter appended to `controls`; else null. */
  function accountFilter(controls, id, account) {
    if (!R.isOperator()) return null;
    const sel = h('select', { id },
      h('option', { value: '' }, 'Every account'),
      R.accounts().map((a) => h('option', { value: String(a.id), selected: String(a.id) === account }, `${a.name} (#${a.id})`)));
    controls.append(h('label', { for: id }, 'Account'), sel);
    return sel;
  }

  // ----- the portfolio ------------------------------------------------------------

  const DOMAIN_ACTIONS = [
    ['renew', 'Renew'], ['update', 'Update'], ['privacy', 'Privacy'], ['hold', 'Hold'], ['release', 'Release'], ['delete', 'Delete'],
  ];

  async function loadDomains(section, params) {
    const q = (params.get('q') || '').trim().toLowerCase();
    const account = params.get('account_id') || '';
    clear(section).append(heading('domains', 'Domains', 'Your portfolio: what finished orders registered, transferred in or changed.'));
    const search = h('input', { type: 'search', id: 'domains-q', value: q, placeholder: 'part of a name', autocomplete: 'off', spellcheck: 'false' });
    const controls = h('div', { class: 'card filters inline', role: 'search' },
      h('label', { for: 'domains-q' }, 'Name contains'), search);
    const accountSel = accountFilter(controls, 'domains-account', account);
    const error = h('p', { class: 'error', role: 'alert', hidden: true });
    const table = h('table', { class: 'grid', id: 'domains' },
      h('caption', { class: 'sr-only' }, 'Domains in the portfolio'),
      h('thead', {}, h('tr', {},
        ['Domain', 'Status', 'Expires', 'Transfer lock', 'Name servers', 'Owner', 'Actions'].map((t) => h('th', { scope: 'col' }, t)))),
      h('tbody', { id: 'domains-body' }));
    const empty = h('p', { class: 'empty', hidden: true }, 'No domains match.');
    const more = h('button', { type: 'button', class: 'btn small', hidden: true }, 'Load more');
    section.append(controls, error, h('div', { class: 'table-wrap card' }, table, empty), h('div', { class: 'pager' }, h('span'), more));
    let next = null;
    const fill = async (after) => {
      const p = new URLSearchParams({ limit: '200' });
      if (after) p.set('after', after);
      if (accountSel && accountSel.value) p.set('account_id', accountSel.value);
      try {
        const page = await api('GET', `/domains?${p}`);
        if (!after) clear(table.tBodies[0]);
        const needle = search.value.trim().toLowerCase();
        for (const d of page.items || []) if (!needle || d.name.includes(needle)) table.tBodies[0].append(domainRow(d));
        next = page.next || null;
        show(more, !!next);
        show(empty, table.tBodies[0].childElementCount === 0);
        setMessage(error, '');
      } catch (e) {
        setMessage(error, errorText(e, 'Loading the domains'));
      }
    };
    const refilter = () => {
      R.setViewParams({ q: search.value.trim(), account_id: accountSel ? accountSel.value : '' });
      fill(null);
    };
    let t = null;
    search.addEventListener('input', () => { clearTimeout(t); t = setTimeout(refilter, 300); });
    if (accountSel) accountSel.addEventListener('change', refilter);
    more.addEventListener('click', () => fill(next));
    await fill(null);
  }

  function domainRow(d) {
    const owner = d.contacts && d.contacts.owner ? d.contacts.owner : {};
    const ns = Array.isArray(d.nameservers) ? d.nameservers : [];
    const status = d.lifecycle ? `${d.status} · ${d.lifecycle}` : d.status;
    const actions = DOMAIN_ACTIONS.map(([op, label]) => h('a', {
      class: 'btn small', href: `#view=order&operation=${op}&domain=${encodeURIComponent(d.name)}`,
      'aria-label': `${label} ${d.name}`,
    }, label));
    return h('tr', { dataset: { domain: d.name } },
      h('td', { 'data-label': 'Domain' }, h('span', { class: 'domain' }, d.name)),
      h('td', { 'data-label': 'Status' }, status),
      h('td', { 'data-label': 'Expires' }, timeEl(d.expires_at)),
      h('td', { 'data-label': 'Transfer lock' }, d.transfer_lock ? h('strong', {}, 'locked') : 'unlocked'),
      h('td', { 'data-label': 'Name servers' }, ns.length ? ns.join(', ') : '—'),
      h('td', { 'data-label': 'Owner' }, owner.name ? `${owner.name} <${owner.email || ''}>` : '—'),
      h('td', { 'data-label': 'Actions' }, h('div', { class: 'btn-row wrap' }, actions)));
  }

  R.registerView({ id: 'domains', label: 'Domains', load: loadDomains });

  // ----- charges ----------------------------------------------------------------------

  function thisMonth() {
    return new Date().toISOString().slice(0, 7);
  }

  async function loadCharges(section, params) {
    const month = /^\d{4}-\d{2}$/.test(params.get('month') || '') ? params.get('month') : thisMonth();
    const account = params.get('account_id') || '';
    clear(section).append(heading('charges', 'Charges', 'Invoice items by month, in UTC. A request that fails or goes back for more information takes its charges back.'));
    const monthIn = h('input', { type: 'month', id: 'charges-month', value: month });
    const controls = h('div', { class: 'card filters inline' }, h('label', { for: 'charges-month' }, 'Month'), monthIn);
    const accountSel = accountFilter(controls, 'charges-account', account);
    const csv = h('button', { type: 'button', class: 'btn small', id: 'charges-csv' }, 'Download CSV');
    controls.append(csv);
    const error = h('p', { class: 'error', role: 'alert', hidden: true });
    const body = h('tbody', { id: 'charges-body' });
    const total = h('p', { class: 'total', id: 'charges-total' });
    const cols = ['Date', 'Domain', 'Operation', 'Description', 'Amount'];
    if (R.isOperator()) cols.splice(1, 0, 'Account');
    section.append(controls, error, h('div', { class: 'table-wrap card' },
      h('table', { class: 'grid', id: 'charges' }, h('caption', { class: 'sr-only' }, 'Charges of the month'),
        h('thead', {}, h('tr', {}, cols.map((c) => h('th', { scope: 'col', class: c === 'Amount' ? 'num' : null }, c)))), body)), total);
    const query = () => {
      const p = new URLSearchParams({ month: monthIn.value || thisMonth() });
      if (accountSel && accountSel.value) p.set('account_id', accountSel.value);
      return p;
    };
    const fill = async () => {
      try {
        const res = await api('GET', `/charges?${query()}`);
        clear(body);
        for (const c of res.items || []) {
          const cells = [h('td', { 'data-label': 'Date' }, timeEl(c.created_at))];
          if (R.isOperator()) cells.push(h('td', { 'data-label': 'Account' }, R.accountName(c.account_id)));
          cells.push(h('td', { 'data-label': 'Domain' }, h('span', { class: 'domain' }, c.domain)),
            h('td', { 'data-label': 'Operation' }, c.operation),
            h('td', { 'data-label': 'Description' }, c.description),
            h('td', { 'data-label': 'Amount', class: 'num' }, money(c.amount_cents)));
          body.append(h('tr', {}, cells));
        }
        total.textContent = (res.items || []).length
          ? `Total for ${res.month}: ${money(res.total_cents)} (${res.items.length} item${res.items.length === 1 ? '' : 's'})`
          : `No charges in ${res.month}.`;
        setMessage(error, '');
      } catch (e) {
        setMessage(error, errorText(e, 'Loading the charges'));
      }
    };
    const refilter = () => {
      R.setViewParams({ month: monthIn.value, account_id: accountSel ? accountSel.value : '' });
      fill();
    };
    monthIn.addEventListener('change', refilter);
    if (accountSel) accountSel.addEventListener('change', refilter);
    csv.addEventListener('click', async () => {
      try {
        const res = await api('GET', `/charges.csv?${query()}`, undefined, true);
        const url = URL.createObjectURL(await res.blob());
        const a = h('a', { href: url, download: `charges-${monthIn.value}.csv`, class: 'sr-only' });
        document.body.append(a);
        a.click();
        a.remove();
        setTimeout(() => URL.revokeObjectURL(url), 10000);
      } catch (e) {
        setMessage(error, errorText(e, 'The CSV download'));
      }
    });
    await fill();
  }

  R.registerView({ id: 'charges', label: 'Charges', load: loadCharges });

  // ----- the account's own settings ---------------------------------------------------------

  /** A new password's form; with `own`, it asks for the present one too. */
  function passwordForm(id, label, submit, onSave, own) {
    const input = h('input', { type: 'password', autocomplete: 'new-password' });
    const current = own ? h('input', { type: 'password', autocomplete: 'current-password' }) : null;
    const form = h('form', { class: 'inline-form', novalidate: true },
      current ? field(`${id}-current`, 'Present password', current, 'Leave empty if you have none yet.') : null,
      field(id, label, input, '8 to 128 characters; any characters.'), formError(),
      h('button', { type: 'submit', class: 'btn small primary' }, submit));
    form.addEventListener('submit', async (e) => {
      e.preventDefault();
      clearErrors(form);
      try {
        await onSave(input.value, current && current.value ? current.value : undefined);
        input.value = '';
        if (current) current.value = '';
        setMessage(form.querySelector('.form-error'), '');
      } catch (err) {
        const ids = { password: id, current_password: `${id}-current` };
        showRefusal(form, err, (f) => ids[f] || null, 'Setting the password');
      }
    });
    return form;
  }

  async function loadAccount(section) {
    const me = R.me();
    clear(section).append(heading('account', `Account: ${me.name}`, `${me.email} · ${me.role}`));
    const pw = h('section', { class: 'card panel', 'aria-labelledby': 'pw-title' }, h('h2', { id: 'pw-title' }, 'Password'),
      h('p', { class: 'muted' }, 'Changing it signs out every other browser.'),
      passwordForm('own-password', 'New password', 'Change password', async (p, current) => {
        await api('PUT', `/accounts/${me.id}/password`, { password: p, current_password: current });
        toast('Your password is changed; your other sessions are signed out.');
        renderSessions();
      }, true));
    const sessions = h('section', { class: 'card panel', 'aria-labelledby': 'sessions-title' },
      h('h2', { id: 'sessions-title' }, 'Where you are signed in'), h('div', { id: 'sessions-list' }));
    const tokens = h('section', { class: 'card panel', 'aria-labelledby': 'tokens-title' },
      h('h2', { id: 'tokens-title' }, 'API tokens'),
      h('p', { class: 'muted' }, 'Programs use an API token (Authorization: Bearer TOKEN) instead of a password. A new token is shown once.'),
      h('div', { id: 'tokens-list' }));
    const hook = h('section', { class: 'card panel', 'aria-labelledby': 'hook-title' },
      h('h2', { id: 'hook-title' }, 'Notification webhook'),
      h('p', { class: 'muted' }, 'Each new notification is also POSTed, signed, to this URL.'), h('div', { id: 'hook-box' }));
    section.append(pw, sessions, tokens, hook);
    await Promise.all([renderSessions(), renderTokens(), renderHook()]);
  }

  async function renderSessions() {
    const box = clear(document.getElementById('sessions-list'));
    try {
      const res = await api('GET', '/sessions');
      const rows = (res.items || []).map((s) => h('tr', {},
        h('td', { 'data-label': 'Signed in' }, timeEl(s.created_at)),
        h('td', { 'data-label': 'From' }, s.address || '—'),
        h('td', { 'data-label': 'Browser' }, s.user_agent || '—'),
        h('td', { 'data-label': 'Ends' }, timeEl(s.expires_at)),
        h('td', {}, s.current ? h('span', { class: 'badge plain' }, 'this browser') : h('button', {
          type: 'button', class: 'btn small danger', 'aria-label': `Sign out the session from ${s.address || 'unknown'} started ${s.created_at}`,
          onclick: async () => {
            await api('DELETE', `/sessions/${s.id}`);
            toast('That session is signed out.');
            renderSessions();
          },
        }, 'Sign out'))));
      box.append(h('table', { class: 'grid', id: 'sessions' }, h('caption', { class: 'sr-only' }, 'Your sessions'),
        h('thead', {}, h('tr', {}, ['Signed in', 'From', 'Browser', 'Ends', 'Action'].map((t) => h('th', { scope: 'col' }, t)))),
        h('tbody', {}, rows)));
    } catch (e) {
      box.append(h('p', { class: 'error', role: 'alert' }, errorText(e, 'Loading the sessions')));
    }
  }

  async function renderTokens(fresh) {
    const box = clear(document.getElementById('tokens-list'));
    if (fresh) {
      box.append(h('div', { class: 'callout ok' }, h('label', { for: 'new-token' }, 'Your new token: copy it now, it is not shown again'),
        h('input', { id: 'new-token', type: 'text', readonly: true, value: fresh, spellcheck: 'false' })));
    }
    try {
      const res = await api('GET', '/tokens');
      box.append(h('ul', { class: 'plain-list', id: 'tokens' }, (res.items || []).map((t) => h('li', {},
        `Token #${t.id}, made `, timeEl(t.created_at), ' ',
        h('button', {
          type: 'button', class: 'btn small danger', 'aria-label': `Revoke token ${t.id}`,
          onclick: async () => {
            const ok = await R.confirmDialog(`Revoke token #${t.id}?`, 'Programs using it stop working at once.', 'Revoke', true);
            if (!ok) return;
            try {
              await api('DELETE', `/tokens/${t.id}`);
              toast(`Token #${t.id} revoked.`);
              renderTokens();
            } catch (e) {
              toast(errorText(e, 'Revoking'));
            }
          },
        }, 'Revoke')))));
      box.append(h('button', {
        type: 'button', class: 'btn small', id: 'new-token-button',
        onclick: async () => renderTokens((await api('POST', '/tokens', {})).token),
      }, 'Make a new token'));
    } catch (e) {
      box.append(h('p', { class: 'error', role: 'alert' }, errorText(e, 'Loading the tokens')));
    }
  }

  async function renderHook() {
    const box = clear(document.getElementById('hook-box'));
    let current = null;
    try {
      current = await api('GET', '/webhook');
    } catch (e) {
      if (e.status !== 404) box.append(h('p', { class: 'error', role: 'alert' }, errorText(e, 'Loading the webhook')));
    }
    const url = h('input', { type: 'url', value: current ? current.url : '', placeholder: 'http://hooks.example.net/regdesk', spellcheck: 'false' });
    const form = h('form', { class: 'inline-form', novalidate: true }, field('hook-url', 'URL', url), formError(),
      h('div', { class: 'btn-row' }, h('button', { type: 'submit', class: 'btn small primary' }, 'Save'),
        current ? h('button', {
          type: 'button', class: 'btn small danger',
          onclick: async () => { await api('DELETE', '/webhook'); toast('Webhook removed.'); renderHook(); },
        }, 'Remove') : null));
    form.addEventListener('submit', async (e) => {
      e.preventDefault();
      clearErrors(form);
      try {
        const saved = await api('PUT', '/webhook', { url: url.value.trim() });
        await renderHook();
        if (saved.secret) {
          document.getElementById('hook-box').prepend(h('div', { class: 'callout ok' },
            h('label', { for: 'hook-secret' }, 'Its signing secret: copy it now, it is not shown again'),
            h('input', { id: 'hook-secret', type: 'text', readonly: true, value: saved.secret })));
        }
      } catch (err) {
        showRefusal(form, err, (f) => (f === 'url' ? 'hook-url' : null), 'Saving the webhook');
      }
    });
    box.append(form);
  }

  R.registerView({ id: 'account', label: 'Account', load: loadAccount });

  // ----- operators: accounts ---------------------------------------------------------------

  function reviewWords(a) {
    if (a.review_all) return 'Every order is reviewed by an operator before it is processed.';
    return `Orders over ${money(a.review_limit_cents)} are reviewed by an operator; premium, sunrise and landrush orders always are. Others are processed at once.`;
  }

  function accountFieldId(f) {
    return { name: 'acct-name', email: 'acct-email', role: 'acct-role', review_limit_cents: 'acct-limit' }[f] || null;
  }

  function accountControls(a) {
    const limit = a ? money(a.review_limit_cents) : '500.00';
    return [
      field('acct-email', 'E-mail', h('input', { type: 'email', value: a ? a.email : '', autocomplete: 'off' })),
      field('acct-role', 'Role', h('select', {},
        h('option', { value: 'customer', selected: !a || a.role === 'customer' }, 'Customer: orders and sees their own domains'),
        h('option', { value: 'operator', selected: !!a && a.role === 'operator' }, 'Operator: sees every account, reviews and resolves'))),
      field('acct-limit', 'Review limit', h('input', { type: 'number', min: '0', step: '0.01', value: limit, inputmode: 'decimal' }),
        'An order costing more than this waits for an operator\'s review.'),
      h('div', { class: 'form-field check' }, h('input', { type: 'checkbox', id: 'acct-review-all', checked: !!a && a.review_all }),
        h('label', { for: 'acct-review-all' }, 'Review every order of this account')),
    ];
  }

  function accountBody(form, withName) {
    const v = (id) => form.querySelector(`#${id}`).value.trim();
    const body = {
      email: v('acct-email'),
      role: v('acct-role'),
      review_limit_cents: Math.round(Number(v('acct-limit')) * 100),
      review_all: form.querySelector('#acct-review-all').checked,
    };
    if (withName) body.name = v('acct-name');
    return body;
  }

  async function loadAccounts(section, params) {
    const q = (params.get('q') || '').trim().toLowerCase();
    const role = params.get('role') || '';
    clear(section).append(heading('accounts', 'Accounts', 'Customers and operators. Each account signs in with its name and password; programs use its API tokens.'));
    const search = h('input', { type: 'search', id: 'accounts-q', value: q, autocomplete: 'off' });
    const roleSel = h('select', { id: 'accounts-role' }, ['', 'customer', 'operator'].map((r) => h('option', { value: r, selected: r === role }, r || 'Any role')));
    const list = h('div', { id: 'accounts-list' });
    const create = h('button', { type: 'button', class: 'btn small primary', id: 'new-account', 'aria-expanded': 'false' }, 'New account');
    const createBox = h('div', { id: 'new-account-box' });
    section.append(h('div', { class: 'card filters inline' },
      h('label', { for: 'accounts-q' }, 'Name contains'), search, h('label', { for: 'accounts-role' }, 'Role'), roleSel, create), createBox, list);
    const refilter = () => {
      R.setViewParams({ q: search.value.trim(), role: roleSel.value });
      renderAccounts(list, search.value.trim().toLowerCase(), roleSel.value);
    };
    search.addEventListener('input', refilter);
    roleSel.addEventListener('change', refilter);
    create.addEventListener('click', () => {
      const open = create.getAttribute('aria-expanded') !== 'true';
      create.setAttribute('aria-expanded', String(open));
      clear(createBox);
      if (open) createBox.append(newAccountForm(list, refilter));
    });
    await R.refreshAccounts();
    renderAccounts(list, q, role);
  }

  function newAccountForm(list, done) {
    const form = h('form', { class: 'card inset', id: 'new-account-form', novalidate: true },
      h('h2', {}, 'New account'),
      field('acct-name', 'Name', h('input', { type: 'text', autocomplete: 'off', spellcheck: 'false' }), 'Letters, digits, dots, underscores or hyphens: what they sign in with.'),
      accountControls(null), formError(),
      h('button', { type: 'submit', class: 'btn small primary' }, 'Create account'));
    form.addEventListener('submit', async (e) => {
      e.preventDefault();
      clearErrors(form);
      try {
        const a = await api('POST', '/accounts', accountBody(form, true));
        clear(form).append(h('div', { class: 'callout ok', id: 'created-account' },
          h('strong', {}, `Account ${a.name} (#${a.id}) is made.`),
          h('p', {}, 'Give it a password below (Set password, or a one-time link). Its first API token, shown once:'),
          h('label', { for: 'created-token' }, 'API token'),
          h('input', { id: 'created-token', type: 'text', readonly: true, value: a.token })));
        await R.refreshAccounts();
        done();
      } catch (err) {
        showRefusal(form, err, accountFieldId, 'Creating the account');
      }
    });
    return form;
  }

  function renderAccounts(list, q, role) {
    clear(list);
    const shown = R.accounts().filter((a) => (!q || a.name.toLowerCase().includes(q)) && (!role || a.role === role));
    if (!shown.length) list.append(h('p', { class: 'empty card' }, 'No accounts match.'));
    for (const a of shown) list.append(accountCard(a, list));
  }

  function accountCard(a) {
    const box = h('div', { class: 'account-tools' });
    const tool = (label, make) => h('button', {
      type: 'button', class: 'btn small', 'aria-label': `${label} for ${a.name}`,
      onclick: () => { clear(box).append(make()); const f = box.querySelector('input, select'); if (f) f.focus(); },
    }, label);
    return h('article', { class: 'card account', dataset: { account: a.name }, 'aria-labelledby': `account-${a.id}` },
      h('h2', { id: `account-${a.id}` }, `${a.name} `, h('span', { class: 'badge plain' }, a.role), ` #${a.id}`),
      h('p', {}, a.email),
      h('p', { class: 'muted review-words' }, reviewWords(a)),
      h('div', { class: 'btn-row wrap' },
        tool('Edit', () => editForm(a)),
        tool('Set password', () => passwordForm(`pw-${a.id}`, `New password for ${a.name}`, 'Set password', async (p) => {
          await api('PUT', `/accounts/${a.id}/password`, { password: p });
          clear(box).append(h('p', { class: 'notice ok', role: 'status' }, `The password of ${a.name} is set; their other sessions are signed out.`));
        })),
        h('button', {
          type: 'button', class: 'btn small', 'aria-label': `Set-password link for ${a.name}`,
          onclick: async () => {
            try {
              const link = await api('POST', `/accounts/${a.id}/password-link`, {});
              clear(box).append(link.url
                ? h('div', { class: 'callout ok' }, h('label', { for: `link-${a.id}` }, 'One-time link (works once, shown only now): hand it to them'),
                  h('input', { id: `link-${a.id}`, type: 'text', readonly: true, value: /^https?:/.test(link.url) ? link.url : `${location.origin}${link.url}` }))
                : h('p', { class: 'notice ok', role: 'status' }, `A one-time link was mailed to ${link.mailed_to}.`));
            } catch (e) {
              clear(box).append(h('p', { class: 'error', role: 'alert' }, errorText(e, 'Making the link')));
            }
          },
        }, 'Set-password link'),
        h('button', {
          type: 'button', class: 'btn small', 'aria-label': `Unlock ${a.name}`, title: 'Lift the refusal after failed sign-ins',
          onclick: async () => {
            try {
              await api('POST', `/accounts/${a.id}/unlock`, {});
              clear(box).append(h('p', { class: 'notice ok', role: 'status' }, `${a.name} can sign in again.`));
            } catch (e) {
              clear(box).append(h('p', { class: 'error', role: 'alert' }, errorText(e, 'Unlocking')));
            }
          },
        }, 'Unlock')),
      box);
  }

  function editForm(a) {
    const form = h('form', { class: 'card inset', novalidate: true }, accountControls(a), formError(),
      h('button', { type: 'submit', class: 'btn small primary' }, 'Save'));
    form.addEventListener('submit', async (e) => {
      e.preventDefault();
      clearErrors(form);
      try {
        await api('PATCH', `/accounts/${a.id}`, accountBody(form, false));
        await R.refreshAccounts();
        toast(`${a.name} saved.`);
        const view = document.getElementById('view-accounts');
        if (view) loadAccounts(view, new URLSearchParams(location.hash.replace(/^#/, '')));
      } catch (err) {
        showRefusal(form, err, accountFieldId, 'Saving');
      }
    });
    return form;
  }

  R.registerView({ id: 'accounts', label: 'Accounts', operatorOnly: true, load: loadAccounts });

  // ----- operators: the mail outbox ----------------------------------------------------------

  const MAIL_STATES = [['', 'Every message'], ['pending', 'Pending'], ['sent', 'Sent'], ['failed', 'Failed']];

  async function loadOutbox(section, params) {
    const want = params.get('state') || '';
    clear(section).append(heading('outbox', 'Mail outbox', 'Every message regdesk sends (limbo notices to operators, failure notices to owners, set-password links), kept here whether or not it went out.'));
    const sel = h('select', { id: 'outbox-state' }, MAIL_STATES.map(([v, l]) => h('option', { value: v, selected: v === want }, l)));
    const error = h('p', { class: 'error', role: 'alert', hidden: true });
    const list = h('ol', { class: 'notes', id: 'outbox-list', 'aria-label': 'Messages, newest first' });
    const empty = h('p', { class: 'empty card', hidden: true }, 'No messages here.');
    section.append(h('div', { class: 'card filters inline' }, h('label', { for: 'outbox-state' }, 'Show'), sel), error, list, empty);
    const fill = async () => {
      try {
        const res = await api('GET', '/mail?limit=500');
        clear(list);
        for (const m of res.items || []) if (!sel.value || m.state === sel.value) list.append(mailItem(m, fill));
        show(empty, list.childElementCount === 0);
        setMessage(error, '');
      } catch (e) {
        setMessage(error, errorText(e, 'Loading the outbox'));
      }
    };
    sel.addEventListener('change', () => { R.setViewParams({ state: sel.value }); fill(); });
    await fill();
  }

  function mailItem(m, refresh) {
    const kind = m.state === 'failed' ? 'error' : m.state === 'sent' ? 'success' : 'pending';
    return h('li', { class: `note card kind-${kind}`, dataset: { id: String(m.id), state: m.state } },
      h('div', { class: 'note-main' },
        h('p', { class: 'note-type' }, h('span', { class: `badge status-${kind}` }, m.state), ' ', h('strong', {}, m.subject)),
        h('p', { class: 'muted small' }, `To ${m.recipient} · made `, timeEl(m.created_at),
          m.sent_at ? ' · sent ' : '', m.sent_at ? timeEl(m.sent_at) : null,
          ` · ${m.attempts} attempt${m.attempts === 1 ? '' : 's'}`),
        m.last_error ? h('p', { class: 'error-text' }, `Last error: ${m.last_error}`) : null,
        h('details', {}, h('summary', {}, 'Message'), h('pre', { class: 'mail-body' }, m.body))),
      m.state === 'pending' ? null : h('button', {
        type: 'button', class: 'btn small', 'aria-label': `Send again: message ${m.id}`,
        onclick: async (e) => {
          e.currentTarget.disabled = true;
          try {
            await api('POST', `/mail/${m.id}/resend`, {});
            toast('The message is queued to be sent again.');
            refresh();
          } catch (err) {
            toast(errorText(err, 'Resending'));
          }
        },
      }, 'Send again'));
  }

  R.registerView({ id: 'outbox', label: 'Mail outbox', operatorOnly: true, load: loadOutbox });
})();
