// espsim's live dashboard. Everything shown comes from the control API's own endpoints
// (/state, /events, /faults, /reset, /internet, /button); the session cookie set by
// POST /login authenticates them. No data is kept here but what those endpoints answered.
"use strict";

const MAX_EVENT_ROWS = 2000;
const STATE_POLL_MS = 1000;

const $ = (id) => document.getElementById(id);
const state = {
  loggedIn: false,
  nextSeq: 0,
  events: [],
  kinds: new Set(),
  sessions: new Map(),
  streamAbort: null,
  poll: null,
};

// One request to the API. Answers {ok, status, body}; a 401 shows the login form.
async function api(method, path, body, contentType) {
  const init = { method, credentials: "same-origin", headers: {} };
  if (body !== undefined) {
    init.body = body;
    init.headers["Content-Type"] = contentType || "application/json";
  }
  const res = await fetch(path, init);
  let data = null;
  const text = await res.text();
  try { data = text ? JSON.parse(text) : null; } catch (_) { data = { error: text }; }
  if (res.status === 401 && path !== "/login") showLogin("");
  return { ok: res.ok, status: res.status, body: data };
}

function errorText(r) {
  const b = r.body || {};
  let msg = `${r.status}: ${b.error || "request failed"}`;
  if (b.line !== undefined && b.column !== undefined) msg += `\n(at line ${b.line}, column ${b.column})`;
  return msg;
}

function showLogin(message) {
  state.loggedIn = false;
  if (state.streamAbort) state.streamAbort.abort();
  if (state.poll) clearInterval(state.poll);
  state.poll = null;
  $("dash").hidden = true;
  $("logout").hidden = true;
  $("login").hidden = false;
  $("status").textContent = "not logged in";
  $("login-error").textContent = message;
}

async function showDashboard() {
  state.loggedIn = true;
  $("login").hidden = true;
  $("dash").hidden = false;
  $("logout").hidden = false;
  await refreshState();
  if (!state.poll) state.poll = setInterval(refreshState, STATE_POLL_MS);
  followEvents();
}

// GET /state: the header line, the internet mode, the session count and the rule list.
async function refreshState() {
  if (!state.loggedIn) return;
  const r = await api("GET", "/state");
  if (!r.ok) return;
  const s = r.body;
  $("status").textContent =
    `profile ${s.profile} · seed ${s.seed} · up ${(s.uptime_ms / 1000).toFixed(0)} s · internet ${s.internet}`;
  $("internet-mode").textContent = s.internet;
  $("session-count").textContent = `(${s.sessions} open)`;
  renderRules(s.rules);
}

function renderRules(rules) {
  const body = $("rule-rows");
  const rows = rules.map((r) => {
    const tr = document.createElement("tr");
    tr.dataset.rule = String(r.id);
    const id = document.createElement("td");
    id.textContent = String(r.id);
    const text = document.createElement("td");
    const code = document.createElement("code");
    const { id: _id, ...rule } = r;
    code.textContent = JSON.stringify(rule);
    text.append(code);
    const act = document.createElement("td");
    const rm = document.createElement("button");
    rm.type = "button";
    rm.className = "small";
    rm.textContent = "Remove";
    rm.addEventListener("click", () => removeRule(r.id));
    act.append(rm);
    tr.append(id, text, act);
    return tr;
  });
  body.replaceChildren(...rows);
}

async function removeRule(id) {
  const r = await api("DELETE", `/faults/${encodeURIComponent(id)}`);
  $("rule-error").textContent = r.ok ? "" : errorText(r);
  refreshState();
}

async function addRule() {
  const yaml = document.querySelector('input[name="format"]:checked').value === "yaml";
  const r = await api("POST", "/faults", $("rule-text").value, yaml ? "application/yaml" : "application/json");
  $("rule-error").textContent = r.ok ? "" : errorText(r);
  refreshState();
}

async function resetFaults() {
  const r = await api("POST", "/reset");
  $("rule-error").textContent = r.ok ? "" : errorText(r);
  refreshState();
}

async function setInternet() {
  const mode = $("internet-select").value;
  const r = await api("PUT", "/internet", JSON.stringify({ mode }));
  $("device-error").textContent = r.ok ? "" : errorText(r);
  refreshState();
}

async function pressButton() {
  const r = await api("POST", "/button");
  if (r.ok) {
    $("button-result").textContent = `pressed (${r.body.sessions} session(s) told) at ${new Date().toLocaleTimeString()}`;
    $("device-error").textContent = "";
  } else {
    $("device-error").textContent = errorText(r);
  }
}

