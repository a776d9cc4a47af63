// QA replay: the call list with filters (kept in the URL, so a filtered list can be shared).

import { api, renderTopbar, signIn } from "../api.js";
import { clock, h, percent, setChildren, when } from "../dom.js";
import { outcomeBadgeOf } from "./outcome.js";
import { startUploads } from "./upload.js";

const $ = (id) => document.getElementById(id);
const FILTERS = ["since", "until", "agent_id", "outcome", "kind"];
const PAGE_SIZE = 100; // calls per request ("Load more" asks for the next ones); the API allows up to 1000

function row(call) {
  const href = `/qa/calls/${encodeURIComponent(call.call_id)}`;
  return h("tr", {},
    h("td", {}, when(call.started_at)),
    h("td", {}, h("a", { class: "call-link", href }, call.call_id),
      call.status !== "done" ? h("span", { class: "sub" }, call.status === "active" ? "in progress" : call.error || call.status) : null),
    h("td", {}, call.agent_id || h("span", { class: "faint" }, "–")),
    h("td", {}, h("span", { class: `badge ${call.kind === "live" ? "live" : ""}` }, call.kind === "live" ? "Live" : "Uploaded")),
    h("td", { class: "num" }, clock(call.duration)),
    h("td", { class: "num", title: "Agent turns that followed a suggestion" }, percent(call.adherence)),
    h("td", {}, outcomeBadgeOf(call.outcome)));
}

/** The API query for the filters in the address bar (no paging). */
function filterQuery() {
  const params = new URLSearchParams(location.search);
  const query = new URLSearchParams();
  for (const name of FILTERS) if (params.get(name)) query.set(name, params.get(name));
  // The dates are this computer's days, as the list shows its times: the server cuts days there.
  const zone = Intl.DateTimeFormat().resolvedOptions().timeZone;
  if (zone && (query.has("since") || query.has("until"))) query.set("tz", zone);
  return query;
}

/** "1 call" / "250 calls"; "100 calls shown, more…" while the last page came back full (no total is known). */
function countText(shown, complete) {
  const noun = `call${shown === 1 ? "" : "s"}`;
  return complete ? `${shown} ${noun}` : `${shown} ${noun} shown, more…`;
}

// The listing on screen: its filters, how many rows it shows, the cursor of its last row (the next
// page is what comes after it: a call that starts meanwhile does not shift it, as an offset would),
// the agents seen, whether a page is on its way. A new listing (filters changed, an upload done)
// replaces it from the top, and pages still on their way for the old one are dropped.
let listing = null;

/** The listing for the current filters, from its first page. */
function load() {
  listing = { query: filterQuery(), shown: 0, before: null, agents: new Set(), loading: false };
  $("calls-count").textContent = "Loading…";
  return fetchPage(listing);
}

/** The next page of `current`: the first replaces the rows, later ones are appended. */
async function fetchPage(current, { focusNew = false } = {}) {
  const tbody = $("calls").querySelector("tbody");
  const more = $("calls-more").parentElement;
  if (current.loading) return; // a double click asks once
  current.loading = true;
  const query = new URLSearchParams(current.query);
  query.set("limit", String(PAGE_SIZE));
  if (current.before) query.set("before", current.before);
  try {
    const { calls } = await api(`/api/qa/calls?${query}`);
    if (current !== listing) return;
    const rows = calls.map(row);
    if (current.shown === 0) setChildren(tbody, rows);
    else tbody.append(...rows);
    current.shown += calls.length;
    if (calls.length) current.before = calls[calls.length - 1].cursor;
    const complete = calls.length < PAGE_SIZE;
    more.hidden = complete;
    $("calls-empty").hidden = current.shown > 0;
    $("calls-count").textContent = countText(current.shown, complete);
    for (const call of calls) if (call.agent_id) current.agents.add(call.agent_id);
    setChildren($("agents"), [...current.agents].sort().map((a) => h("option", { value: a })));
    // Keyboard and screen reader users go on from the first new call (the last one when none came).
    if (focusNew) (rows[0] || tbody.lastElementChild)?.querySelector("a.call-link")?.focus();
  } catch (err) {
    if (current !== listing) return;
    if (current.shown) {  // the button stays, to try again
      $("calls-count").textContent = `${current.shown} calls shown; could not load more: ${err.message}`;
    } else {
      more.hidden = true;
      $("calls-count").textContent = `Could not load calls: ${err.message}`;
    }
  } finally {
    current.loading = false;
  }
}

function bindFilters() {
  const form = $("filters");
  const params = new URLSearchParams(location.search);
  for (const name of FILTERS) form.elements[name].value = params.get(name) || "";
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const next = new URLSearchParams();
    for (const name of FILTERS) if (form.elements[name].value) next.set(name, form.elements[name].value);
    history.replaceState(null, "", `${location.pathname}${next.toString() ? `?${next}` : ""}`);
    load();
  });
  $("calls-more").addEventListener("click", () => fetchPage(listing, { focusNew: true }));
  form.addEventListener("reset", () => setTimeout(() => form.requestSubmit(), 0));
  for (const name of ["outcome", "kind", "since", "until"]) {
    form.elements[name].addEventListener("change", () => form.requestSubmit());
  }
}

const me = await signIn();
renderTopbar(me, "qa");
bindFilters();
await load();
if (me.role === "supervisor") {
  $("upload-panel").hidden = false;
  startUploads({ onDone: load });
} else {
  document.querySelector(".qa-grid").classList.add("wide");
}
