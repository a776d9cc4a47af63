// Small DOM and formatting helpers shared by every page (no framework, no build step).

/**
 * Create an element: h("button", {class: "btn", onclick: fn, "aria-label": "Accept"}, "Accept").
 * Children may be strings, nodes, arrays, null or false (skipped). Text is never parsed as HTML.
 */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key.startsWith("on") && typeof value === "function") el.addEventListener(key.slice(2), value);
    else if (key === "class") el.className = value;
    else if (key === "dataset") Object.assign(el.dataset, value);
    else if (key === "text") el.textContent = value;
    else el.setAttribute(key, value === true ? "" : String(value));
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

/** Replace all children of `el`. */
export function setChildren(el, ...children) {
  el.replaceChildren();
  append(el, children);
}

/** 75.3 -> "1:15"; 3725 -> "1:02:05". */
export function clock(seconds) {
  if (seconds === null || seconds === undefined || !isFinite(seconds)) return "–";
  const s = Math.max(0, Math.floor(seconds));
  const hh = Math.floor(s / 3600), mm = Math.floor((s % 3600) / 60), ss = String(s % 60).padStart(2, "0");
  return hh ? `${hh}:${String(mm).padStart(2, "0")}:${ss}` : `${mm}:${ss}`;
}

/** 0.734 -> "73 %". */
export function percent(x, digits = 0) {
  return x === null || x === undefined || !isFinite(x) ? "–" : `${(x * 100).toFixed(digits)} %`;
}

/** ISO time -> local "27 Nov, 14:03". */
export function when(iso) {
  if (!iso) return "–";
  const d = new Date(iso);
  return d.toLocaleString(undefined, { day: "numeric", month: "short", hour: "2-digit", minute: "2-digit" });
}

/** "agent" -> "Agent"; unknown roles read as "Speaker". */
export function roleName(role) {
  return { agent: "Agent", customer: "Customer" }[role] || "Speaker";
}

/** Wall clock in milliseconds with sub-millisecond precision (same clock as the server's emitted_at). */
export function nowMs() {
  return performance.timeOrigin + performance.now();
}

/** Whether a key event comes from a place where the user is typing. */
export function isTyping(event) {
  const t = event.target;
  return t instanceof HTMLElement && (t.isContentEditable || ["INPUT", "TEXTAREA", "SELECT"].includes(t.tagName));
}
