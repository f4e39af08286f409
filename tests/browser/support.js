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
async function startServer() {
  const child = spawn(BIN, [
    'serve', '--listen', '127.0.0.1:0', '--test-clock', '--memory', '--operator-token', OPERATOR,
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

module.exports = { startServer, startBrowser, screenshot, PASSWORD };
