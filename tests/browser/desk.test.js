// The web desk as people use it: password sign-in and sessions, ordering,
// finishing an incomplete request, the portfolio, charges, the operators'
// accounts and mail outbox, and axe-core on every view.
'use strict';

const { test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const support = require('./support');

const {
  startServer, startBrowser, screenshot, startSmtpSink, axeViolations, until, PASSWORD,
} = support;

let server;
let sink;
let browser;
let page;
let carol; // customer {id, token}

const owner = { contacts: { owner: { name: 'Carol Owner', email: 'carol@example.test' } } };

const signIn = (p, name, password = PASSWORD) => support.signIn(p, server.url, name, password);
const { signOut } = support;

/** Opens a view by its tab and waits for its heading. */
async function openView(id) {
  await page.click(`#tab-${id}`);
  await page.waitForSelector(`#view-${id} h1`, { state: 'visible' });
}

/** No serious or critical axe-core violation on what the page shows now. */
async function accessible(what) {
  const found = await axeViolations(page);
  assert.deepEqual(found, [], `${what}:\n${found.join('\n')}`);
}

before(async () => {
  sink = await startSmtpSink();
  server = await startServer(['--smtp-url', sink.url]);
  carol = await server.call('POST', '/accounts', server.operator, { name: 'carol', email: 'carol@example.test' });
  await server.setPassword(carol.id);
  browser = await startBrowser();
  page = await browser.newPage();
});

after(async () => {
  if (browser) await browser.close();
  if (server) server.stop();
  if (sink) sink.close();
});

test('the sign-in page asks for a name and password and says where they come from', async () => {
  await page.goto(server.url + '/');
  await page.waitForSelector('#signin', { state: 'visible' });
  assert.match(await page.textContent('#signin'), /operator gives you your account name and a password/);
  assert.equal(await page.getAttribute('#name', 'autocomplete'), 'username');
  assert.equal(await page.getAttribute('#password', 'autocomplete'), 'current-password');
  // Submitting empty names the field, beside it, without a request.
  await page.click('#signin-button');
  assert.match(await page.textContent('#signin-error'), /account name/);
  assert.equal(await page.getAttribute('#name', 'aria-invalid'), 'true');
  await accessible('sign-in');
  await screenshot(page, 'signin');
});

test('a password signs in, a new tab stays signed in, and signing out ends the session', async () => {
  await signIn(page, 'carol');
  assert.equal(await page.textContent('#who-name'), 'carol');
  const second = await browser.context.newPage();
  await second.goto(server.url + '/');
  await second.waitForSelector('#topbar', { state: 'visible' });
  assert.equal(await second.textContent('#who-name'), 'carol');
  await signOut(second);
  // The first tab's session was the same one: it is over too.
  await page.reload();
  await page.waitForSelector('#signin', { state: 'visible' });
  await second.close();
  await signIn(page, 'carol');
});

test('the account view lists sessions and ends another one', async () => {
  const other = await browser.startOther();
  try {
    await signIn(other.page, 'carol');
    await openView('account');
    await until('two sessions', async () => (await page.$$('#sessions tbody tr')).length === 2);
    assert.match(await page.textContent('#sessions'), /this browser/);
    await accessible('account');
    await screenshot(page, 'account');
    await page.click('#sessions tbody button');
    await until('one session', async () => (await page.$$('#sessions tbody tr')).length === 1);
    await other.page.reload();
    await other.page.waitForSelector('#signin', { state: 'visible' });
    // Changing the password asks for the present one, beside its field.
    await page.fill('#own-password', 'carol second horse');
    await page.click('#view-account form button[type="submit"]');
    await until('the refusal', async () => page.isVisible('#own-password-current-error'));
    assert.match(await page.textContent('#own-password-current-error'), /current_password/);
    await page.fill('#own-password-current', PASSWORD);
    await page.fill('#own-password', PASSWORD);
    await page.click('#view-account form button[type="submit"]');
    await until('the change', async () => !(await page.isVisible('#own-password-current-error')) && (await page.inputValue('#own-password')) === '');
  } finally {
    await other.close();
  }
});

test('the account view makes an API token shown once, revokes it, and refuses a private webhook', async () => {
  await openView('account');
  await page.click('#new-token-button');
  const token = await page.inputValue('#new-token');
  assert.match(token, /^rd_/);
  const me = await fetch(`${server.url}/api/v1/me`, { headers: { Authorization: `Bearer ${token}` } });
  assert.equal(me.status, 200);
  const id = (await page.$$eval('#tokens li', (lis) => lis.map((li) => li.textContent))).length;
  assert.ok(id >= 2);
  await page.click('#tokens li:last-child button');
  await page.click('#confirm-ok');
  await until('the revoked token to go', async () => (await page.$$('#tokens li')).length === id - 1);
  const gone = await fetch(`${server.url}/api/v1/me`, { headers: { Authorization: `Bearer ${token}` } });
  assert.equal(gone.status, 401);
  await page.fill('#hook-url', 'http://127.0.0.1/hook');
  await page.click('#hook-box button[type="submit"]');
  await until('the refusal beside the URL', async () => page.isVisible('#hook-url-error'));
  assert.equal(await page.getAttribute('#hook-url', 'aria-invalid'), 'true');
  await accessible('account with refusals');
});

test('five wrong passwords lock the account, and the page says so', async () => {
  const other = await browser.startOther();
  try {
    const p = other.page;
    await p.goto(server.url + '/');
    for (let i = 0; i < 5; i++) {
      await p.fill('#name', 'carol');
      await p.fill('#password', `wrong ${i}`);
      await p.click('#signin-button');
      await until('the refusal', async () => /do not match/.test(await p.textContent('#signin-error')));
      await p.evaluate(() => { document.getElementById('signin-error').hidden = true; });
    }
    await p.fill('#name', 'carol');
    await p.fill('#password', PASSWORD);
    await p.click('#signin-button');
    await until('the lock', async () => /Too many failed sign-ins/.test(await p.textContent('#signin-error')));
    assert.equal(await p.isVisible('#topbar'), false);
  } finally {
    await other.close();
  }
  // An operator lifts it.
  await server.call('POST', `/accounts/${carol.id}/unlock`, server.operator, {});
});

test('an order refused by the server shows the refusal beside its field', async () => {
  await openView('order');
  await accessible('order');
  await page.selectOption('#order-operation', 'create');
  await page.fill('#order-domain', 'shop-refused.com');
  await page.click('#order-submit');
  // Checked here first: the owner is required.
  assert.match(await page.textContent('#order-owner-name-error'), /owner's name/);
  assert.equal(await page.getAttribute('#order-owner-name', 'aria-invalid'), 'true');
  await page.fill('#order-owner-name', 'Carol Owner');
  await page.fill('#order-owner-email', 'carol@example.test');
  await page.fill('#order-nameservers', 'not_a-host!');
  await page.click('#order-submit');
  await until('the server\'s refusal', async () => page.isVisible('#order-nameservers-error'));
  assert.match(await page.textContent('#order-nameservers-error'), /params\.nameservers\[0\]/);
  assert.equal(await page.getAttribute('#order-nameservers', 'aria-invalid'), 'true');
  await accessible('order with refusals');
  await screenshot(page, 'order-refused');
});

test('ordering a domain with the keyboard, then watching it finish', async () => {
  await page.fill('#order-domain', 'shop-new.com');
  await page.fill('#order-nameservers', 'ns1.example.net\nns2.example.net');
  await page.focus('#order-submit');
  await page.keyboard.press('Enter');
  await until('the order', async () => page.isVisible('#order-status'));
  assert.match(await page.textContent('#order-status'), /shop-new\.com/);
  await server.call('POST', '/tick', server.operator);
  await until('the order to finish', async () => (await page.getAttribute('#order-status', 'data-state')) === 'finished');
  await screenshot(page, 'order-finished');
});

test('an incomplete request is finished by filling in exactly what is missing', async () => {
  const r = await server.call('POST', '/requests', carol.token, { domain: 'later-owner.com', operation: 'create', submit: true });
  assert.equal(r.state, 'incomplete');
  await page.click('#tab-requests');
  await page.goto(`${server.url}/#open=${r.id}`);
  await page.waitForSelector('#fill-missing', { state: 'visible' });
  await page.click('#fill-missing');
  await page.waitForSelector('#finish-form', { state: 'visible' });
  const inputs = await page.$$eval('#finish-form input, #finish-form textarea', (els) => els.map((e) => e.id));
  assert.deepEqual(inputs, ['order-owner-name', 'order-owner-email']);
  await accessible('finish');
  await screenshot(page, 'finish-incomplete');
  await page.fill('#order-owner-name', 'Late Owner');
  await page.click('#finish-submit');
  assert.match(await page.textContent('#order-owner-email-error'), /e-mail/);
  await page.fill('#order-owner-email', 'late@example.test');
  await page.click('#finish-submit');
  await until('it to be queued', async () => ['queued', 'finished'].includes(await page.getAttribute('#order-status', 'data-state')));
  await server.call('POST', '/tick', server.operator);
  await until('it to finish', async () => (await page.getAttribute('#order-status', 'data-state')) === 'finished');
});

test('the portfolio shows the domain with its lock and name servers, and acts on it', async () => {
  await openView('domains');
  const row = '#domains-body tr[data-domain="shop-new.com"]';
  await page.waitForSelector(row);
  const text = await page.textContent(row);
  assert.match(text, /locked/);
  assert.match(text, /ns1\.example\.net, ns2\.example\.net/);
  assert.match(text, /Carol Owner/);
  assert.match(text, /\d{4}-\d\d-\d\d \d\d:\d\d:\d\d/, 'expiry with seconds');
  await page.fill('#domains-q', 'later');
  await until('the filter', async () => (await page.$$('#domains-body tr')).length === 1);
  assert.match(page.url(), /q=later/);
  await accessible('domains');
  await screenshot(page, 'domains');
  await page.fill('#domains-q', '');
  await page.waitForSelector(row);
  await page.click(`${row} a[aria-label="Renew shop-new.com"]`);
  await page.waitForSelector('#order-form');
  assert.equal(await page.inputValue('#order-operation'), 'renew');
  assert.equal(await page.inputValue('#order-domain'), 'shop-new.com');
});

test('charges show the month\'s items and total, and download as CSV', async () => {
  await openView('charges');
  await until('the charge', async () => /shop-new\.com/.test(await page.textContent('#charges-body')));
  assert.match(await page.textContent('#charges-total'), /^Total for \d{4}-\d\d: \d+\.\d\d \(2 items\)$/);
  await accessible('charges');
  await screenshot(page, 'charges');
  const [download] = await Promise.all([page.waitForEvent('download'), page.click('#charges-csv')]);
  assert.match(download.suggestedFilename(), /^charges-\d{4}-\d\d\.csv$/);
  await page.fill('#charges-month', '2001-01');
  await page.dispatchEvent('#charges-month', 'change');
  await until('an empty month', async () => /No charges in 2001-01/.test(await page.textContent('#charges-total')));
  assert.match(page.url(), /month=2001-01/);
});

test('an operator creates an account, explains its review rule, and sets its password', async () => {
  await signOut(page);
  await signIn(page, 'operator');
  await openView('accounts');
  assert.match(await page.textContent('article[data-account="carol"] .review-words'), /Orders over 500\.00 are reviewed/);
  await page.click('#new-account');
  await page.fill('#acct-name', 'dave');
  await page.fill('#acct-email', 'not an address');
  await page.click('#new-account-form button[type="submit"]');
  await until('the refusal beside the e-mail', async () => page.isVisible('#acct-email-error'));
  await page.fill('#acct-email', 'dave@example.test');
  await page.check('#acct-review-all');
  await page.click('#new-account-form button[type="submit"]');
  await page.waitForSelector('#created-account');
  const daveToken = await page.inputValue('#created-token');
  assert.match(daveToken, /^rd_/);
  const card = 'article[data-account="dave"]';
  await page.waitForSelector(card);
  assert.match(await page.textContent(`${card} .review-words`), /Every order is reviewed/);
  await page.click(`${card} button[aria-label="Set password for dave"]`);
  await page.fill(`${card} input[type="password"]`, 'dave horse battery');
  await page.click(`${card} form button[type="submit"]`);
  await until('the confirmation', async () => /password of dave is set/.test(await page.textContent(card)));
  await accessible('accounts');
  await screenshot(page, 'accounts');
  // The review rule, in words, where an order waits on it.
  const held = await server.call('POST', '/requests', daveToken, { domain: 'dave-shop.com', operation: 'create', submit: true, params: owner });
  assert.equal(held.state, 'review');
  await page.goto(`${server.url}/#open=${held.id}`);
  await page.waitForSelector('[data-section="review"]');
  assert.match(await page.textContent('[data-section="review"]'), /dave has every order reviewed/);
  await page.keyboard.press('Escape');
  const other = await browser.startOther();
  try {
    await signIn(other.page, 'dave', 'dave horse battery');
    assert.equal(await other.page.textContent('#who-role'), 'customer');
  } finally {
    await other.close();
  }
});

test('a set-password link made for an account sets the password and signs in', async () => {
  await openView('accounts');
  const card = 'article[data-account="carol"]';
  // SMTP is configured here: the link goes out by mail.
  await page.click(`${card} button[aria-label="Set-password link for carol"]`);
  await until('the mailed note', async () => /mailed to carol@example\.test/.test(await page.textContent(card)));
  await server.call('POST', '/tick', server.operator);
  // The body may come quoted-printable: soft line breaks, '=' as =3D.
  const plain = (m) => m.replace(/=\r?\n/g, '').replace(/=3D/g, '=');
  const mail = await until('the mail', async () => sink.messages.map(plain).find((m) => m.includes('#set-password=')));
  const link = /(\/#set-password=[A-Za-z0-9_]+)/.exec(mail)[1];
  const other = await browser.startOther();
  try {
    await other.page.goto(server.url + link);
    await other.page.waitForSelector('#set-password', { state: 'visible' });
    await other.page.fill('#new-password', 'carol new horse');
    await other.page.click('#set-password-button');
    await other.page.waitForSelector('#topbar', { state: 'visible' });
    assert.equal(await other.page.textContent('#who-name'), 'carol');
  } finally {
    await other.close();
  }
});

test('the outbox shows what was mailed and sends a message again', async () => {
  await server.call('POST', '/requests', carol.token, { domain: 'broken-fail.com', operation: 'create', submit: true, params: owner });
  await server.call('POST', '/tick', server.operator);
  await openView('outbox');
  const item = '#outbox-list li:has-text("broken-fail.com failed")';
  await page.waitForSelector(item);
  assert.equal(await page.getAttribute(item, 'data-state'), 'sent');
  const before = sink.messages.filter((m) => m.includes('broken-fail.com failed')).length;
  await page.click(`${item} button`);
  await until('pending again', async () => (await page.getAttribute(item, 'data-state')) === 'pending');
  await server.call('POST', '/tick', server.operator);
  await until('the second copy', async () => sink.messages.filter((m) => m.includes('broken-fail.com failed')).length === before + 1);
  await page.selectOption('#outbox-state', 'sent');
  assert.match(page.url(), /state=sent/);
  await accessible('outbox');
  await screenshot(page, 'outbox');
});

test('the operator\'s notifications say where limbo notices go; the core views pass axe-core', async () => {
  await page.click('#tab-notifications');
  await page.waitForSelector('#limbo-notices', { state: 'visible' });
  assert.match(await page.textContent('#limbo-notices'), /mailed to every operator/);
  await accessible('notifications');
  await screenshot(page, 'notifications-operator');
  await page.click('#tab-scheduled');
  await page.waitForSelector('#view-scheduled', { state: 'visible' });
  await accessible('scheduled');
  await page.click('#tab-requests');
  await page.waitForSelector('#requests-body tr.req-row');
  // No filter: "everything matching the filter" is not offered.
  assert.equal(await page.isVisible('#bulk-filter-action'), false);
  await accessible('work requests');
  await screenshot(page, 'requests');
  await page.click('#requests-body tr.req-row');
  await page.waitForSelector('#detail', { state: 'visible' });
  await accessible('request detail');
  await screenshot(page, 'request-detail');
});

test('at 360 px wide the new views do not scroll sideways', async () => {
  await page.keyboard.press('Escape');
  await page.waitForSelector('#detail', { state: 'hidden' });
  await page.setViewportSize({ width: 360, height: 780 });
  try {
    for (const view of ['order', 'domains', 'charges', 'account', 'accounts', 'outbox']) {
      await openView(view);
      const wide = await page.evaluate(() => [...document.querySelectorAll('body *')]
        .filter((el) => el.getBoundingClientRect().right > window.innerWidth + 1 && el.offsetParent !== null)
        .slice(0, 5).map((el) => `${el.tagName}#${el.id}.${el.className} ${Math.round(el.getBoundingClientRect().right)}`));
      assert.deepEqual(wide, [], view);
      await screenshot(page, `narrow-${view}`);
    }
  } finally {
    await page.setViewportSize({ width: 1360, height: 860 });
  }
});
