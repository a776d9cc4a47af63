// The live transcript: final turns in an ARIA log, in-progress words per leg below it.
//
// Partials change several times a second, so they live outside the live region (screen
// readers hear each turn once, when it is final) and are updated in place: two text nodes per
// leg, committed and tentative, so nothing else on the page moves while words stream in.

import { clock, h, roleName } from "../dom.js";

const STICK_PX = 48;

function wordsText(words) {
  return (words || []).map((w) => w.text).join("").replace(/^\s+/, "");
}

export class TranscriptView {
  constructor({ list, partials, scroller, empty, follow }) {
    Object.assign(this, { list, partials, scroller, empty, follow });
    this.legs = new Map(); // leg -> {row, committed, tentative}
    this.turns = new Map(); // turn_id -> li
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
      const tentative = wordsText(event.tentative);
      leg.tentative.textContent = tentative ? (leg.committed.textContent ? " " : "") + tentative : "";
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

  final(event) {
    this.setEmpty(null);
    this.keepingScroll(() => {
      const leg = this.legs.get(event.leg);
      if (leg) {
        leg.row.remove();
        this.legs.delete(event.leg);
      }
      if (!event.text || this.turns.has(event.turn_id)) return;
      this.resolveSpeaker(event.speaker, event.role);
      const item = this.turnItem(event);
      this.turns.set(event.turn_id, item);
      this.insertByStart(item, event.start);
      setTimeout(() => item.classList.remove("fresh"), 1300);
    });
  }

  // A mixed leg's first turns arrive as "unknown" until the call's roles are decided (then they
  // never change): once a speaker's role is known, their earlier turns get it too.
  resolveSpeaker(speaker, role) {
    if (!speaker || !role || role === "unknown") return;
    for (const item of this.turns.values()) {
      if (item.dataset.speaker !== speaker || !item.classList.contains("unknown")) continue;
      item.classList.replace("unknown", role);
      const label = item.querySelector(".role");
      label.className = `role ${role}`;
      label.textContent = roleName(role);
    }
  }

  turnItem(event) {
    const role = event.role || "unknown";
    const dataset = { turnId: event.turn_id, start: event.start, speaker: event.speaker || "" };
    return h("li", { class: `turn ${role} fresh`, dataset },
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

  keepingScroll(change) {
    const stick = this.atBottom();
    change();
    if (stick) this.scrollToEnd();
    else this.follow.hidden = false;
  }

  scrollToEnd() {
    this.scroller.scrollTop = this.scroller.scrollHeight;
    this.follow.hidden = true;
  }
}
