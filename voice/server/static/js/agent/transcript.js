// The live transcript: final turns in an ARIA log, in-progress words per leg below it.
//
// Partials change several times a second, so they live outside the live region (screen
// readers hear each turn once, when it is final) and are updated in place: two text nodes per
// leg, committed and tentative, so nothing else on the page moves while words stream in.

import { clock, h, roleName } from "../dom.js";

const STICK_PX = 48;
const FRESH_MS = 1300; // how long a new turn stays highlighted

/** The words of a partial as text, as the server joins an event's `text` (voice.frames.join_words):
 * one space before each word, none before a piece Whisper wrote attached to the word before it
 * (`leading_space: false`: "7 p.m.", "Wi-Fi."). Words are trimmed (an older recording may still carry
 * Whisper's leading space). `after` is the text already shown before these words: a space goes between
 * the two unless the first word is attached. */
function wordsText(words, after = "") {
  let text = "";
  for (const w of words || []) {
    const piece = String(w.text ?? "").trim();
    if (piece) text += (text || after ? (w.leading_space === false ? "" : " ") : "") + piece;
  }
  return text;
}

export class TranscriptView {
  constructor({ list, partials, scroller, empty, follow }) {
    Object.assign(this, { list, partials, scroller, empty, follow });
    this.legs = new Map(); // leg -> {row, committed, tentative}
    this.turns = new Map(); // turn_id -> li
    this.unresolved = new Map(); // speaker -> Set of their turns (li) still shown as "unknown"
    this.fresh = []; // {item, at} of the turns still highlighted, oldest first
    this.freshTimer = null;
    this.stick = null; // whether the log was at the bottom before this frame's changes; null: none yet
    this.scroller.addEventListener("scroll", () => {
      if (this.atBottom()) this.follow.hidden = true;
    });
    this.follow.addEventListener("click", () => this.scrollToEnd());
  }

  reset(message) {
    this.list.replaceChildren();
    this.partials.replaceChildren();
    this.legs.clear();
    this.turns.clear();
    this.unresolved.clear();
    clearTimeout(this.freshTimer);
    this.freshTimer = null;
    this.fresh = [];
    this.setEmpty(message);
  }

  setEmpty(message) {
    this.empty.hidden = !message;
    if (message) this.empty.querySelector("p").textContent = message;
  }

  get count() {
    return this.turns.size;
  }

  partial(event) {
    this.setEmpty(null);
    this.keepingScroll(() => {
      const leg = this.legRow(event);
      leg.committed.textContent = wordsText(event.committed);
      leg.tentative.textContent = wordsText(event.tentative, leg.committed.textContent);
    });
  }

  legRow(event) {
    let leg = this.legs.get(event.leg);
    if (!leg) {
      const committed = h("span", { class: "committed" });
      const tentative = h("span", { class: "tentative" });
      const role = h("span", { class: `role ${event.role || "unknown"}` }, roleName(event.role));
      const row = h("div", { class: `partial ${event.role || "unknown"}`, dataset: { leg: event.leg } },
        h("div", { class: "turn-side" }, role, h("span", { class: "turn-time" }, "speaking")),
        h("div", { class: "turn-body" }, h("p", { class: "turn-text" }, committed, tentative,
          h("span", { class: "typing" }, h("i"), h("i"), h("i")))));
      leg = { row, committed, tentative };
      this.legs.set(event.leg, leg);
      this.partials.append(row);
    }
    return leg;
  }

  /** A final turn; `fresh` highlights it for a moment (not the turns of a replayed history:
   * thousands of them animating at once made opening a long call take tens of seconds). */
  final(event, { fresh = true } = {}) {
    this.setEmpty(null);
    this.keepingScroll(() => {
      const leg = this.legs.get(event.leg);
      if (leg) {
        leg.row.remove();
        this.legs.delete(event.leg);
      }
      if (!event.text || this.turns.has(event.turn_id)) return;
      this.resolveSpeaker(event.speaker, event.role);
      const item = this.turnItem(event, fresh);
      this.turns.set(event.turn_id, item);
      if (item.classList.contains("unknown") && event.speaker) {
        if (!this.unresolved.has(event.speaker)) this.unresolved.set(event.speaker, new Set());
        this.unresolved.get(event.speaker).add(item);
      }
      this.insertByStart(item, event.start);
      if (fresh) this.unfreshLater(item);
    });
  }

