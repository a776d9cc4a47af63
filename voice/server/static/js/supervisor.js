// Supervisor view: active calls, their agents, latest intent and suggestion, live over one socket.
//
// The page starts from GET /api/calls (a snapshot) and then applies `call.update` messages from
// WS /ws/supervisor; after a reconnect it takes a fresh snapshot, so nothing is missed.

import { api, renderTopbar, signIn } from "./api.js";
import { clock, h, setChildren } from "./dom.js";

const $ = (id) => document.getElementById(id);
const ENDED_VISIBLE_S = 60;
const calls = new Map(); // call_id -> state

function setStatus(state, text) {
  $("status").dataset.state = state;
  $("status").textContent = text;
}

async function snapshot() {
  const { calls: list } = await api("/api/calls");
  calls.clear();
  for (const c of list) {
    calls.set(c.call_id, { call_id: c.call_id, agent_id: c.agent_id, status: c.status, started_at: c.started_at,
      ended_at: c.ended_at, turns: c.turns, intent: c.last_intent, suggestion: c.last_suggestion,
      latency: c.last_suggestion_latency_ms, text: c.last_text });
  }
  render();
}

function apply(update) {
  let call = calls.get(update.call_id);
  if (!call) {
    call = { call_id: update.call_id, status: "active", started_at: Date.now() / 1000, turns: 0 };
    calls.set(update.call_id, call);
  }
  switch (update.type) {
    case "call.started": Object.assign(call, { agent_id: update.agent_id, status: "active" }); break;
    case "transcript.final": call.turns += 1; call.text = `${update.role}: ${update.text}`; break;
    case "nlu": if (update.role === "customer" && update.intent) call.intent = update.intent; break;
    case "suggestion": Object.assign(call, { suggestion: update.text, action: update.action, latency: update.latency_ms }); break;
    case "call.ended": Object.assign(call, { status: "ended", ended_at: Date.now() / 1000 }); break;
    default: return;
  }
  render();
}

function row(call) {
  const now = Date.now() / 1000;
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

function render() {
  const now = Date.now() / 1000;
  const visible = [...calls.values()]
    .filter((c) => c.status === "active" || now - (c.ended_at || now) < ENDED_VISIBLE_S)
    .sort((a, b) => (a.status === b.status ? (b.started_at || 0) - (a.started_at || 0) : a.status === "active" ? -1 : 1));
  setChildren($("rows"), visible.map(row));
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
  socket.onclose = () => {
    const delay = Math.min(4000, 250 * 2 ** attempt);
    setStatus("reconnecting", "Reconnecting");
    setTimeout(() => connect(attempt + 1), delay);
  };
}

const me = await signIn();
renderTopbar(me, "supervisor");
if (me.role !== "supervisor") {
  setStatus("error", "Supervisors only");
  $("empty").replaceChildren(h("p", {}, "This view is for supervisors. Ask for a supervisor token."));
} else {
  await snapshot();
  connect();
  setInterval(render, 1000);
}
