// Headless Chromium (playwright-core, the system /usr/bin/chromium) drives espsim's live
// dashboard, step by step with the Rust test (tests/tests/dashboard.rs): after each step it
// prints ONE JSON line {"step": NAME, ...what the page shows} and waits for a line on stdin
// (the test checks the emulator's side, then answers) before the next step. stdin closing
// ends the script.
//
// usage: node dashboard_chromium.js CONTROL_URL TOKEN SCREENSHOT_DIR CROSS_ORIGIN_PAGE_URL
'use strict';
const path = require('path');
const readline = require('readline');
const { chromium } = require(path.join(__dirname, 'node_modules', 'playwright-core'));

const [base, token, shotDir, attackerUrl] = process.argv.slice(2);
const executablePath = process.env.CHROMIUM || '/usr/bin/chromium';
const WAIT = { timeout: 10000 };

const lines = [];
const waiters = [];
const input = readline.createInterface({ input: process.stdin });
input.on('line', (l) => (waiters.length ? waiters.shift()(l) : lines.push(l)));
input.on('close', () => process.exit(3));
const nextLine = () => new Promise((resolve) => (lines.length ? resolve(lines.shift()) : waiters.push(resolve)));

// Reports a step and waits for the test's go-ahead.
async function step(name, seen) {
  process.stdout.write(JSON.stringify({ step: name, ...seen }) + '\n');
  await nextLine();
}

const text = (page, sel) => page.$eval(sel, (e) => e.textContent);
const visible = (page, sel) => page.isVisible(sel);
const statusOf = (page, p) => page.evaluate((p) => fetch(p).then((r) => r.status), p);

