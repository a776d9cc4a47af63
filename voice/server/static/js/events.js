// A call's event stream over WebSocket that survives dropped connections.
//
// Every event carries a per-call `seq`. After a drop the stream reconnects with
// ?since=<last seq>, the server replays what was missed, and events already seen are skipped,
// so no turn is lost or shown twice. A `call.ended` event ends the stream: the server also
// closes sockets it dropped for falling behind, and those must reconnect. A socket the server
// closes without sending anything means it holds nothing more of the call (it restarted, or the
// call left its history): when the API says the call is no longer active, the stream ends too,
// instead of reconnecting to an empty stream forever.

import { api } from "./api.js";

const BACKOFF_MS = [250, 500, 1000, 2000, 4000];

export class CallEventStream {
  /**
   * @param {string} callId
   * @param {{onEvent: (e: object) => void, onState: (state: string, detail?: string) => void}} handlers
   */
  constructor(callId, { onEvent, onState }) {
    this.callId = callId;
    this.onEvent = onEvent;
    this.onState = onState;
    this.lastSeq = 0;
    this.ended = false;
    this.stopped = false;
    this.failures = 0;
    this.socket = null;
    this.reconnects = 0;
    this.openedAt = 0; // events emitted before this were replayed from history, not live
  }

  start() {
    this.onState("connecting");
    this.connect();
  }

  stop() {
    this.stopped = true;
    if (this.socket) this.socket.close(1000, "closed by the page");
  }

  connect() {
    const scheme = location.protocol === "https:" ? "wss" : "ws";
    const url = `${scheme}://${location.host}/ws/calls/${encodeURIComponent(this.callId)}/events?since=${this.lastSeq}`;
    const socket = new WebSocket(url);
    this.socket = socket;
    let opened = false;
    let received = 0;
    socket.onopen = () => {
      opened = true;
      this.openedAt = performance.timeOrigin + performance.now();
      this.failures = 0;
      this.onState("live");
    };
    socket.onmessage = (message) => {
      received += 1;
      this.receive(message.data);
    };
    socket.onclose = async (event) => {
      if (this.socket !== socket) return;
      if (!this.ended && !this.stopped && opened && received === 0 && event.code === 1000 && await this.gone()) {
        this.ended = true;
      }
      if (this.ended) return this.onState("ended");
      if (this.stopped) return;
      this.retry(opened);
    };
  }

  /** Whether the server no longer has the call as an active one (ended, or unknown to it). */
  async gone() {
    try {
      const { call } = await api(`/api/calls/${encodeURIComponent(this.callId)}`);
      return !call || call.status !== "active";
    } catch (err) {
      return err.status === 404;
    }
  }

  receive(data) {
    const receivedAt = performance.timeOrigin + performance.now();
    let event;
    try {
      event = JSON.parse(data);
    } catch {
      return; // not ours: ignore rather than break the console
    }
    if (typeof event.seq !== "number" || event.seq <= this.lastSeq) return;
    this.lastSeq = event.seq;
    if (event.type === "call.ended") this.ended = true;
    this.onEvent(event, receivedAt);
  }

  async retry(wasOpen) {
    this.failures += 1;
    if (wasOpen) this.reconnects += 1;
    if (!wasOpen && this.failures >= 2) {
      // A refused upgrade looks like any other close in the browser: ask the API why.
      const reason = await this.refusal();
      if (reason) return this.onState("error", reason);
    }
    const delay = BACKOFF_MS[Math.min(this.failures - 1, BACKOFF_MS.length - 1)];
    this.onState("reconnecting", `retrying in ${(delay / 1000).toFixed(1)} s`);
    setTimeout(() => this.stopped || this.connect(), delay);
  }

  async refusal() {
    try {
      await api(`/api/calls/${encodeURIComponent(this.callId)}`);
      return null;
    } catch (err) {
      if (err.status === 401) return "your sign-in is no longer valid";
      if (err.status === 403) return "this call belongs to another agent";
      if (err.status === 404) return "this call is gone";
      return null; // the server is down or busy: keep trying
    }
  }
}
