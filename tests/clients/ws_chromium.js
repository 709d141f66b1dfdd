// Headless Chromium (driven by playwright-core, the system /usr/bin/chromium) opens a WebSocket
// from a page; prints ONE JSON line of what page script saw, plus the console lines.
//
// usage: node ws_chromium.js URL MODE [LIMIT_SECONDS]
//   session    open, send hello, wait for welcome, app ping -> pong, close 1000
//   hold       open, send hello, read until the connection ends (or LIMIT)
// The line: {"client","version","opened","received":[types],"error_event","close_code",
// "close_reason","was_clean","ended_by","console":[...],"elapsed_ms"}.
'use strict';
const path = require('path');
const { chromium } = require(path.join(__dirname, 'node_modules', 'playwright-core'));

const [url, mode, limitArg] = process.argv.slice(2);
const limitMs = Math.round(parseFloat(limitArg || '5') * 1000);
const executablePath = process.env.CHROMIUM || '/usr/bin/chromium';

(async () => {
  const started = Date.now();
  const browser = await chromium.launch({
    executablePath,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking',
      '--disable-component-update', '--disable-sync', '--no-first-run'],
  });
  const out = { client: 'chromium', version: browser.version(), console: [] };
  try {
    const page = await browser.newPage();
    page.on('console', (msg) => out.console.push(msg.text()));
    const seen = await page.evaluate(([url, mode, limitMs]) => new Promise((resolve) => {
      const r = { opened: false, received: [], error_event: false, close_code: null,
        close_reason: null, was_clean: null, ended_by: null };
      const ws = new WebSocket(url);
      const timer = setTimeout(() => { r.ended_by = 'limit'; resolve(r); }, limitMs);
      ws.onopen = () => {
        r.opened = true;
        ws.send(JSON.stringify({ type: 'hello', client: 'chromium', version: '1' }));
      };
      ws.onerror = () => { r.error_event = true; };
      ws.onmessage = (e) => {
        let type = '<non-json>';
        try { type = JSON.parse(e.data).type; } catch (_) { /* non-json */ }
        r.received.push(type);
        if (mode === 'session') {
          if (type === 'welcome') ws.send(JSON.stringify({ type: 'ping', seq: 1 }));
          if (type === 'pong') { r.ended_by = 'client'; ws.close(1000, 'done'); }
        }
      };
      ws.onclose = (e) => {
        r.close_code = e.code; r.close_reason = e.reason; r.was_clean = e.wasClean;
        r.ended_by = r.ended_by || (r.opened ? 'server_or_network' : 'error');
        clearTimeout(timer);
        resolve(r);
      };
    }), [url, mode, limitMs]);
    Object.assign(out, seen);
  } finally {
    await browser.close();
  }
  out.elapsed_ms = Date.now() - started;
  process.stdout.write(JSON.stringify(out) + '\n', () => process.exit(0));
})().catch((err) => {
  process.stdout.write(JSON.stringify({ client: 'chromium', launch_error: String(err) }) + '\n',
    () => process.exit(2));
});
