// Opens an `espsim test --html` report in headless Chromium (playwright-core, the system
// /usr/bin/chromium) from file:// and prints ONE JSON line of what a reader sees:
//
// usage: node report_chromium.js REPORT.html SCREENSHOT.png
// The line: {"version","title","verdict","conn_rows","fault_markers","clock_lines",
// "refused_marks","expectations":[{"name",
// "failed","text","evidence":[...]}],"highlighted","requests":[urls other than the report],
// "no_js":{"verdict","failed_expectations","conn_rows"},"screenshot"}.
//
// `requests` lists every request the page made besides loading the report itself (there must
// be none: the report is self-contained); `highlighted` is how many timeline marks light up
// after clicking the first failed expectation (or the first expectation). `no_js` is the same
// page read with JavaScript off. `clock_lines` counts the run clock's zero line across the
// lanes; `refused_marks` the refused lane's ticks and aggregated bars.
'use strict';
const path = require('path');
const { chromium } = require(path.join(__dirname, 'node_modules', 'playwright-core'));

const [report, screenshot] = process.argv.slice(2);
const executablePath = process.env.CHROMIUM || '/usr/bin/chromium';
const url = 'file://' + path.resolve(report);

async function read(page) {
  return page.evaluate(() => ({
    title: document.title,
    verdict: (document.getElementById('verdict') || {}).textContent || null,
    conn_rows: document.querySelectorAll('svg g.conn-row').length,
    fault_markers: document.querySelectorAll('svg .fault-marker').length,
    clock_lines: document.querySelectorAll('svg .clock-line').length,
    refused_marks: document.querySelectorAll('svg .refused-row .refused, svg .refused-row .bin').length,
    expectations: Array.from(document.querySelectorAll('section.exp')).map((s) => ({
      name: s.getAttribute('data-expectation'),
      failed: s.classList.contains('fail'),
      text: s.innerText,
      evidence: Array.from(s.querySelectorAll('li')).map((li) => li.innerText),
    })),
  }));
}

(async () => {
  const browser = await chromium.launch({
    executablePath,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking',
      '--disable-component-update', '--disable-sync', '--no-first-run'],
  });
  const out = { version: browser.version(), requests: [] };
  try {
    const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
    const page = await context.newPage();
    page.on('request', (r) => { if (r.url() !== url) out.requests.push(r.url()); });
    await page.goto(url, { waitUntil: 'load' });
    Object.assign(out, await read(page));
    const target = (await page.$('section.exp.fail > div')) || (await page.$('section.exp > div'));
    out.highlighted = 0;
    if (target) {
      await target.click();
      out.highlighted = await page.evaluate(() => document.querySelectorAll('svg .hl').length);
    }
    await page.screenshot({ path: screenshot, fullPage: true });
    out.screenshot = screenshot;
    await context.close();

    const plain = await browser.newContext({ javaScriptEnabled: false });
    const page2 = await plain.newPage();
    page2.on('request', (r) => { if (r.url() !== url) out.requests.push(r.url()); });
    await page2.goto(url, { waitUntil: 'load' });
    const seen = await read(page2);
    out.no_js = {
      verdict: seen.verdict,
      conn_rows: seen.conn_rows,
      clock_lines: seen.clock_lines,
      failed_expectations: seen.expectations.filter((e) => e.failed).map((e) => e.name),
    };
    await plain.close();
  } finally {
    await browser.close();
  }
  process.stdout.write(JSON.stringify(out) + '\n', () => process.exit(0));
})().catch((err) => {
  process.stdout.write(JSON.stringify({ launch_error: String(err) }) + '\n', () => process.exit(2));
});
