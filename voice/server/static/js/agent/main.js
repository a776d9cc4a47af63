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

/** The feedback on one call's suggestions already sent from this tab: which were reported as
 * shown, and what the agent did with which (accepted, dismissed, edited and the edited text). A
 * reload replays the call's history: its cards must not count as shown a second time, and a card
 * already acted on comes back in that state instead of offering its buttons again. */
class FeedbackLog {
  constructor(callId) {
    let saved = null;
    try {
      saved = JSON.parse(sessionStorage.getItem(SHOWN_KEY));
    } catch {
      saved = null;
    }
    const mine = saved?.call_id === callId;
    this.callId = callId;
    this.ids = new Set(mine && Array.isArray(saved.ids) ? saved.ids : []);
    this.acted = new Map(mine && saved.acted && typeof saved.acted === "object" ? Object.entries(saved.acted) : []);
  }

  /** What the agent did with a suggestion ({kind, text?}), or null. */
  actionOf(suggestionId) {
    return this.acted.get(suggestionId) ?? null;
  }

  /** `items` without the `shown` reports sent before, and without actions on a suggestion already acted on. */
  fresh(items) {
    return items.filter((item) => (item.kind === "shown" ? !this.ids.has(item.suggestion_id)
      : !this.acted.has(item.suggestion_id)));
  }

  remember(items) {
    for (const item of items) {
      if (item.kind === "shown") this.ids.add(item.suggestion_id);
      else if (!this.acted.has(item.suggestion_id)) {
        this.acted.set(item.suggestion_id, item.kind === "edited" ? { kind: item.kind, text: item.text } : { kind: item.kind });
      }
    }
    try {
      sessionStorage.setItem(SHOWN_KEY, JSON.stringify({ call_id: this.callId, ids: [...this.ids],
        acted: Object.fromEntries(this.acted) }));
    } catch {
      // storage full or off: a reload may then offer these again; the server keeps the first action
    }
  }
}

class Console {
  constructor(me) {
    this.me = me;
    this.call = null;
    this.stream = null;
    this.entities = new Map();
    this.shown = null;
    this.clockOffset = 0; // the server's clock minus this computer's, seconds (from GET /api/calls)
    this.clockRtt = Infinity; // the round trip that offset was measured on
    this.transcript = new TranscriptView({ list: $("transcript"), partials: $("partials"),
      scroller: $("transcript-scroll"), empty: $("transcript-empty"), follow: $("follow") });
    this.deck = new SuggestionDeck({ list: $("cards"), meta: $("suggestion-meta"),
      announce: $("suggestions-announce"), onFeedback: (items) => this.sendFeedback(items),
      actionOf: (id) => this.shown?.actionOf(id) ?? null });
    document.addEventListener("keydown", (e) => this.onKey(e));
    $("help-button").addEventListener("click", () => this.toggleHelp());
    setInterval(() => this.tick(), 1000);
  }

  async watch() {
    try {
      const sent = Date.now() / 1000;
      const { calls, server_time: serverTime } = await api("/api/calls?status=active");
      this.measureClock(sent, Date.now() / 1000, serverTime);
      const next = calls[0];
      const idle = !this.stream || this.stream.ended;
      if (next && (!this.call || (idle && this.call.call_id !== next.call_id))) this.open(next);
      if (!next && !this.call) this.setState("waiting");
    } catch (err) {
      if (err.status === 401) location.reload();
    }
    setTimeout(() => this.watch(), POLL_MS);
  }

  /** The server's clock against this computer's, from a request sent at `sent` and answered at
   * `received` (this computer's seconds) carrying `serverTime`, read about halfway through. The
   * quickest round trip gives the best estimate; a jump of over a second means a clock was set. */
  measureClock(sent, received, serverTime) {
    if (typeof serverTime !== "number") return;
    const rtt = received - sent;
    const offset = serverTime - (sent + received) / 2;
    if (rtt <= this.clockRtt || Math.abs(offset - this.clockOffset) > 1) {
      this.clockOffset = offset;
      this.clockRtt = rtt;
    }
  }

  /** Now on the server's clock (Unix seconds): the times of calls and events are on it. */
  serverNow() {
    return Date.now() / 1000 + this.clockOffset;
  }

  /** Whether an event was emitted before the socket opened: replayed from the call's history. */
  replayed(event) {
    return event.emitted_at < this.stream.openedAt / 1000 + this.clockOffset;
  }

  open(call) {
    this.stream?.stop();
    this.call = { ...call };
    this.shown = new FeedbackLog(call.call_id);
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
      case "transcript.final": this.transcript.final(event, { fresh: !this.replayed(event) }); break;
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
    const replayed = this.replayed(event);
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
    return this.call?.started_at ? this.serverNow() - this.call.started_at : this.call?.audio_time;
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
