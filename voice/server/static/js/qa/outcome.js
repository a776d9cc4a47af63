// How a call's CRM outcome reads on the QA pages.

import { h } from "../dom.js";

/** A badge: Success / No success (with value and label) or a dash when not recorded. */
export function outcomeBadgeOf(outcome) {
  if (!outcome || outcome.success === null || outcome.success === undefined) return h("span", { class: "badge" }, "–");
  const label = outcome.label || (outcome.success ? "Success" : "No success");
  const value = outcome.value !== null && outcome.value !== undefined ? ` · ${outcome.value}` : "";
  return h("span", { class: `badge ${outcome.success ? "ok" : "bad"}` }, label + value);
}
