// Supervisor view: active calls, their agents, latest intent and suggestion, live over one socket.
//
// The page starts from GET /api/calls (a snapshot) and then applies `call.update` messages from
// WS /ws/supervisor; after a reconnect it takes a fresh snapshot, so nothing is missed.
//
// Every time on this page is on the server's clock: the snapshot's started_at/ended_at and the
// updates' emitted_at are, and "now" is the viewer's clock plus the offset measured against the
// snapshot's server_time. A viewer's clock that is minutes off then shifts no call's length.

import { api, renderTopbar, signIn } from "./api.js";
import { clock, h } from "./dom.js";

const $ = (id) => document.getElementById(id);
const ENDED_VISIBLE_S = 60;
const calls = new Map(); // call_id -> state
const rowsById = new Map(); // call_id -> its <tr>, kept across renders (focus, selection)
let renderQueued = false;
let clockOffset = 0; // server clock minus this computer's, seconds

/** Now on the server's clock (Unix seconds). */
function serverNow() {
  return Date.now() / 1000 + clockOffset;
}

function setStatus(state, text) {
  $("status").dataset.state = state;
  $("status").textContent = text;
}

async function snapshot() {
  const sent = Date.now() / 1000;
  const { calls: list, server_time: serverTime } = await api("/api/calls");
  // The server read its clock about halfway through the round trip.
  if (typeof serverTime === "number") clockOffset = serverTime - (sent + Date.now() / 1000) / 2;
  calls.clear();
  for (const c of list) {
    calls.set(c.call_id, { call_id: c.call_id, agent_id: c.agent_id, status: c.status, started_at: c.started_at,
      ended_at: c.ended_at, turns: c.turns, intent: c.last_intent, suggestion: c.last_suggestion,
      latency: c.last_suggestion_latency_ms, text: c.last_text });
  }
  render();
}

function apply(update) {
  const at = typeof update.emitted_at === "number" ? update.emitted_at : serverNow();
  let call = calls.get(update.call_id);
  if (!call) {
    call = { call_id: update.call_id, status: "active", started_at: at, turns: 0 };
    calls.set(update.call_id, call);
  }
  switch (update.type) {
    case "call.started": Object.assign(call, { agent_id: update.agent_id, status: "active", started_at: at }); break;
    case "transcript.final": call.turns += 1; call.text = `${update.role}: ${update.text}`; break;
    case "nlu": if (update.role === "customer" && update.intent) call.intent = update.intent; break;
    case "suggestion": Object.assign(call, { suggestion: update.text, action: update.action, latency: update.latency_ms }); break;
    case "call.ended": Object.assign(call, { status: "ended", ended_at: at }); break;
    default: return;
  }
  scheduleRender();
}

// A burst of updates from many calls costs one render per frame, not one table per message.
function scheduleRender() {
  if (renderQueued) return;
  renderQueued = true;
  requestAnimationFrame(() => { renderQueued = false; render(); });
}

function row(call) {
  const now = serverNow();
  const length = (call.ended_at || now) - (call.started_at || now);
  return h("tr", { dataset: { status: call.status, callId: call.call_id } },
    h("td", {}, h("strong", {}, call.agent_id || "–"), call.status === "ended" ? h("span", { class: "sub faint" }, " ended") : null),
    h("td", {}, h("a", { href: `/qa/calls/${encodeURIComponent(call.call_id)}` }, call.call_id)),
    h("td", { class: "num" }, clock(length)),
    h("td", { class: "num" }, String(call.turns ?? 0)),
    h("td", {}, call.intent ? h("span", { class: "chip intent" }, h("b", {}, call.intent)) : h("span", { class: "faint" }, "–")),
    h("td", { class: "text" }, call.suggestion ? h("p", {}, call.suggestion) : h("span", { class: "faint" }, "–")),
    h("td", { class: "text" }, call.text ? h("p", { class: "muted" }, call.text) : h("span", { class: "faint" }, "–")));
}

// Rows and cells whose content did not change stay the same nodes, so a focused link or a
// selection survives the once-a-second update of the lengths.
function update(old, fresh) {
  old.dataset.status = fresh.dataset.status;
  [...fresh.children].forEach((cell, i) => {
    if (!cell.isEqualNode(old.children[i])) old.children[i].replaceWith(cell);
  });
  return old;
}

function render() {
  const now = serverNow();
  for (const [id, c] of calls) {
    if (c.status !== "active" && now - (c.ended_at || now) >= ENDED_VISIBLE_S) calls.delete(id);
  }
  const visible = [...calls.values()]
    .sort((a, b) => (a.status === b.status ? (b.started_at || 0) - (a.started_at || 0) : a.status === "active" ? -1 : 1));
  const tbody = $("rows");
  const rows = visible.map((c) => {
    const old = rowsById.get(c.call_id);
    return old ? update(old, row(c)) : row(c);
  });
  rowsById.clear();
  visible.forEach((c, i) => rowsById.set(c.call_id, rows[i]));
  [...tbody.children].filter((tr) => !rowsById.has(tr.dataset.callId)).forEach((tr) => tr.remove());
  rows.forEach((tr, i) => { if (tbody.children[i] !== tr) tbody.insertBefore(tr, tbody.children[i] || null); });
  $("empty").hidden = visible.length > 0;
  const active = visible.filter((c) => c.status === "active");
  $("count-active").textContent = String(active.length);
  $("count-agents").textContent = String(new Set(active.map((c) => c.agent_id).filter(Boolean)).size);
  const latencies = active.map((c) => c.latency).filter((x) => typeof x === "number").sort((a, b) => a - b);
  $("latency").textContent = latencies.length ? `${Math.round(latencies[Math.floor(latencies.length / 2)])} ms` : "–";
}

function connect(attempt = 0) {
  const scheme = location.protocol === "https:" ? "wss" : "ws";
  const socket = new WebSocket(`${scheme}://${location.host}/ws/supervisor`);
  // Updates that arrive while the snapshot is loading are held and applied after it, so a
  // snapshot taken a moment earlier never overwrites them (a turn may then count twice).
  let held = [];
  socket.onopen = async () => {
    attempt = 0;
    await snapshot().catch(() => null);
    const pending = held;
    held = null;
    pending.forEach(apply);
    setStatus("live", "Live");
  };
  socket.onmessage = (message) => {
    const update = JSON.parse(message.data);
    if (held) held.push(update); else apply(update);
  };
  socket.onclose = async (event) => {
    if (event.code === 1008 && (await signedOut())) {
      // The server closed us for a revoked sign-in: retrying would be refused every 4 s forever.
      setStatus("error", "Your sign-in is no longer valid");
      return;
    }
    const delay = Math.min(4000, 250 * 2 ** attempt);
    setStatus("reconnecting", "Reconnecting");
    setTimeout(() => connect(attempt + 1), delay);
  };
}

async function signedOut() {
  try {
    await api("/api/me");
    return false;
  } catch (err) {
    return err.status === 401;
  }
}

const me = await signIn();
renderTopbar(me, "supervisor");
if (me.role !== "supervisor") {
  setStatus("error", "Supervisors only");
  $("empty").replaceChildren(h("p", {}, "This view is for supervisors. Ask for a supervisor token."));
} else {
  // A failed first snapshot (a restart, a proxy's 502) must not leave a dead page: the socket's
  // open takes a fresh one anyway.
  await snapshot().catch(() => setStatus("reconnecting", "Reconnecting"));
  connect();
  setInterval(render, 1000);
}
