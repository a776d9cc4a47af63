// Suggestion cards: text, action, confidence, why; accept / edit / dismiss by mouse or keyboard.
//
// A new `suggestion` event replaces the cards in place (the slots keep their height, so the
// page does not jump). While the agent is editing a card, newer suggestions wait until the
// edit is saved or cancelled, so typing is never thrown away. Cards count as `shown` once they
// stayed up SHOWN_AFTER_MS: the burst of suggestions a (re)connection replays from the call's
// history replaces them within milliseconds, and only the last of those is ever seen. A card the
// agent already acted on in this tab (before a reload) comes back in that state: `actionOf`.

import { h, isTyping, nowMs, percent } from "../dom.js";

const STATE_LABEL = { accepted: "✓ Accepted", dismissed: "Dismissed", edited: "✓ Edited" };
const SHOWN_AFTER_MS = 250;
const MAX_ELAPSED_MS = 3_600_000; // the most the server stores as the time from shown to an action
// Where Enter does something of its own: follows a link, presses a button, submits a field.
const INTERACTIVE = "a,button,summary,[role=button],input,textarea,select";

export class SuggestionDeck {
  /**
   * @param {{list: HTMLElement, meta: HTMLElement, announce: HTMLElement, onFeedback: Function,
   *   actionOf?: (id: string) => ({kind: string, text?: string} | null)}} parts
   */
  constructor({ list, meta, announce, onFeedback, actionOf = () => null }) {
    Object.assign(this, { list, meta, announce, onFeedback, actionOf });
    this.cards = []; // {suggestion, index, state, edited (the saved wording), shownAt, el}
    this.selected = 0;
    this.editing = null;
    this.pending = null;
    this.unreported = null;
    this.shownTimer = null;
    this.clear("Suggestions appear here after each turn.");
  }

  clear(message) {
    this.reportShownLater([]); // cards of the previous call were never reported: they never will be
    this.cards = [];
    this.editing = null;
    this.pending = null;
    this.meta.textContent = "";
    this.list.replaceChildren(h("li", { class: "card placeholder" }, h("p", {}, message)));
  }

  /** Show a `suggestion` event; returns true when the DOM now shows it. */
  show(event) {
    if (this.editing !== null) {
      this.pending = event;
      return false;
    }
    const hadFocus = this.list.contains(document.activeElement);
    const shownAt = nowMs();
    this.event = event;
    this.cards = (event.suggestions || []).map((suggestion, index) => {
      const done = this.actionOf(suggestion.id); // acted on before a reload: not again
      return { suggestion, index, state: done?.kind ?? null, edited: done?.text ?? null, shownAt, el: null };
    });
    for (const card of this.cards) card.el = this.renderCard(card);
    this.list.replaceChildren(...this.cards.map((c) => c.el));
    if (!this.cards.length) this.list.replaceChildren(h("li", { class: "card placeholder" }, h("p", {}, "No suggestion for this moment.")));
    this.select(Math.max(0, this.cards.findIndex((c) => !c.state)), hadFocus);
    const count = this.cards.length;
    this.announce.textContent = count ? `${count} new suggestion${count > 1 ? "s" : ""}: ${this.cards[0].suggestion.text}` : "";
    this.reportShownLater(this.cards);
    return true;
  }

  /** Report `cards` as shown once they stayed up SHOWN_AFTER_MS; cards replaced sooner are not reported. */
  reportShownLater(cards) {
    clearTimeout(this.shownTimer);
    this.unreported = cards.length ? cards.map((c) => ({ suggestion_id: c.suggestion.id, kind: "shown" })) : null;
    this.shownTimer = this.unreported ? setTimeout(() => this.flushShown(), SHOWN_AFTER_MS) : null;
  }

  flushShown() {
    const items = this.unreported;
    this.reportShownLater([]);
    if (items) this.onFeedback(items);
  }

  renderCard(card) {
    const { suggestion, index } = card;
    const n = index + 1;
    const meter = h("span", { class: "meter", "aria-hidden": "true" }, h("i"));
    meter.firstChild.style.width = `${Math.round(Math.max(0, Math.min(1, suggestion.score || 0)) * 100)}%`;
    const el = h("li", { class: "card", tabindex: "-1", "aria-labelledby": `card-text-${n}`,
      "aria-describedby": `card-why-${n}`, dataset: card.state ? { state: card.state } : null },
      h("div", { class: "card-top" },
        h("kbd", { "aria-hidden": "true" }, String(n)),
        h("span", { class: "chip", title: "Action" }, suggestion.action || "suggestion"),
        h("span", { class: "confidence", title: "Model confidence in this action" }, meter,
          h("span", {}, percent(suggestion.score)))),
      h("p", { class: "card-text", id: `card-text-${n}` }, card.edited ?? suggestion.text),
      h("p", { class: "card-why", id: `card-why-${n}` }, suggestion.why || ""),
      this.renderActions(card));
    el.addEventListener("click", (e) => { if (!(e.target instanceof HTMLButtonElement)) this.select(index, false); });
    return el;
  }