  // A mixed leg's first turns arrive as "unknown" until the call's roles are decided (then they
  // never change): once a speaker's role is known, their earlier turns get it too. Only the
  // turns still unknown are visited (a long call's history replays thousands of finals).
  resolveSpeaker(speaker, role) {
    if (!speaker || !role || role === "unknown") return;
    const waiting = this.unresolved.get(speaker);
    if (!waiting) return;
    this.unresolved.delete(speaker);
    for (const item of waiting) {
      item.classList.replace("unknown", role);
      const label = item.querySelector(".role");
      label.className = `role ${role}`;
      label.textContent = roleName(role);
    }
  }

  /** Drop each new turn's highlight 1.3 s after it came, with one timer at a time (not one per
   * turn: the history replayed on opening a long call adds thousands at once). */
  unfreshLater(item) {
    this.fresh.push({ item, at: performance.now() });
    if (this.freshTimer === null) this.freshTimer = setTimeout(() => this.unfresh(), FRESH_MS);
  }

  unfresh() {
    const due = performance.now() - FRESH_MS;
    let done = 0;
    while (done < this.fresh.length && this.fresh[done].at <= due) this.fresh[done++].item.classList.remove("fresh");
    this.fresh = this.fresh.slice(done);
    this.freshTimer = this.fresh.length ? setTimeout(() => this.unfresh(), this.fresh[0].at - due) : null;
  }

  turnItem(event, fresh) {
    const role = event.role || "unknown";
    const dataset = { turnId: event.turn_id, start: event.start, speaker: event.speaker || "" };
    return h("li", { class: `turn ${role}${fresh ? " fresh" : ""}`, dataset },
      h("div", { class: "turn-side" },
        h("span", { class: `role ${role}` }, roleName(role)),
        h("span", { class: "turn-time" }, clock(event.start))),
      h("div", { class: "turn-body" },
        h("p", { class: "turn-text" }, event.text),
        h("div", { class: "turn-chips" })));
  }

  insertByStart(item, start) {
    // Two legs finish turns out of order now and then: keep the log in speaking order.
    let before = null;
    for (let node = this.list.lastElementChild; node; node = node.previousElementSibling) {
      if (Number(node.dataset.start) <= start) break;
      before = node;
    }
    this.list.insertBefore(item, before);
  }

  nlu(event) {
    const item = this.turns.get(event.turn_id);
    if (!item) return;
    const chips = item.querySelector(".turn-chips");
    const nodes = [];
    if (event.intent && event.role === "customer") {
      nodes.push(h("span", { class: "chip intent", title: "Intent" }, h("b", {}, event.intent)));
    }
    for (const entity of event.entities || []) {
      nodes.push(h("span", { class: "chip entity", title: entity.label },
        `${entity.label.toLowerCase()} `, h("b", {}, entity.value || entity.text)));
    }
    this.keepingScroll(() => chips.replaceChildren(...nodes));
  }

  atBottom() {
    const s = this.scroller;
    return s.scrollTop + s.clientHeight >= s.scrollHeight - STICK_PX;
  }

  // Keep the log at the bottom if it was there before a change. Whether it was is measured once
  // per animation frame, before the frame's first change (layout is still clean then), and the
  // log is scrolled once when the frame is drawn: a burst of events (the history replayed when
  // the console opens on a long call) does not force a layout per event.
  keepingScroll(change) {
    if (this.stick === null) {
      this.stick = this.atBottom();
      requestAnimationFrame(() => this.settleScroll());
    }
    change();
  }

  settleScroll() {
    const stick = this.stick;
    this.stick = null;
    if (stick) this.scrollToEnd();
    else this.follow.hidden = false;
  }

  scrollToEnd() {
    this.scroller.scrollTop = this.scroller.scrollHeight;
    this.follow.hidden = true;
  }
}
