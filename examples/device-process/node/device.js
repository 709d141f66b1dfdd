#!/usr/bin/env node
// A lamp, as an espsim device process (protocol v1, docs/reference/device-process.md).
//
// WebSocket: {"cmd":"status"} -> {"on":false,"clients":1}
//            {"cmd":"set","on":true} -> {"ok":true,"on":true}, and {"event":"changed","on":true}
//            to every other session.
// HTTP:      GET /api/status -> {"on":false,"clients":1}; anything else -> 404.
// Node's standard library only. Debug output goes to stderr (espsim logs it), never to stdout.
'use strict';
const readline = require('node:readline');

let on = false; // RAM state: forgotten on reboot
const sessions = new Set();

const out = (obj) => process.stdout.write(JSON.stringify(obj) + '\n');
const status = () => ({ on, clients: sessions.size });

function onMessage(session, text) {
  let msg;
  try {
    msg = JSON.parse(text);
  } catch {
    msg = null;
  }
  if (!msg || typeof msg.cmd !== 'string') {
    out({ type: 'send', to: session, json: { error: 'bad request' }, label: 'error' });
  } else if (msg.cmd === 'status') {
    out({ type: 'send', to: session, json: status(), label: 'status' });
  } else if (msg.cmd === 'set' && typeof msg.on === 'boolean') {
    on = msg.on;
    out({ type: 'send', to: session, json: { ok: true, on }, label: 'ack' });
    out({ type: 'send', to: 'all', except: session, json: { event: 'changed', on }, label: 'changed' });
  } else {
    out({ type: 'send', to: session, json: { error: 'unknown cmd' }, label: 'error' });
  }
}

function onHttp(req) {
  if (req.method === 'GET' && req.path === '/api/status') {
    out({ type: 'http_response', id: req.id, status: 200, json: status() });
  } else {
    out({
      type: 'http_response', id: req.id, status: 404,
      headers: { 'Content-Type': 'text/plain' }, body_text: 'not found',
    });
  }
}

const lines = readline.createInterface({ input: process.stdin, crlfDelay: Infinity });
lines.on('line', (line) => {
  const msg = JSON.parse(line);
  switch (msg.type) {
    case 'hello':
      if (msg.version !== 1) {
        console.error(`unsupported protocol version ${msg.version}`);
        process.exit(1);
      }
      out({ type: 'ready' });
      out({ type: 'log', message: 'node lamp ready' });
      break;
    case 'session_opened':
      sessions.add(msg.session);
      break;
    case 'session_closed':
      sessions.delete(msg.session);
      break;
    case 'message':
      if (typeof msg.text === 'string') onMessage(msg.session, msg.text);
      break;
    case 'http_request':
      onHttp(msg);
      break;
    case 'reboot':
      on = false;
      sessions.clear();
      break;
    default:
      break; // newer message types: ignored
  }
});
lines.on('close', () => process.exit(0));
