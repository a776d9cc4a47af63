// The agent console: finds the agent's current call, follows its events, shows suggestions.

import { api, renderTopbar, signIn } from "../api.js";
import { clock, h, isTyping, nowMs } from "../dom.js";
import { CallEventStream } from "../events.js";
import { SuggestionDeck } from "./suggestions.js";
import { TranscriptView } from "./transcript.js";

const POLL_MS = 2000;
const STATE_TEXT = { connecting: "Connecting", live: "Live", reconnecting: "Reconnecting", ended: "Call ended",
  waiting: "Waiting for a call", error: "Not available" };
const $ = (id) => document.getElementById(id);

/** Latencies measured in this page, read by the browser tests and shown in the call bar. */
const metrics = { suggestions: [] };
const SHOWN_KEY = "nextline.shown";

/** The suggestions of one call already reported as shown, kept for this tab: a reload replays the
 * call's history, and its cards must not count as shown a second time. */
class ShownLog {
  constructor(callId) {
    let saved = null;
    try {
      saved = JSON.parse(sessionStorage.getItem(SHOWN_KEY));
    } catch {
      saved = null;
    }
    this.callId = callId;
    this.ids = new Set(saved?.call_id === callId ? saved.ids : []);
  }

  /** `items` without the `shown` reports sent before. */
  fresh(items) {
    return items.filter((item) => item.kind !== "shown" || !this.ids.has(item.suggestion_id));
  }

  remember(items) {
    for (const item of items) if (item.kind === "shown") this.ids.add(item.suggestion_id);
    try {
      sessionStorage.setItem(SHOWN_KEY, JSON.stringify({ call_id: this.callId, ids: [...this.ids] }));
    } catch {
      // storage full or off: a reload may then report these again, nothing worse
    }
  }
}

class Console {
  constructor(me) {
    this.me = me;
    this.call = null;
    this.stream = null;
    this.entities = new Map();
    this.transcript = new TranscriptView({ list: $("transcript"), partials: $("partials"),
      scroller: $("transcript-scroll"), empty: $("transcript-empty"), follow: $("follow") });
    this.deck = new SuggestionDeck({ list: $("cards"), meta: $("suggestion-meta"),
      announce: $("suggestions-announce"), onFeedback: (items) => this.sendFeedback(items) });
    document.addEventListener("keydown", (e) => this.onKey(e));
    $("help-button").addEventListener("click", () => this.toggleHelp());
    setInterval(() => this.tick(), 1000);
  }

  async watch() {
    try {
      const { calls } = await api("/api/calls?status=active");
      const next = calls[0];
      const idle = !this.stream || this.stream.ended;
      if (next && (!this.call || (idle && this.call.call_id !== next.call_id))) this.open(next);
      if (!next && !this.call) this.setState("waiting");
    } catch (err) {
      if (err.status === 401) location.reload();
    }
    setTimeout(() => this.watch(), POLL_MS);
  }

  open(call) {
    this.stream?.stop();
    this.call = { ...call };
    this.shown = new ShownLog(call.call_id);
    this.entities.clear();
    this.transcript.reset("Connected. The transcript starts with the first words.");
    this.deck.clear("Suggestions appear here after each turn.");
    $("intent").textContent = "–";
    $("entities").replaceChildren();
    $("latency").textContent = "Suggestion latency –";
    this.renderCall();
    this.stream = new CallEventStream(call.call_id, { onEvent: (e, at) => this.onEvent(e, at), onState: (s, d) => this.setState(s, d) });
    window.nextline.stream = this.stream;
    this.stream.start();
  }

  onEvent(event, receivedAt) {
    switch (event.type) {
      case "call.started":
        Object.assign(this.call, { agent_id: event.agent_id, source: event.source, tenant: event.tenant });
        this.renderCall();
        break;
      case "transcript.partial": this.transcript.partial(event); break;
      case "transcript.final": this.transcript.final(event); break;
      case "nlu": this.onNlu(event); break;
      case "suggestion": this.onSuggestion(event, receivedAt); break;
      case "call.ended":
        this.call.status = "ended";
        this.call.ended_audio_time = event.audio_time;
        this.transcript.partials.replaceChildren();
        this.renderCall();
        break;
      default: break;
    }
    if (event.audio_time) this.call.audio_time = Math.max(this.call.audio_time || 0, event.audio_time);
  }