// GET /events?from=SEQ as a stream of JSON lines; resumes from the next sequence number.
async function followEvents() {
  if (state.streamAbort) state.streamAbort.abort();
  const abort = new AbortController();
  state.streamAbort = abort;
  try {
    const res = await fetch(`/events?from=${state.nextSeq}`, { credentials: "same-origin", signal: abort.signal });
    if (res.status === 401) { showLogin(""); return; }
    if (!res.ok || !res.body) throw new Error(`events: ${res.status}`);
    const reader = res.body.getReader();
    const decoder = new TextDecoder();
    let buffered = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buffered += decoder.decode(value, { stream: true });
      let nl;
      while ((nl = buffered.indexOf("\n")) >= 0) {
        const line = buffered.slice(0, nl);
        buffered = buffered.slice(nl + 1);
        if (line.trim()) onEvent(JSON.parse(line));
      }
    }
  } catch (e) {
    if (abort.signal.aborted) return;
  }
  // The stream ended (emulator stopping, or a dropped connection): try again while logged in.
  if (state.loggedIn && state.streamAbort === abort) setTimeout(followEvents, 1000);
}

function onEvent(e) {
  if (e.seq < state.nextSeq) return;
  state.nextSeq = e.seq + 1;
  trackSession(e);
  state.events.push(e);
  if (state.events.length > MAX_EVENT_ROWS) state.events.shift();
  if (!state.kinds.has(e.event)) {
    state.kinds.add(e.event);
    const opt = document.createElement("option");
    opt.value = e.event;
    opt.textContent = e.event;
    $("filter-kind").append(opt);
  }
  const list = $("event-list");
  if (matches(e)) {
    const stick = list.scrollTop + list.clientHeight >= list.scrollHeight - 4;
    list.append(eventRow(e));
    while (list.childElementCount > MAX_EVENT_ROWS) list.firstElementChild.remove();
    if (stick) list.scrollTop = list.scrollHeight;
  }
  $("event-count").textContent = `${state.nextSeq} events`;
}

// Open WebSocket sessions, from ws_opened until ws_closed / tcp_closed / lru_purged.
function trackSession(e) {
  switch (e.event) {
    case "ws_opened":
      state.sessions.set(e.conn, { conn: e.conn, path: e.path, sub: e.subprotocol, at: e.at_ms, in: 0, out: 0 });
      break;
    case "ws_message": {
      const s = state.sessions.get(e.conn);
      if (s) s[e.direction === "in" ? "in" : "out"] += 1;
      break;
    }
    case "ws_closed":
    case "tcp_closed":
    case "lru_purged":
      state.sessions.delete(e.conn);
      break;
    case "started":
      state.sessions.clear();
      break;
    default:
      return;
  }
  renderSessions();
}

function renderSessions() {
  const rows = [...state.sessions.values()].map((s) => {
    const tr = document.createElement("tr");
    tr.dataset.conn = String(s.conn);
    for (const v of [s.conn, s.path, s.sub || "—", `${(s.at / 1000).toFixed(1)} s`, `${s.in}/${s.out}`]) {
      const td = document.createElement("td");
      td.textContent = String(v);
      tr.append(td);
    }
    return tr;
  });
  $("session-rows").replaceChildren(...rows);
}

function matches(e) {
  const kind = $("filter-kind").value;
  const conn = $("filter-conn").value.trim();
  if (kind && e.event !== kind) return false;
  if (conn !== "" && String(e.conn) !== conn && String(e.for_conn) !== conn) return false;
  return true;
}

function eventRow(e) {
  const row = document.createElement("div");
  row.className = `event ${e.event}`;
  const { seq, at_ms, event, conn, ...rest } = e;
  const cells = [
    ["seq", `#${seq}`],
    ["at", `${(at_ms / 1000).toFixed(3)} s`],
    ["kind", conn === undefined || conn === null ? event : `${event} [${conn}]`],
    ["detail", JSON.stringify(rest)],
  ];
  for (const [cls, text] of cells) {
    const span = document.createElement("span");
    span.className = cls;
    span.textContent = text;
    row.append(span);
  }
  return row;
}

function rerenderEvents() {
  const rows = state.events.filter(matches).map(eventRow);
  $("event-list").replaceChildren(...rows);
}

async function login(ev) {
  ev.preventDefault();
  const body = new URLSearchParams({ token: $("token").value }).toString();
  const r = await api("POST", "/login", body, "application/x-www-form-urlencoded");
  $("token").value = "";
  if (r.ok) {
    $("login-error").textContent = "";
    showDashboard();
  } else {
    showLogin(errorText(r));
  }
}

async function logout() {
  await api("POST", "/logout");
  state.events = [];
  state.nextSeq = 0;
  state.sessions.clear();
  $("event-list").replaceChildren();
  $("session-rows").replaceChildren();
  $("rule-rows").replaceChildren();
  showLogin("logged out");
}

async function start() {
  $("login-form").addEventListener("submit", login);
  $("logout").addEventListener("click", logout);
  $("rule-add").addEventListener("click", addRule);
  $("faults-reset").addEventListener("click", resetFaults);
  $("internet-set").addEventListener("click", setInternet);
  $("button-press").addEventListener("click", pressButton);
  $("filter-kind").addEventListener("change", rerenderEvents);
  $("filter-conn").addEventListener("input", rerenderEvents);
  const r = await api("GET", "/state");
  if (r.ok) showDashboard();
  else showLogin(r.status === 401 ? "" : errorText(r));
}

start();