  renderActions(card) {
    const n = card.index + 1;
    const button = (label, key, kind, handler) => h("button", { class: `btn small${kind === "accept" ? " primary" : ""}`,
      type: "button", "aria-label": `${label} suggestion ${n}`, "aria-keyshortcuts": key, dataset: { kind },
      onclick: () => handler(card.index) }, label, h("kbd", { "aria-hidden": "true" }, key));
    if (card.state) {
      return h("div", { class: "card-actions" }, h("span", { class: "card-state", role: "status" }, STATE_LABEL[card.state]));
    }
    return h("div", { class: "card-actions" },
      button("Accept", "A", "accept", (i) => this.accept(i)),
      button("Edit", "E", "edit", (i) => this.edit(i)),
      button("Dismiss", "D", "dismiss", (i) => this.dismiss(i)));
  }

  select(index, focus = true) {
    if (!this.cards.length) return;
    this.selected = Math.max(0, Math.min(this.cards.length - 1, index));
    this.cards.forEach((c, i) => c.el.setAttribute("aria-current", i === this.selected ? "true" : "false"));
    if (focus) {
      const card = this.cards[this.selected].el;
      (card.querySelector("button") || card).focus();
    }
  }

  act(index, state, extra = {}) {
    const card = this.cards[index];
    // The card being edited is left alone until the edit is saved (which acts) or cancelled.
    if (!card || card.state || this.editing === index) return;
    card.state = state;
    card.el.dataset.state = state;
    card.el.querySelector(".card-actions").replaceWith(this.renderActions(card));
    this.flushShown(); // an action before the delay: `shown` still goes first
    // A card left up for over an hour still counts, as "an hour or more".
    const elapsed = Math.min(MAX_ELAPSED_MS, Math.max(0, Math.round(nowMs() - card.shownAt)));
    this.onFeedback([{ suggestion_id: card.suggestion.id, kind: state, elapsed_ms: elapsed, ...extra }]);
    const next = this.cards.findIndex((c) => !c.state);
    if (next >= 0) this.select(next, this.list.contains(document.activeElement) || document.activeElement === document.body);
  }

  accept(index = this.selected) {
    const card = this.cards[index];
    if (!card || card.state || this.editing === index) return;
    navigator.clipboard?.writeText(card.suggestion.text).catch(() => null); // handy for chat agents
    this.act(index, "accepted");
  }

  dismiss(index = this.selected) {
    this.act(index, "dismissed");
  }

  edit(index = this.selected) {
    const card = this.cards[index];
    if (!card || card.state || this.editing !== null) return;
    this.editing = index;
    const area = h("textarea", { "aria-label": `Edit suggestion ${index + 1}` });
    area.value = card.suggestion.text;
    const done = (save) => {
      const text = area.value.trim();
      this.editing = null;
      card.el.classList.remove("editing");
      form.replaceWith(textEl);
      if (save && text && text !== card.suggestion.text) {
        textEl.textContent = text;
        card.edited = text;
        this.act(index, "edited", { text });
      } else this.select(index);
      if (this.pending) {
        const pending = this.pending;
        this.pending = null;
        this.show(pending);
      }
    };
    const textEl = card.el.querySelector(".card-text");
    const form = h("div", { class: "card-edit" }, area,
      h("div", { class: "card-actions" },
        h("button", { class: "btn small primary", type: "button", onclick: () => done(true) }, "Save ", h("kbd", {}, "Ctrl+Enter")),
        h("button", { class: "btn small", type: "button", onclick: () => done(false) }, "Cancel ", h("kbd", {}, "Esc"))));
    area.addEventListener("keydown", (e) => {
      if (e.key === "Enter" && (e.ctrlKey || e.metaKey)) { e.preventDefault(); done(true); }
      if (e.key === "Escape") { e.preventDefault(); done(false); }
    });
    textEl.replaceWith(form);
    card.el.classList.add("editing");
    area.focus();
    area.setSelectionRange(area.value.length, area.value.length);
  }

  /** Keyboard shortcuts; returns true when the key was handled.
   *
   * Enter is left to a focused link, button or field (it follows the link, presses the button);
   * the letter and number keys work on the cards' own buttons too. Keys that act (accept,
   * dismiss) do nothing to the card being edited: its edit would be lost. */
  handleKey(event) {
    if (isTyping(event) || event.ctrlKey || event.metaKey || event.altKey || !this.cards.length) return false;
    const key = event.key;
    const acting = ["a", "A", "d", "D", "Enter"].includes(key);
    if (acting && this.editing === this.selected) return false;
    if (key === "Enter" && event.target instanceof Element && event.target.closest(INTERACTIVE)) return false;
    if (/^[1-9]$/.test(key) && Number(key) <= this.cards.length) this.select(Number(key) - 1);
    else if (key === "ArrowDown" || key === "j") this.select(this.selected + 1);
    else if (key === "ArrowUp" || key === "k") this.select(this.selected - 1);
    else if (key === "a" || key === "A") this.accept();
    else if (key === "Enter") this.accept();
    else if (key === "d" || key === "D") this.dismiss();
    else if (key === "e" || key === "E") this.edit();
    else return false;
    event.preventDefault();
    return true;
  }
}
