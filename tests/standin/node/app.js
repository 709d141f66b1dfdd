'use strict';
// A stand-in app for the verdict matrix: what a careful Node team writes against the device.
//
// Written from the docs only (docs/reference/protocol.md, docs/guides/ci.md), with the `ws`
// package that scripts/install-test-clients.sh puts in tests/clients/node_modules. It finds the
// device in ESPSIM_WS_URL and behaves like a real app's connection manager:
//
// - connect timeout (TCP + upgrade + `welcome`) of 2.5 s;
// - exponential backoff with EQUAL jitter and a cap: the n-th retry waits b/2 + U(0, b/2),
//   b = min(4 s, 0.5 s x 2^(n-1));
// - `hello` as the first message; the session counts as up when `welcome` arrives;
// - heartbeat with WebSocket ping frames every 1 s; a pong must come back within 1 s, otherwise
//   the link is declared dead, dropped and re-established;
// - leaving (SIGTERM / SIGINT, or ESPSIM_DURATION_MS after start): close 1000, wait for the close
//   handshake (at most 0.8 s), exit 0.
//
// `--variant NAME` breaks exactly one of those rules (see VARIANTS). `--seed N` seeds the jitter
// (default: random). What the app does is printed as JSON lines on stdout.

// The app's clock starts before it loads `ws`: ESPSIM_DURATION_MS counts from here.
const START = process.hrtime.bigint();
const path = require('path');

const WebSocket = loadWs();

const BASE_MS = 500;
const CAP_MS = 4000;
const CONNECT_TIMEOUT_MS = 2500;
const HEARTBEAT_MS = 1000;
const PONG_TIMEOUT_MS = 1000;
const CLOSE_TIMEOUT_MS = 800;
// Longest a run may ask for by ESPSIM_DURATION_MS (the scenario format's own bound is 1 h).
const MAX_DURATION_MS = 3600000;

// Each bad variant changes one setting of the good app.
const VARIANTS = {
  good: {},
  'no-backoff': { retry: 'immediate' }, // retries at once (20 ms: a storm, not a busy loop)
  'constant-delay': { retry: 'constant' }, // every 1 s +- 20 %
  'no-cap': { cap: null }, // doubling without a cap
  'no-jitter': { jitter: false }, // deterministic doubling
  'no-heartbeat': { heartbeat: false },
  'slow-detect': { pongTimeout: 3 * PONG_TIMEOUT_MS }, // gives up on a dead link 3x too late
  'no-close': { close: false }, // leaves without a close frame
  'gives-up': { giveUpAfter: 2 }, // stops retrying after 2 failed attempts in a row
  'two-connections': { connections: 2 }, // opens a second socket once connected
  'no-hello': { hello: false }, // never sends `hello`
  'no-timeout': { connectTimeout: null }, // waits forever for a connect/upgrade/welcome
};

const now = () => Number((process.hrtime.bigint() - START) / 1000000n);

function log(event, fields) {
  console.log(JSON.stringify({ at_ms: now(), app: 'standin-node', event, ...fields }));
}

function loadWs() {
  const local = path.join(__dirname, '..', '..', 'clients', 'node_modules', 'ws');
  try {
    return require(local);
  } catch (e) {
    try {
      return require('ws');
    } catch (e2) {
      console.error(`standin-node: the ws package is missing (${local}): run scripts/install-test-clients.sh`);
      process.exit(2);
    }
  }
}

