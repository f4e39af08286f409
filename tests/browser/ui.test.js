// The "Open Work" web UI, driven in headless Chromium against the real binary.
'use strict';

const { test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const support = require('./support');

const {
  startServer, startBrowser, screenshot, until, PASSWORD,
} = support;

let server;
let browser;
let page;
let acme; // customer account {id, token}
let beta;
const ids = {};

const contacts = (name) => ({ contacts: { owner: { name, email: 'owner@example.test' } } });

const rows = () => page.$$eval('#requests-body tr.req-row', (trs) => trs.map((tr) => ({
  id: Number(tr.dataset.id),
  state: tr.dataset.state,
  domain: tr.querySelector('.domain').textContent,
})));

const domains = async () => (await rows()).map((r) => r.domain).sort();

const signIn = (name, password = PASSWORD) => support.signIn(page, server.url, name, password);
const signOut = () => support.signOut(page);

/** Adds a filter row through the builder: field, operator, value. */
async function addFilter(field, op, value) {
  await page.click('#add-filter');
  const row = page.locator('.filter-row').last();
  await row.locator('.f-field').selectOption(field);
  await row.locator('.f-op').selectOption(op);
  const value$ = row.locator('.f-value');
  if ((await value$.evaluate((el) => el.tagName)) === 'SELECT') await value$.selectOption(value);
  else {
    await value$.fill(value);
    await value$.press('Enter');
  }
}

async function clearFilters() {
  await page.click('#clear-filters');
  await until('the filter to clear', async () => (await page.$$('.filter-row')).length === 0);
}

async function openRow(domain) {
  await page.click(`#requests-body tr.req-row:has(.domain:text-is("${domain}"))`);
  await page.waitForSelector('#detail', { state: 'visible' });
  await until(`the detail of ${domain}`, async () => (await page.textContent('#detail-title')) === domain);
}

const actions = () => page.$$eval('#action-buttons button', (bs) => bs.map((b) => b.dataset.action));

before(async () => {
  server = await startServer();
  const op = server.operator;
  acme = await server.call('POST', '/accounts', op, { name: 'acme', email: 'desk@acme.test' });
  beta = await server.call('POST', '/accounts', op, { name: 'beta-hosting', email: 'desk@beta.test' });
  await server.setPassword(acme.id);
  await server.setPassword(beta.id);
  const order = async (who, domain, extra) => {
    const r = await server.call('POST', '/requests', who.token, { domain, operation: 'create', submit: true, ...extra });
    ids[domain] = r.id;
    return r;
  };
  await order(acme, 'alpha-limbo.com', { params: contacts('Alice') });
  await order(acme, 'beta-limbo.com', { params: contacts('Alice') });
  await order(acme, 'premium-shop.com', { params: { ...contacts('Alice'), premium: true } });
  await order(acme, 'finished-one.com', { params: contacts('Alice') });
  await order(acme, 'finished-two.com', { params: contacts('Alice') });
  await order(acme, 'later.com', { operation: 'hold', exec_date: '2099-01-01' });
  await order(acme, 'draft.com', {});
  for (const d of ['bulk-1.com', 'bulk-2.com', 'bulk-3.com']) await order(acme, d, { submit: false });
  await order(beta, 'gamma-limbo.net', { params: contacts('Bob') });
  await order(beta, 'beta-site.net', { params: contacts('<img src=x onerror="window.__xss=1">') });
  await server.call('POST', '/tick', op);
  // Something for the XSS check to render: markup in an annotation.
  await server.call('POST', `/requests/${ids['beta-site.net']}/annotate`, op, {
    text: '<script>window.__xss=2</script><b>not bold</b>',
  });
  browser = await startBrowser();
  page = await browser.newPage();
});

after(async () => {
  if (browser) await browser.close();
  if (server) server.stop();
});

test('the UI is served from the binary with its content types and a CSP', async () => {
  const index = await fetch(server.url + '/');
  assert.equal(index.status, 200);
  assert.match(index.headers.get('content-type'), /^text\/html/);
  assert.match(index.headers.get('content-security-policy'), /script-src 'self'/);
  for (const [file, type] of [['app.js', /^text\/javascript/], ['style.css', /^text\/css/], ['favicon.svg', /^image\/svg\+xml/]]) {
    const res = await fetch(`${server.url}/${file}`);
    assert.equal(res.status, 200, file);
    assert.match(res.headers.get('content-type'), type, file);
    assert.ok(res.headers.get('etag'), file);
    const again = await fetch(`${server.url}/${file}`, { headers: { 'If-None-Match': res.headers.get('etag') } });
    assert.equal(again.status, 304, `${file} revalidates by ETag`);
  }
});

test('a wrong password is refused in words; the operator then sees every account', async () => {
  await page.goto(server.url + '/');
  await page.fill('#name', 'operator');
  await page.fill('#password', 'not the password');
  await page.click('#signin-button');
  await until('the sign-in error', async () => page.isVisible('#signin-error'));
  assert.match(await page.textContent('#signin-error'), /do not match/);
  assert.equal(await page.isVisible('#topbar'), false);

  await signIn('operator');
  // The session is an HttpOnly cookie: no script of the page can read it.
  assert.equal(await page.evaluate(() => document.cookie), '');
  assert.equal(await page.evaluate(() => JSON.stringify(sessionStorage)), '{}');
  assert.equal(await page.textContent('#who-role'), 'operator');
  await until('all requests', async () => (await rows()).length === 12);
  assert.ok(await page.isVisible('th.col-account'), 'operators get an account column');
  const accountCells = await page.$$eval('#requests-body td.col-account', (tds) => tds.map((t) => t.textContent));
  assert.ok(accountCells.includes(`beta-hosting #${beta.id}`));
  assert.ok(accountCells.includes(`acme #${acme.id}`));
});

test('"Internal Status is needs attention" shows only limbo, and the URL keeps it across a reload', async () => {
  await addFilter('internal_status', 'is', 'needs_attention');
  await until('only limbo rows', async () => (await rows()).length === 3);
  assert.deepEqual([...new Set((await rows()).map((r) => r.state))], ['limbo']);
  assert.deepEqual(await domains(), ['alpha-limbo.com', 'beta-limbo.com', 'gamma-limbo.net']);
  // Waiting on: what the API says of limbo (nothing), not a guess.
  assert.deepEqual([...new Set(await page.$$eval('#requests-body td.col-wait', (tds) => tds.map((t) => t.textContent)))], ['—']);
  assert.match(page.url(), /internal_status=needs_attention/);
  await screenshot(page, 'table-needs-attention');

  await page.reload();
  await page.waitForSelector('#topbar', { state: 'visible' });
  await until('the filter after reload', async () => (await rows()).length === 3);
  const row = page.locator('.filter-row').first();
  assert.equal(await row.locator('.f-field').inputValue(), 'internal_status');
  assert.equal(await row.locator('.f-op').inputValue(), 'is');
  assert.equal(await row.locator('.f-value').inputValue(), 'needs_attention');
  assert.equal(await page.getAttribute('#quick-attention', 'aria-pressed'), 'true');
});

test('"is missing information" shows incomplete; several filters combine; "is not" excludes', async () => {
  await page.locator('.filter-row').first().locator('.f-value').selectOption('missing_information');
  await until('only incomplete rows', async () => {
    const r = await rows();
    return r.length === 1 && r[0].domain === 'draft.com' && r[0].state === 'incomplete';
  });
  assert.match(page.url(), /internal_status=missing_information/);

  await clearFilters();
  await addFilter('account', 'is', String(acme.id));
  await addFilter('state', 'is_not', 'new');
  await addFilter('domain', 'contains', 'limbo');
  await until('Acme\'s limbo requests', async () => (await domains()).join() === 'alpha-limbo.com,beta-limbo.com');
  assert.match(page.url(), /account_id=\d+/);
  assert.match(page.url(), /not_state=new/);
  assert.match(page.url(), /domain_contains=limbo/);
  await clearFilters();
  await until('every row back', async () => (await rows()).length === 12);
});

test('sending a limbo request back needs an annotation and moves it to incomplete with it in the history', async () => {
  await addFilter('internal_status', 'is', 'needs_attention');
  await until('limbo rows', async () => (await rows()).length === 3);
  await openRow('alpha-limbo.com');
  assert.deepEqual(await actions(), ['send-back', 'abort', 'retry', 'resolve', 'annotate']);
  assert.match(await page.textContent('#detail'), /unexpected error/);

  await page.click('#action-buttons button[data-action="send-back"]');
  await page.click('#action-form button[type="submit"]');
  await until('the refusal', async () => page.isVisible('#detail-error'));
  assert.match(await page.textContent('#detail-error'), /annotation/);
  assert.equal(await page.getAttribute('#action-form textarea[name="annotation"]', 'aria-invalid'), 'true');
  const unchanged = await server.call('GET', `/requests/${ids['alpha-limbo.com']}`, server.operator);
  assert.equal(unchanged.state, 'limbo');

  await page.fill('#action-form textarea[name="annotation"]', 'The owner e-mail bounces; please give a working address.');
  await page.click('#action-form button[type="submit"]');
  await until('the new state', async () => (await page.textContent('#detail-badges')).includes('Incomplete'));
  const history = await page.textContent('[data-section="history"]');
  assert.match(history, /send_?back|send-back/i);
  assert.match(history, /The owner e-mail bounces/);
  assert.match(await page.textContent('[data-section="annotations"]'), /The owner e-mail bounces/);
  assert.deepEqual(await actions(), ['submit', 'abort', 'annotate']);
  await screenshot(page, 'detail-sent-back');
  // The table follows: the request left the "needs attention" view.
  await until('the row to leave the filter', async () => !(await domains()).includes('alpha-limbo.com'));
  const after = await server.call('GET', `/requests/${ids['alpha-limbo.com']}`, server.operator);
  assert.equal(after.state, 'incomplete');
  assert.equal(after.annotations.at(-1).text, 'The owner e-mail bounces; please give a working address.');

  await page.keyboard.press('Escape');
  await until('the panel to close', async () => !(await page.isVisible('#detail')));
  assert.doesNotMatch(page.url(), /open=/);
});

test('authorising a request in review shows exactly the review actions and moves it on', async () => {
  await clearFilters();
  await addFilter('state', 'is', 'review');
  await until('the review row', async () => (await domains()).join() === 'premium-shop.com');
  await openRow('premium-shop.com');
  assert.deepEqual(await actions(), ['authorise', 'send-back', 'abort', 'annotate']);
  assert.match(await page.textContent('[data-section="parameters"]'), /premium\s*true/);
  assert.match(page.url(), new RegExp(`open=${ids['premium-shop.com']}`));
  await page.click('#action-buttons button[data-action="authorise"]');
  await until('the authorised state', async () => (await page.textContent('#detail-badges')).includes('In progress'));
  assert.match(await page.textContent('[data-section="history"]'), /authorise by regdesk|authorise by/);
  const r = await server.call('GET', `/requests/${ids['premium-shop.com']}`, server.operator);
  assert.equal(r.state, 'processing');
  await page.click('#detail-close');
  await until('the review list to empty', async () => (await rows()).length === 0);
  assert.ok(await page.isVisible('#requests-empty'));
});

test('bulk abort by filter asks first in the page, then reports done and failed counts', async () => {
  await clearFilters();
  await addFilter('domain', 'contains', 'bulk-');
  await until('the bulk rows', async () => (await rows()).length === 3);
  await page.selectOption('#bulk-filter-action', 'abort');

  await page.click('#bulk-filter-go');
  await page.waitForSelector('#confirm[open]');
  assert.match(await page.textContent('#confirm-text'), /Domain contains “bulk-”/);
  await screenshot(page, 'bulk-confirm');
  await page.click('#confirm-cancel');
  await until('the dialog to close', async () => !(await page.$('#confirm[open]')));
  assert.deepEqual([...new Set((await rows()).map((r) => r.state))], ['new'], 'cancel changes nothing');

  await page.click('#bulk-filter-go');
  await page.waitForSelector('#confirm[open]');
  await page.click('#confirm-ok');
  await until('the bulk result', async () => page.isVisible('#bulk-result'));
  assert.match(await page.textContent('#bulk-result'), /Abort: 3 done, 0 failed/);
  await until('aborted rows', async () => (await rows()).every((r) => r.state === 'failed'));
});

test('a bulk action on selected rows reports the rows it could not change', async () => {
  await clearFilters();
  await addFilter('domain', 'contains', 'limbo');
  await until('the limbo-named rows', async () => (await rows()).length === 3);
  for (const d of ['beta-limbo.com', 'gamma-limbo.net', 'alpha-limbo.com']) {
    await page.check(`#requests-body tr:has(.domain:text-is("${d}")) .row-check`);
  }
  assert.equal(await page.textContent('#selected-count'), '3 selected');
  await page.click('#bulk-selected-buttons button[data-bulk="retry"]');
  await page.waitForSelector('#confirm[open]');
  await page.click('#confirm-ok');
  await until('the bulk result', async () => /Retry: 2 done, 1 failed/.test(await page.textContent('#bulk-result')));
  assert.match(await page.textContent('#bulk-result'), new RegExp(`#${ids['alpha-limbo.com']}: .*incomplete`));
  assert.equal(await page.textContent('#selected-count'), 'No rows selected');
  // The retried requests ran again and are back in limbo (the registry keeps failing them).
  await server.call('POST', '/tick', server.operator);
});

test('the table refreshes itself when the event feed moves', async () => {
  await clearFilters();
  await addFilter('domain', 'is', 'later.com');
  await until('the queued row', async () => (await rows()).map((r) => r.state).join() === 'queued');
  await openRow('later.com');
  await server.call('POST', `/requests/${ids['later.com']}/abort`, acme.token, { reason: 'changed my mind' });
  await until('the row to show the abort', async () => (await rows()).map((r) => r.state).join() === 'failed');
  await until('the panel to show it too', async () => /changed my mind/.test(await page.textContent('[data-section="history"]')));
  await page.keyboard.press('Escape');
});

test('CSV export downloads the current filter with the session cookie', async () => {
  await clearFilters();
  await addFilter('internal_status', 'is', 'needs_attention');
  await until('limbo rows', async () => (await rows()).length === 2);
  const [download] = await Promise.all([page.waitForEvent('download'), page.click('#export-csv')]);
  assert.equal(download.suggestedFilename(), 'requests.csv');
  const csv = fs.readFileSync(await download.path(), 'utf8').trim().split('\n');
  assert.match(csv[0], /^id,state,operation,domain/);
  assert.equal(csv.length, 3);
  assert.ok(csv.slice(1).every((l) => l.includes('"limbo"')));
});

test('API strings are shown as text, never as markup', async () => {
  await clearFilters();
  await addFilter('domain', 'is', 'beta-site.net');
  await until('the row', async () => (await rows()).length === 1);
  await openRow('beta-site.net');
  const notes = await page.textContent('[data-section="annotations"]');
  assert.match(notes, /<script>window.__xss=2<\/script><b>not bold<\/b>/);
  assert.match(await page.textContent('[data-section="parameters"]'), /<img src=x onerror=/);
  assert.equal(await page.$$eval('#detail img, #detail script, #detail b', (els) => els.length), 0);
  assert.equal(await page.evaluate(() => window.__xss), undefined);
  await page.keyboard.press('Escape');
});

test('the keyboard drives it: / focuses the filter value, Enter opens a row, Escape closes', async () => {
  await clearFilters();
  await until('every row', async () => (await rows()).length === 12);
  await page.locator('#requests-title').click();
  await page.keyboard.press('/');
  assert.equal(await page.evaluate(() => document.activeElement.classList.contains('f-value')), true);
  await page.keyboard.type('premium');
  await until('the typed filter', async () => (await domains()).join() === 'premium-shop.com');
  assert.match(page.url(), /domain_contains=premium/);

  await page.focus('#requests-body tr.req-row');
  await page.keyboard.press('Enter');
  await until('the panel', async () => (await page.textContent('#detail-title')) === 'premium-shop.com');
  await page.keyboard.press('Escape');
  await until('the panel to close', async () => !(await page.isVisible('#detail')));
  assert.equal(await page.evaluate(() => document.activeElement.matches('tr.req-row')), true, 'focus returns to the row');
});

test('the scheduled tasks list queued requests with a future date', async () => {
  const r = await server.call('POST', '/requests', acme.token, {
    domain: 'next-year.com', operation: 'delete', submit: true, exec_date: '2099-06-01',
  });
  await page.click('#tab-scheduled');
  await until('the scheduled row', async () => (await page.textContent('#scheduled-body')).includes('next-year.com'));
  assert.match(await page.textContent('#scheduled-body'), /2099-06-01 00:00/);
  await page.click(`#scheduled-body tr[data-id="${r.id}"]`);
  await until('its detail', async () => (await page.textContent('#detail-title')) === 'next-year.com');
  await page.keyboard.press('Escape');
  await page.click('#tab-requests');
});

test('resolving a limbo request asks for the outcome and records the note', async () => {
  await clearFilters();
  await addFilter('domain', 'is', 'gamma-limbo.net');
  await until('the row', async () => (await rows()).map((r) => r.state).join() === 'limbo');
  await openRow('gamma-limbo.net');
  await page.click('#action-buttons button[data-action="resolve"]');
  assert.equal(await page.isVisible('#action-form select[name="failure"]'), false, 'failure only for failed');
  await page.selectOption('#action-form select[name="outcome"]', 'failed');
  await page.selectOption('#action-form select[name="failure"]', 'declined');
  await page.fill('#action-form textarea[name="note"]', 'The registry will not take this name.');
  await page.click('#action-form button[type="submit"]');
  await until('the failed state', async () => (await page.textContent('#detail-badges')).includes('declined'));
  assert.match(await page.textContent('[data-section="history"]'), /The registry will not take this name\./);
  assert.deepEqual(await actions(), ['annotate']);

  await page.click('#action-buttons button[data-action="annotate"]');
  await page.fill('#action-form textarea[name="text"]', 'Told the customer by phone.');
  await page.click('#action-form button[type="submit"]');
  await until('the annotation', async () => /Told the customer by phone\./.test(await page.textContent('[data-section="annotations"]')));
  await page.keyboard.press('Escape');
});

test('next page follows the cursor and first page goes back', async () => {
  for (let i = 0; i < 53; i++) {
    await server.call('POST', '/requests', beta.token, { domain: `page-${i}.org`, operation: 'create' });
  }
  await clearFilters();
  await addFilter('domain', 'contains', 'page-');
  await until('a full first page', async () => (await rows()).length === 50);
  assert.match(await page.textContent('#page-info'), /Showing 1–50 · page 1/);
  const first = await domains();
  await page.click('#next-page');
  await until('the second page', async () => (await rows()).length === 3);
  assert.match(await page.textContent('#page-info'), /Showing 51–53 of 53 · page 2/);
  assert.equal(await page.isDisabled('#next-page'), true);
  assert.ok((await domains()).every((d) => !first.includes(d)), 'no row twice');
  await page.click('#first-page');
  await until('the first page again', async () => (await rows()).length === 50);
});

test('a customer sees only their own requests and reads the notification queue oldest first', async () => {
  await signOut();
  await signIn('acme');
  assert.equal(await page.textContent('#who-role'), 'customer');
  await clearFilters();
  await until('Acme\'s rows', async () => (await rows()).length > 0);
  assert.ok(!(await domains()).some((d) => d.endsWith('.net')), 'no other account\'s requests');
  assert.equal(await page.isVisible('th.col-account'), false);
  assert.deepEqual(await page.$$eval('#bulk-selected-buttons button', (bs) => bs.map((b) => b.dataset.bulk)), ['abort']);

  const unread = (await server.call('GET', '/notifications?status=unread', acme.token)).items;
  assert.ok(unread.length >= 2);
  await page.click('#tab-notifications');
  await until('the queue', async () => (await page.$$('#notification-list li')).length === unread.length);
  const shown = await page.$$eval('#notification-list li', (lis) => lis.map((li) => Number(li.dataset.id)));
  assert.deepEqual(shown, unread.map((n) => n.id), 'oldest unread first');
  assert.match(await page.textContent('#notification-list li:first-child code'), /^domain\/create\/(success|error)$/);
  assert.equal(await page.textContent('#unread-count'), String(unread.length));
  await screenshot(page, 'notifications');

  await page.click(`#notification-list li[data-id="${unread[0].id}"] button`);
  await until('the read one to leave', async () => !(await page.$(`#notification-list li[data-id="${unread[0].id}"]`)));
  await until('the badge to count down', async () => (await page.textContent('#unread-count')) === String(unread.length - 1));
  const oldest = await fetch(`${server.url}/api/v1/notification`, { headers: { Authorization: `Bearer ${acme.token}` } });
  assert.equal((await oldest.json()).id, unread[1].id);
});

test('it follows the dark colour scheme', async () => {
  await page.emulateMedia({ colorScheme: 'dark' });
  await page.click('#tab-requests');
  await until('rows', async () => (await rows()).length > 0);
  await openRow('premium-shop.com');
  const bg = await page.evaluate(() => getComputedStyle(document.body).backgroundColor);
  const [r, g, b] = bg.match(/\d+/g).map(Number);
  assert.ok(r + g + b < 150, `dark background, got ${bg}`);
  await screenshot(page, 'dark-detail');
  const invoice = await page.textContent('[data-section="invoice items"]');
  assert.match(invoice, /create/);
  assert.match(invoice, /Total\s*\d+\.\d\d/);
  await page.$eval('.detail-body', (el) => { el.scrollTop = el.scrollHeight; });
  await screenshot(page, 'dark-detail-lower');
  await page.keyboard.press('Escape');
  await screenshot(page, 'dark-table');
  await page.emulateMedia({ colorScheme: 'light' });
});

test('at 360 px wide nothing scrolls sideways', async () => {
  await page.setViewportSize({ width: 360, height: 780 });
  const noSideScroll = () => page.evaluate(() => document.documentElement.scrollWidth <= window.innerWidth);
  await page.click('#tab-requests');
  await addFilter('domain', 'contains', 'com');
  await until('rows', async () => (await rows()).length > 0);
  assert.equal(await noSideScroll(), true, 'the table');
  await screenshot(page, 'narrow-table');
  await openRow('draft.com');
  assert.equal(await noSideScroll(), true, 'the detail panel');
  assert.match(await page.textContent('[data-section="missing"]'), /contacts\.owner\.name/);
  await screenshot(page, 'narrow-detail');
  await page.keyboard.press('Escape');
  await page.click('#tab-notifications');
  assert.equal(await noSideScroll(), true, 'the notifications');
  await page.setViewportSize({ width: 1360, height: 860 });
});
