// Starts the real regdesk binary and a headless Chromium for the UI tests.
'use strict';

const { spawn } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const readline = require('node:readline');
const { chromium } = require('playwright-core');

const ROOT = path.resolve(__dirname, '..', '..');
const BIN = process.env.REGDESK_BIN || path.join(ROOT, 'target', 'debug', 'regdesk');
const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
const SHOTS = path.join(__dirname, 'screenshots');
const OPERATOR = 'op-browser-token';
// Every account the tests sign in with gets this web password.
const PASSWORD = 'browser test horse';

/** Starts `regdesk serve` on a free port, in memory, with the clock frozen. */
async function startServer(extraArgs = []) {
  const child = spawn(BIN, [
    'serve', '--listen', '127.0.0.1:0', '--test-clock', '--memory', '--operator-token', OPERATOR, ...extraArgs,
  ], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, RUST_LOG: process.env.RUST_LOG || 'warn' } });
  let stderr = '';
  child.stderr.on('data', (d) => { stderr += d; });
  const first = await new Promise((resolve, reject) => {
    const rl = readline.createInterface({ input: child.stdout });
    const timer = setTimeout(() => reject(new Error(`regdesk did not start:\n${stderr}`)), 15000);
    rl.once('line', (line) => { clearTimeout(timer); resolve(line); });
    child.once('exit', (code) => { clearTimeout(timer); reject(new Error(`regdesk exited ${code}:\n${stderr}`)); });
  });
  const m = /^listening on (http:\/\/\S+)$/.exec(first);
  if (!m) throw new Error(`unexpected first line: ${first}`);
  const server = {
    url: m[1],
    operator: OPERATOR,
    child,
    async call(method, p, token, body) {
      const res = await fetch(`${m[1]}/api/v1${p}`, {
        method,
        headers: { Authorization: `Bearer ${token}`, 'Content-Type': 'application/json' },
        body: body === undefined ? undefined : JSON.stringify(body),
      });
      const text = await res.text();
      const data = text ? JSON.parse(text) : null;
      if (!res.ok) throw new Error(`${method} ${p}: ${res.status} ${text}`);
      return data;
    },
    /** Gives account `id` the tests' web password. */
    async setPassword(id, password = PASSWORD) {
      await this.call('PUT', `/accounts/${id}/password`, OPERATOR, { password });
    },
    stop() {
      child.kill('SIGTERM');
    },
  };
  await server.call('POST', '/clock', OPERATOR, { freeze: true });
  await server.setPassword((await server.call('GET', '/me', OPERATOR)).id);
  return server;
}

/**
 * A small SMTP server on 127.0.0.1 that accepts every message: enough of
 * RFC 5321 for regdesk's mail outbox. Resolves with its smtp:// URL, the
 * messages it took, and close().
 */
async function startSmtpSink() {
  const net = require('node:net');
  const messages = [];
  const server = net.createServer((socket) => {
    let buffer = '';
    let data = null;
    const say = (line) => socket.write(`${line}\r\n`);
    say('220 sink ESMTP');
    socket.on('data', (chunk) => {
      buffer += chunk.toString('utf8');
      let i;
      while ((i = buffer.indexOf('\r\n')) >= 0) {
        const line = buffer.slice(0, i);
        buffer = buffer.slice(i + 2);
        if (data !== null) {
          if (line === '.') { messages.push(data); data = null; say('250 2.0.0 queued'); } else data += `${line}\n`;
          continue;
        }
        const verb = line.slice(0, 4).toUpperCase();
        if (verb === 'EHLO' || verb === 'HELO') say('250 sink');
        else if (verb === 'DATA') { data = ''; say('354 go ahead'); } else if (verb === 'QUIT') { say('221 bye'); socket.end(); } else say('250 2.0.0 ok');
      }
    });
    socket.on('error', () => {});
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { url: `smtp://127.0.0.1:${server.address().port}`, messages, close: () => server.close() };
}

/** Runs axe-core on the page: the serious and critical violations, in words. */
async function axeViolations(page) {
  const source = fs.readFileSync(require.resolve('axe-core/axe.min.js'), 'utf8');
  // Evaluated over the DevTools protocol, which the page's CSP does not
  // govern: the page itself still runs only its own scripts.
  if (!(await page.evaluate(() => typeof window.axe !== 'undefined'))) await page.evaluate(source);
  const result = await page.evaluate(async () => {
    const r = await window.axe.run(document, { resultTypes: ['violations'] });
    return r.violations
      .filter((v) => v.impact === 'serious' || v.impact === 'critical')
      .map((v) => `${v.id} (${v.impact}): ${v.help} at ${v.nodes.map((n) => n.target.join(' ')).join(', ')}`);
  });
  return result;
}

/** Polls `check` until it returns a truthy value or 10 s pass; then it fails with `what`. */
async function until(what, check) {
  const deadline = Date.now() + 10000;
  let last;
  while (Date.now() < deadline) {
    try {
      last = await check();
      if (last) return last;
    } catch (e) {
      last = e;
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`timed out waiting for ${what} (last: ${last})`);
}

/** Signs `name` in on `page` through the sign-in form of the desk at `url`. */
async function signIn(page, url, name, password = PASSWORD) {
  await page.goto(url + '/');
  await page.waitForSelector('#signin', { state: 'visible' });
  await page.fill('#name', name);
  await page.fill('#password', password);
  await page.click('#signin-button');
  await page.waitForSelector('#topbar', { state: 'visible' });
}

/** Signs out with the top bar's button. */
async function signOut(page) {
  await page.click('#sign-out');
  await page.waitForSelector('#signin', { state: 'visible' });
}

/** A fresh headless Chromium with its own profile. */
async function startBrowser() {
  const profile = fs.mkdtempSync(path.join(os.tmpdir(), 'regdesk-chromium-'));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    acceptDownloads: true,
    viewport: { width: 1360, height: 860 },
    args: [
      '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync',
    ],
  });
  return {
    context,
    /** A new tab that fails loudly if the page ever opens a native dialog. */
    async newPage() {
      const page = await context.newPage();
      page.on('dialog', (d) => {
        // window.confirm/alert must never be used.
        d.dismiss();
        throw new Error(`unexpected native dialog: ${d.message()}`);
      });
      return page;
    },
    /** Another browser, with cookies of its own: a second person or device. */
    async startOther() {
      const other = await startBrowser();
      other.page = await other.context.newPage();
      return other;
    },
    async close() {
      await context.close();
      fs.rmSync(profile, { recursive: true, force: true });
    },
  };
}

async function screenshot(page, name) {
  fs.mkdirSync(SHOTS, { recursive: true });
  // A passing toast is not part of the view being recorded.
  await page.evaluate(() => { document.getElementById('toast').hidden = true; });
  await page.screenshot({ path: path.join(SHOTS, `${name}.png`), fullPage: false });
}

module.exports = {
  startServer, startBrowser, screenshot, startSmtpSink, axeViolations, until, signIn, signOut, PASSWORD,
};