// mulberry32: a small seeded generator, so `--seed` repeats the same delays.
function rng(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function settingsFor(variant, seed) {
  const c = VARIANTS[variant];
  const random = rng(seed);
  const s = {
    variant,
    retry: c.retry ?? 'exponential',
    cap: c.cap === undefined ? CAP_MS : c.cap,
    jitter: c.jitter ?? true,
    heartbeat: c.heartbeat ?? true,
    pongTimeout: c.pongTimeout ?? PONG_TIMEOUT_MS,
    close: c.close ?? true,
    giveUpAfter: c.giveUpAfter ?? null,
    connections: c.connections ?? 1,
    hello: c.hello ?? true,
    connectTimeout: c.connectTimeout === undefined ? CONNECT_TIMEOUT_MS : c.connectTimeout,
  };
  // Milliseconds to wait before retry number `step` (>= 1) of a run of retries.
  s.delay = (step) => {
    if (s.retry === 'immediate') return 20;
    if (s.retry === 'constant') return 800 + 400 * random();
    let b = BASE_MS * 2 ** Math.min(step - 1, 30);
    if (s.cap !== null) b = Math.min(s.cap, b);
    return s.jitter ? b / 2 + (b / 2) * random() : b;
  };
  return s;
}

// The app's one shutdown signal.
const stop = {
  stopped: false,
  waiters: new Set(),
  fire() {
    if (this.stopped) return;
    this.stopped = true;
    for (const w of this.waiters) w();
    this.waiters.clear();
  },
  // Resolves true when stopped within `ms`, false when the time passed.
  sleep(ms) {
    if (this.stopped) return Promise.resolve(true);
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(timer);
        resolve(true);
      };
      const timer = setTimeout(() => {
        this.waiters.delete(done);
        resolve(false);
      }, ms);
      this.waiters.add(done);
    });
  },
  wait() {
    return this.sleep(2 ** 31 - 1);
  },
};

let nextId = 1;

// Connects, sends hello and waits for welcome, within the connect timeout. Resolves the open
// socket; rejects with the reason.
function openSession(url, s, name) {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, { maxPayload: 1 << 20 });
    let settled = false;
    const settle = (err) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      stop.waiters.delete(onStop);
      ws.removeListener('message', onMessage);
      if (err) {
        ws.removeAllListeners();
        ws.on('error', () => {});
        ws.terminate();
        reject(err);
      } else {
        resolve(ws);
      }
    };
    const timer = s.connectTimeout === null
      ? null
      : setTimeout(() => settle(new Error(`connect timeout after ${s.connectTimeout} ms`)), s.connectTimeout);
    const onStop = () => settle(new Error('stopping'));
    stop.waiters.add(onStop);
    const onMessage = (data) => {
      let msg;
      try {
        msg = JSON.parse(data.toString());
      } catch (e) {
        return;
      }
      if (msg.type === 'welcome') {
        log('ready', { conn: name, device_id: msg.device_id });
        settle(null);
      } else if (msg.type === 'error') {
        settle(new Error(`device refused hello: ${msg.code}`));
      }
    };
    ws.on('error', (e) => settle(e));
    ws.on('close', (code) => settle(new Error(`closed before welcome (${code})`)));
    ws.on('unexpected-response', (req, res) => settle(new Error(`upgrade refused: HTTP ${res.statusCode}`)));
    ws.on('message', onMessage);
    ws.on('open', () => {
      if (!s.hello) {
        settle(null);
        return;
      }
      ws.send(JSON.stringify({ type: 'hello', id: nextId++, client: name, version: '1.0' }));
    });
  });
}

// Serves one session; resolves "stop" (time to leave) or why it was lost.
function runSession(ws, s) {
  return new Promise((resolve) => {
    const outstanding = new Map(); // seq of each unanswered ping -> when it left
    let pinger = null;
    let watchdog = null;
    let ended = false;
    const end = (why) => {
      if (ended) return;
      ended = true;
      clearInterval(pinger);
      clearInterval(watchdog);
      stop.waiters.delete(onStop);
      resolve(why);
    };
    const onStop = () => end('stop');
    stop.waiters.add(onStop);
    ws.on('close', (code) => end(`closed by the device (${code})`));
    ws.on('error', (e) => end(`error: ${e.message}`));
    // A pong echoes its ping's payload (the seq); it answers that ping and every older one.
    ws.on('pong', (data) => {
      const seq = Number(data.toString());
      for (const k of outstanding.keys()) if (k <= seq) outstanding.delete(k);
    });
    ws.on('message', () => {});
    if (s.heartbeat) {
      let seq = 0;
      pinger = setInterval(() => {
        if (ws.readyState !== WebSocket.OPEN) return;
        seq += 1;
        outstanding.set(seq, now());
        ws.ping(String(seq));
      }, HEARTBEAT_MS);
      watchdog = setInterval(() => {
        const oldest = outstanding.values().next();
        if (!oldest.done && now() - oldest.value > s.pongTimeout) end('dead_link');
      }, 50);
    }
  });
}

