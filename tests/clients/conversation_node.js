// Node `ws` plays a scripted conversation with a device; prints ONE JSON line.
//
// usage: node conversation_node.js URL SCRIPT_JSON
// The script and the line are those of conversation_python.py (same steps, same output), so a
// test can assert the same bytes from both clients.
'use strict';
const WebSocket = require('ws');

const WAIT_MS = 5000;

// One connection: its messages queued as they arrive, so `recv` never misses one.
function open(url, protocols) {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, protocols ?? [], { handshakeTimeout: WAIT_MS });
    const conn = { ws, queue: [], waiters: [], closed: null };
    const deliver = (item) => {
      const waiter = conn.waiters.shift();
      if (waiter) waiter(item); else conn.queue.push(item);
    };
    ws.on('message', (data, isBinary) => deliver(isBinary
      ? { hex: Buffer.from(data).toString('hex') }
      : { text: data.toString('utf8') }));
    ws.on('close', (code, reason) => {
      conn.closed = { close_code: code, close_reason: reason.toString('utf8') };
      deliver({ closed: true });
    });
    ws.once('open', () => resolve(conn));
    ws.once('error', reject);
  });
}

function next(conn) {
  if (conn.queue.length > 0) return Promise.resolve(conn.queue.shift());
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('no message within 5 s')), WAIT_MS);
    conn.waiters.push((item) => { clearTimeout(timer); resolve(item); });
  });
}

async function main(url, script) {
  const out = { client: 'node-ws', received: [], error: null };
  const conns = {};
  try {
    for (const step of script) {
      const i = step.conn ?? 0;
      if ('open' in step) {
        let target = url;
        if (typeof step.open === 'string') {
          const u = new URL(url);
          u.pathname = step.open;
          target = u.toString();
        }
        conns[i] = await open(target, step.subprotocols);
        if (step.subprotocols !== undefined) {
          // `ws` reports no subprotocol as '' ; the line says null, as Python does.
          out.received.push({ conn: i, subprotocol: conns[i].ws.protocol || null });
        }
      } else if ('text' in step) {
        conns[i].ws.send(step.text);
      } else if ('hex' in step) {
        conns[i].ws.send(Buffer.from(step.hex, 'hex'));
      } else if ('recv' in step) {
        for (let n = 0; n < step.recv; n++) {
          const item = await next(conns[i]);
          if (item.closed) throw new Error('connection closed');
          out.received.push({ conn: i, ...item });
        }
      } else if ('recv_close' in step) {
        for (;;) {
          const item = await next(conns[i]);
          if (item.closed) {
            out.received.push({ conn: i, ...conns[i].closed });
            break;
          }
        }
      }
    }
  } catch (e) {
    out.error = `${e.name}: ${e.message}`;
  }
  for (const conn of Object.values(conns)) conn.ws.terminate();
  console.log(JSON.stringify(out));
}

main(process.argv[2], JSON.parse(process.argv[3]));
