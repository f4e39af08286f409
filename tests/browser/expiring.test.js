// The Expiring view, driven in headless Chromium against the real binary:
// a customer's domains by expiry, the auto-renew switch, a renewal and a
// restore; an operator's renewal of all shown.
'use strict';

const { test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const support = require('./support');

const { startServer, startBrowser } = support;

let server;
let browser;
let page;
let alice;
const errors = [];

const owner = { contacts: { owner: { name: 'Alice', email: 'alice@example.test' } } };

async function signIn(name) {
  await support.signIn(page, server.url, name);
  await page.waitForSelector('#tab-expiring');
  await page.click('#tab-expiring');
}

const rows = () => page.$$eval('#expiring-body tr', (trs) => trs.map((tr) => {
  const cells = [...tr.querySelectorAll('td')].map((td) => td.textContent.trim());
  return { name: cells[0], lifecycle: cells[2], auto: tr.querySelector('input').checked, actions: cells[cells.length - 1] };
}));

async function until(what, check) {
  const deadline = Date.now() + 10000;
  let last;
  while (Date.now() < deadline) {
    last = await check().catch((e) => e);
    if (last === true) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  assert.fail(`timed out waiting for ${what} (last: ${last})`);
}

before(async () => {
  server = await startServer();
  alice = await server.call('POST', '/accounts', server.operator, { name: 'alice', email: 'alice@example.test' });
  await server.setPassword(alice.id);
  for (const name of ['early.test', 'later.test']) {
    await server.call('POST', '/requests', alice.token, { domain: name, operation: 'create', params: owner, submit: true });
    await server.call('POST', '/tick', server.operator);
    await server.call('POST', '/clock', server.operator, { advance: '40d' });
  }
  // early.test is in redemption, later.test still in grace.
  await server.call('POST', '/clock', server.operator, { advance: '340d' });
  browser = await startBrowser();
  page = await browser.context.newPage();
  page.on('pageerror', (e) => errors.push(String(e)));
});

after(async () => {
  if (browser) await browser.close();
  if (server) server.stop();
});

test('a customer sees their domains by expiry, switches auto-renew, renews and restores', async () => {
  await signIn('alice');
  await until('the rows', async () => (await rows()).length === 2);
  assert.equal(await page.$eval('#view-requests', (e) => e.hidden), true);
  const [early, later] = await rows();
  assert.deepEqual([early.name, early.lifecycle, early.actions], ['early.test', 'redemption', 'Restore']);
  assert.deepEqual([later.name, later.lifecycle, later.actions], ['later.test', 'expired', 'Renew']);
  assert.deepEqual(await support.axeViolations(page), [], 'the Expiring view passes axe-core');
  await support.screenshot(page, 'expiring');

  await page.click('#expiring-body tr:nth-child(2) input[type=checkbox]');
  await until('the switch', async () => (await server.call('GET', '/domains/later.test', alice.token)).auto_renew === true);

  await page.click('#expiring-body tr:nth-child(2) button');
  await until('the renewal', async () => /renew of later.test ordered/.test(await page.textContent('#expiring-status')));
  await page.click('#expiring-body tr:nth-child(1) button');
  await until('the restore', async () => /restore of early.test ordered: request \d+ is review/.test(await page.textContent('#expiring-status')));

  // Another tab takes the page back.
  await page.click('#tab-requests');
  await until('the requests view', async () => !(await page.$eval('#view-requests', (e) => e.hidden)));
  assert.equal(await page.$eval('#view-expiring', (e) => e.hidden), true);
  assert.deepEqual(errors, []);
});
