// Node `ws` against a device URL; prints ONE JSON line of what it saw.
//
// usage: node ws_node.js URL MODE [LIMIT_SECONDS] [HANDSHAKE_TIMEOUT_SECONDS]
//   session    open, send hello, wait for welcome, app ping -> pong, close 1000
//   hold       open, send hello, read until the connection ends (or LIMIT)
//   wsping     open, send hello, 0.5 s later a WebSocket ping frame, wait for the pong (or LIMIT)
// HANDSHAKE_TIMEOUT_SECONDS is ws's `handshakeTimeout` (default 5 here; ws has none by default).
// The line: {"client","version","opened","received":[types],"errors":[{"message","code"}],
// "close_code","close_reason","pong","ended_by","elapsed_ms"}.
'use strict';
const path = require('path');
const WebSocket = require(path.join(__dirname, 'node_modules', 'ws'));
const { version } = require(path.join(__dirname, 'node_modules', 'ws', 'package.json'));

const [url, mode, limitArg, handshakeArg] = process.argv.slice(2);
const limitMs = Math.round(parseFloat(limitArg || '5') * 1000);
const started = Date.now();
const out = {
  client: 'node-ws', version, opened: false, received: [], errors: [],
  close_code: null, close_reason: null, pong: null, ended_by: null,
};
let done = false;
function finish(endedBy) {
  if (done) return;
  done = true;
  out.ended_by = out.ended_by || endedBy;
  out.elapsed_ms = Date.now() - started;
  process.stdout.write(JSON.stringify(out) + '\n', () => process.exit(0));
}

const handshakeTimeout = Math.round(parseFloat(handshakeArg || '5') * 1000);
const ws = new WebSocket(url, { handshakeTimeout });
const timer = setTimeout(() => {
  out.ended_by = 'limit';
  if (mode === 'wsping' && out.pong === null) out.pong = false;
  ws.terminate();
  finish('limit');
}, limitMs);

ws.on('open', () => {
  out.opened = true;
  ws.send(JSON.stringify({ type: 'hello', client: 'node-ws', version: '1' }));
  // A moment after hello, so a fault armed by the hello is in force.
  if (mode === 'wsping') setTimeout(() => ws.ping(), 500);
});
ws.on('pong', () => {
  out.pong = true;
  if (mode === 'wsping') { out.ended_by = 'client'; ws.close(1000, 'done'); }
});
ws.on('message', (data) => {
  let type = '<non-json>';
  try { type = JSON.parse(data.toString()).type; } catch (_) { /* reported as non-json */ }
  out.received.push(type);
  if (mode === 'session') {
    if (type === 'welcome') ws.send(JSON.stringify({ type: 'ping', seq: 1 }));
    if (type === 'pong') { out.ended_by = 'client'; ws.close(1000, 'done'); }
  }
});
ws.on('error', (err) => {
  out.errors.push({ message: err.message, code: err.code || null });
});
ws.on('close', (code, reason) => {
  out.close_code = code;
  out.close_reason = reason.toString();
  clearTimeout(timer);
  finish(out.opened ? 'server_or_network' : 'error');
});