// Time to go: close 1000 and wait for the device's close frame (bounded).
function leave(ws, s) {
  if (!s.close) {
    log('leaving_without_close');
    process.exit(0);
  }
  return new Promise((resolve) => {
    const timer = setTimeout(() => {
      log('close_failed', { error: 'no close frame from the device in time' });
      ws.terminate();
      resolve();
    }, CLOSE_TIMEOUT_MS);
    ws.once('close', (code) => {
      clearTimeout(timer);
      log('closed', { code: 1000, device_code: code });
      resolve();
    });
    ws.close(1000, 'bye');
  });
}

// Connects, serves, reconnects with backoff, until told to stop.
async function connectionManager(url, s, name, onReady) {
  let retries = 0; // backoff step: waits so far in this run of retries
  let failed = 0; // failed attempts since the last session (what giving up counts)
  while (!stop.stopped) {
    log('attempt', { conn: name, retries });
    let ws;
    try {
      ws = await openSession(url, s, name);
    } catch (e) {
      if (stop.stopped) return;
      failed += 1;
      retries += 1;
      log('failed', { conn: name, failed, error: e.message });
      if (s.giveUpAfter !== null && failed >= s.giveUpAfter) {
        log('giving_up', { conn: name, failed });
        await stop.wait();
        return;
      }
      const delay = s.delay(retries);
      log('backoff', { conn: name, retries, delay_ms: Math.round(delay) });
      if (await stop.sleep(delay)) return;
      continue;
    }
    retries = 0;
    failed = 0;
    if (onReady) {
      onReady();
      onReady = null;
    }
    const why = await runSession(ws, s);
    if (why === 'stop') {
      await leave(ws, s);
      return;
    }
    log('lost', { conn: name, why });
    ws.removeAllListeners();
    ws.on('error', () => {});
    ws.terminate();
    // After a lost session the first retry waits the first backoff step.
    retries = 1;
    const delay = s.delay(retries);
    log('backoff', { conn: name, retries, delay_ms: Math.round(delay) });
    if (await stop.sleep(delay)) return;
  }
}

function parseArgs(argv) {
  const args = { variant: 'good', seed: null };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if ((a === '--variant' || a === '--seed') && i + 1 < argv.length) {
      args[a.slice(2)] = argv[++i];
    } else {
      return { error: `unknown argument ${a}` };
    }
  }
  if (!(args.variant in VARIANTS)) {
    return { error: `unknown variant ${args.variant} (one of ${Object.keys(VARIANTS).join(', ')})` };
  }
  if (args.seed !== null) {
    if (!/^\d{1,9}$/.test(args.seed)) return { error: `--seed wants a number below 10^9, got ${args.seed}` };
    args.seed = Number(args.seed);
  }
  return args;
}

async function main() {
  const args = parseArgs(process.argv.slice(2));
  if (args.error) {
    console.error(`standin-node: ${args.error}\nusage: app.js [--variant NAME] [--seed N]`);
    return 2;
  }
  const url = process.env.ESPSIM_WS_URL;
  if (!url) {
    console.error('standin-node: ESPSIM_WS_URL is not set (run me under `espsim test`)');
    return 2;
  }
  const seed = args.seed ?? Math.floor(Math.random() * 2 ** 32);
  const s = settingsFor(args.variant, seed);
  process.on('SIGTERM', () => stop.fire());
  process.on('SIGINT', () => stop.fire());
  const duration = process.env.ESPSIM_DURATION_MS;
  if (duration) {
    const ms = Number(duration);
    if (!Number.isInteger(ms) || ms <= 0 || ms > MAX_DURATION_MS) {
      console.error(`standin-node: ESPSIM_DURATION_MS must be 1..${MAX_DURATION_MS}, got ${duration}`);
      return 2;
    }
    setTimeout(() => stop.fire(), Math.max(0, ms - now()));
  }
  log('start', { url, variant: args.variant, seed });
  const managers = [];
  const second = () => {
    log('opening_second_connection', {});
    managers.push(connectionManager(url, s, 'second', null));
  };
  await connectionManager(url, s, 'main', s.connections === 2 ? second : null);
  await Promise.all(managers);
  log('stopped', {});
  return 0;
}

main().then((code) => process.exit(code), (e) => {
  console.error(`standin-node: ${e.stack}`);
  process.exit(1);
});