  onNlu(event) {
    this.transcript.nlu(event);
    if (event.role === "customer" && event.intent) {
      $("intent").replaceChildren(h("b", {}, event.intent));
    }
    for (const entity of event.entities || []) {
      this.entities.delete(entity.label);
      this.entities.set(entity.label, entity.value || entity.text);
    }
    const latest = [...this.entities].slice(-4).reverse();
    $("entities").replaceChildren(...latest.map(([label, value]) =>
      h("span", { class: "chip entity", title: label }, `${label.toLowerCase()} `, h("b", {}, value))));
  }

  onSuggestion(event, receivedAt) {
    const shown = this.deck.show(event);
    if (!shown) return;
    const domMs = nowMs() - event.emitted_at * 1000;
    // A suggestion emitted before the socket opened was replayed from history: not a latency.
    const replayed = event.emitted_at * 1000 < this.stream.openedAt;
    const record = { seq: event.seq, dom_ms: domMs, received_ms: receivedAt - event.emitted_at * 1000,
      paint_ms: null, server_ms: event.latency_ms?.total ?? null, replayed };
    metrics.suggestions.push(record);
    requestAnimationFrame(() => setTimeout(() => { record.paint_ms = nowMs() - event.emitted_at * 1000; }, 0));
    const server = record.server_ms === null ? "–" : `${Math.round(record.server_ms)} ms`;
    const screen = replayed ? "" : ` · on screen +${Math.max(0, domMs).toFixed(0)} ms`;
    $("latency").replaceChildren("Suggestion ", h("b", {}, server), screen);
    const turn = this.transcript.turns.get(event.turn_id);
    const when = turn ? ` · after ${turn.classList.contains("agent") ? "agent" : "customer"} turn at ${clock(Number(turn.dataset.start))}` : "";
    $("suggestion-meta").textContent = `${event.model_version || ""}${event.arm ? ` · arm ${event.arm}` : ""}${when}`;
  }

  async sendFeedback(items) {
    if (!this.call) return;
    const shown = this.shown;
    const fresh = shown.fresh(items);
    if (!fresh.length) return;
    try {
      await api(`/api/calls/${encodeURIComponent(this.call.call_id)}/feedback`, { method: "POST", body: { items: fresh } });
      shown.remember(fresh);
    } catch (err) {
      $("suggestion-meta").textContent = `Feedback not saved: ${err.message}`;
    }
  }

  setState(state, detail) {
    document.body.dataset.callState = state;
    const status = $("status");
    status.dataset.state = state;
    status.textContent = STATE_TEXT[state] || state;
    status.title = detail || "";
    if (state === "error") this.transcript.setEmpty(`Cannot show this call: ${detail}.`);
    if (state === "ended" && this.call && this.call.status !== "ended") { // ended while this page was away
      this.call.status = "ended";
      this.transcript.partials.replaceChildren();
      this.renderCall();
    }
  }

  renderCall() {
    const call = this.call;
    const source = { twilio: "Twilio", audiohook: "Genesys AudioHook", sip: "SIP", siprec: "SIPREC", webrtc: "WebRTC" }[call.source] || call.source || "";
    $("call-title").textContent = `Call ${call.call_id}`;
    const started = call.started_at ? new Date(call.started_at * 1000).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" }) : "";
    const length = call.status === "ended" ? clock(call.ended_audio_time ?? call.audio_time) : clock(this.elapsed());
    $("call-detail").textContent = [source, started && `started ${started}`, length].filter(Boolean).join(" · ");
  }

  elapsed() {
    return this.call?.started_at ? Date.now() / 1000 - this.call.started_at : this.call?.audio_time;
  }

  tick() {
    if (this.call && this.call.status !== "ended") this.renderCall();
  }

  onKey(event) {
    if (event.key === "?" && !isTyping(event)) { event.preventDefault(); return this.toggleHelp(); }
    if ((event.key === "t" || event.key === "T") && !isTyping(event) && !event.ctrlKey && !event.metaKey) {
      event.preventDefault();
      return $("transcript-scroll").focus();
    }
    if ($("help").open) return;
    this.deck.handleKey(event);
  }

  toggleHelp() {
    const help = $("help");
    if (help.open) help.close();
    else help.showModal();
  }
}

window.nextline = { metrics, stream: null };

const me = await signIn();
renderTopbar(me, "agent");
const console_ = new Console(me);
window.nextline.console = console_;
console_.watch();
