// QA replay: the call list with filters (kept in the URL, so a filtered list can be shared).

import { api, renderTopbar, signIn } from "../api.js";
import { clock, h, percent, setChildren, when } from "../dom.js";
import { outcomeBadgeOf } from "./outcome.js";
import { startUploads } from "./upload.js";

const $ = (id) => document.getElementById(id);
const FILTERS = ["since", "until", "agent_id", "outcome", "kind"];

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

async function load() {
  const params = new URLSearchParams(location.search);
  const query = new URLSearchParams();
  for (const name of FILTERS) if (params.get(name)) query.set(name, params.get(name));
  // The dates are this computer's days, as the list shows its times: the server cuts days there.
  const zone = Intl.DateTimeFormat().resolvedOptions().timeZone;
  if (zone && (query.has("since") || query.has("until"))) query.set("tz", zone);
  const tbody = $("calls").querySelector("tbody");
  $("calls-count").textContent = "Loading…";
  try {
    const { calls } = await api(`/api/qa/calls?${query}`);
    setChildren(tbody, calls.map(row));
    $("calls-empty").hidden = calls.length > 0;
    $("calls-count").textContent = `${calls.length} call${calls.length === 1 ? "" : "s"}`;
    const agents = [...new Set(calls.map((c) => c.agent_id).filter(Boolean))].sort();
    setChildren($("agents"), agents.map((a) => h("option", { value: a })));
  } catch (err) {
    $("calls-count").textContent = `Could not load calls: ${err.message}`;
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