(async () => {
  const browser = await chromium.launch({
    executablePath,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking',
      '--disable-component-update', '--disable-sync', '--no-first-run'],
  });
  const foreign = [];
  const version = browser.version();
  try {
    // 1. Without the token: the login form and nothing else.
    const anon = await browser.newContext();
    const ap = await anon.newPage();
    const anonStatus = {};
    ap.on('response', (r) => { anonStatus[new URL(r.url()).pathname] = r.status(); });
    await ap.goto(base + '/');
    await ap.waitForSelector('#login', { state: 'visible', ...WAIT });
    await step('anonymous', {
      login_visible: await visible(ap, '#login'),
      dash_visible: await visible(ap, '#dash'),
      status_text: await text(ap, '#status'),
      rows: await ap.$$eval('#rule-rows tr, #session-rows tr, #event-list .event', (n) => n.length),
      responses: anonStatus,
    });
    await anon.close();

    const ctx = await browser.newContext({ viewport: { width: 1280, height: 900 } });
    const page = await ctx.newPage();
    page.on('request', (r) => { if (!r.url().startsWith(base)) foreign.push(r.url()); });
    await page.goto(base + '/');
    await page.waitForSelector('#login', { state: 'visible', ...WAIT });

    // 2. A wrong token: the API's error, still the login.
    await page.fill('#token', 'not-the-token');
    await page.click('#login-form button[type=submit]');
    await page.waitForFunction(() => document.getElementById('login-error').textContent.length > 0, null, WAIT);
    await step('wrong_token', { error: await text(page, '#login-error'), dash_visible: await visible(page, '#dash') });

    // 3. The right token: the dashboard, with the test client's session.
    await page.fill('#token', token);
    await page.click('#login-form button[type=submit]');
    await page.waitForSelector('#dash', { state: 'visible', ...WAIT });
    await page.waitForSelector('#session-rows tr', WAIT);
    await step('sessions', {
      rows: await page.$$eval('#session-rows tr', (rows) => rows.map((r) => [...r.cells].map((c) => c.textContent))),
      count: await text(page, '#session-count'),
      cookies: (await ctx.cookies()).map((c) => ({ name: c.name, httpOnly: c.httpOnly, sameSite: c.sameSite, value_is_token: c.value === token })),
      url: page.url(),
    });

    // 3b. CSRF: a page on another origin of the same site (another port on 127.0.0.1, so the
    // SameSite=Strict cookie is sent), one espsim even allows for CORS, auto-submits a form to
    // POST /button. The test serves it.
    const [forged] = await Promise.all([
      page.waitForResponse((r) => r.url() === base + '/button', WAIT),
      page.goto(attackerUrl),
    ]);
    const forgedHeaders = await forged.request().allHeaders();
    const forgedSeen = {
      status: forged.status(),
      body: await forged.text(),
      cookie_sent: (forgedHeaders.cookie || '').includes('espsim_session='),
      origin: forgedHeaders.origin || null,
    };
    foreign.length = 0; // the attacker page is ours, not the dashboard's
    await page.goto(base + '/');
    await page.waitForSelector('#session-rows tr', WAIT);
    await step('csrf', forgedSeen);

    // 4. The event filter: by kind, then by connection.
    await page.selectOption('#filter-kind', 'ws_opened');
    const kinds = await page.$$eval('#event-list .event', (rows) => rows.map((r) => r.className));
    await page.selectOption('#filter-kind', '');
    const conn = await page.$eval('#session-rows tr', (r) => r.dataset.conn);
    await page.fill('#filter-conn', conn);
    const conns = await page.$$eval('#event-list .event .kind', (rows) => rows.map((r) => r.textContent));
    await page.fill('#filter-conn', '');
    await step('filter', { kinds, conn, conns });

    // 5. Internet mode.
    await page.selectOption('#internet-select', 'online');
    await page.click('#internet-set');
    await page.waitForFunction(() => document.getElementById('internet-mode').textContent === 'online', null, WAIT);
    await step('internet', { mode: await text(page, '#internet-mode') });

    // 6. The button.
    await page.click('#button-press');
    await page.waitForFunction(() => document.getElementById('button-result').textContent.includes('pressed'), null, WAIT);
    await step('button', { result: await text(page, '#button-result') });

    // 7. A bad rule: the API's error with its line and column.
    await page.check('input[name=format][value=yaml]');
    await page.fill('#rule-text', 'fault: refuse\nwhne: { at: 1s }\n');
    await page.click('#rule-add');
    await page.waitForFunction(() => document.getElementById('rule-error').textContent.length > 0, null, WAIT);
    await step('bad_rule', { error: await text(page, '#rule-error') });

    // 8. A good rule: refuse new connections; the page sees it listed and fired.
    await page.fill('#rule-text', 'name: dashboard-refuse\nfault: refuse\n');
    await page.click('#rule-add');
    await page.waitForSelector('#rule-rows tr', WAIT);
    await page.waitForSelector('#event-list .event.fault_applied', WAIT);
    await page.screenshot({ path: path.join(shotDir, 'dashboard.png'), fullPage: true });
    await step('rule_added', {
      rules: await page.$$eval('#rule-rows tr', (rows) => rows.map((r) => r.cells[1].textContent)),
      rule_error: await text(page, '#rule-error'),
      screenshot: path.join(shotDir, 'dashboard.png'),
    });

    // 9. Remove it, then reset: no rules, the start internet mode.
    await page.click('#rule-rows tr button');
    await page.waitForFunction(() => document.querySelectorAll('#rule-rows tr').length === 0, null, WAIT);
    await page.fill('#rule-text', '{"fault": {"dns": "nxdomain"}}');
    await page.check('input[name=format][value=json]');
    await page.click('#rule-add');
    await page.waitForSelector('#rule-rows tr', WAIT);
    await page.click('#faults-reset');
    await page.waitForFunction(() => document.querySelectorAll('#rule-rows tr').length === 0
      && document.getElementById('internet-mode').textContent === 'captive', null, WAIT);
    await step('reset', { mode: await text(page, '#internet-mode') });

    // 10. Log out: the login again, also after a reload, and no data.
    await page.click('#logout');
    await page.waitForSelector('#login', { state: 'visible', ...WAIT });
    await page.reload();
    await page.waitForSelector('#login', { state: 'visible', ...WAIT });
    await step('logged_out', {
      dash_visible: await visible(page, '#dash'),
      state_status: await statusOf(page, '/state'),
      cookies: (await ctx.cookies()).length,
      foreign_requests: foreign,
    });
  } finally {
    await browser.close();
  }
  process.stdout.write(JSON.stringify({ step: 'done', version }) + '\n', () => process.exit(0));
})().catch((err) => {
  process.stdout.write(JSON.stringify({ step: 'error', error: String(err && err.stack || err) }) + '\n',
    () => process.exit(2));
});
