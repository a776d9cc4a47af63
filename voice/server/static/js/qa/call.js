// QA replay of one call: audio, speaker timeline, transcript that follows playback, the model's
// suggestions at each agent turn, adherence, exports and (supervisors) the call's outcome.

import { api, renderTopbar, signIn } from "../api.js";
import { clock, h, roleName, setChildren, when } from "../dom.js";
import { outcomeBadgeOf } from "./outcome.js";
import { Replay } from "./player.js";
import { noteBeside, renderBeside, renderSummary, summaryMessage } from "./review.js";

const $ = (id) => document.getElementById(id);
const callId = decodeURIComponent(location.pathname.split("/").pop());

function renderHeader(call) {
  $("call-title").textContent = `Call ${call.call_id}`;
  document.title = `Call ${call.call_id} · nextline`;
  const parts = [call.agent_id ? `Agent ${call.agent_id}` : "No agent", when(call.started_at), clock(call.duration),
    call.kind === "live" ? "Live call" : "Uploaded recording"];
  if (call.status !== "done") parts.push(call.status === "active" ? "in progress" : call.status);
  $("call-meta").textContent = parts.join(" · ");
}

/** The transcript as rows: a line button (seek) and a cell beside it for the model's suggestions. */
function renderLines(segments) {
  const lineButtons = new Map();
  const besideCells = new Map();
  const agentSegments = [];
  const rows = segments.map((segment, index) => {
    const button = h("button", { class: "line", type: "button", dataset: { start: segment.start, index },
      "aria-label": `${roleName(segment.role)} at ${clock(segment.start)}: ${segment.text}. Play from here.` },
      h("span", { class: "time" }, clock(segment.start)),
      h("span", { class: `role ${segment.role}` }, roleName(segment.role)),
      h("span", { class: "text" }, segment.text));
    const beside = h("div", { class: "beside" });
    lineButtons.set(index, button);
    besideCells.set(segment.id ?? index, beside);
    if (segment.role === "agent") agentSegments.push(segment.id ?? index);
    return h("li", { class: "line-row" }, button, beside);
  });
  setChildren($("lines"), rows.length ? rows : h("li", { class: "empty" }, "No transcript is stored for this call yet."));
  return { lineButtons, besideCells, agentSegments };
}

async function loadReview(data, cells) {
  const parts = { summary: $("summary"), csv: $("export-csv"), json: $("export-json") };
  if (data.review) {
    renderBeside(data.review, cells.besideCells);
    return renderSummary(data.review, callId, parts);
  }
  if (!data.transcript || data.transcript.partial) {
    return summaryMessage(parts.summary, "The model's review is available once the call has ended.");
  }
  summaryMessage(parts.summary, "Running the suggestion model over this call…", true);
  noteBeside(cells.besideCells, cells.agentSegments, "Computing…");
  try {
    const review = await api(`/api/qa/calls/${encodeURIComponent(callId)}/review`, { method: "POST" });
    renderBeside(review, cells.besideCells);
    renderSummary(review, callId, parts);
  } catch (err) {
    summaryMessage(parts.summary, err.status === 409 ? err.message : `The review failed: ${err.message}`);
    noteBeside(cells.besideCells, cells.agentSegments, "");
  }
}

function renderOutcome(call, me) {
  const box = $("outcome");
  const current = h("div", { class: "outcome-now" }, "Outcome", outcomeBadgeOf(call.outcome));
  if (me.role !== "supervisor") return setChildren(box, current);
  const select = h("select", { name: "success", "aria-label": "Outcome" },
    h("option", { value: "" }, "Not recorded"), h("option", { value: "true" }, "Success"), h("option", { value: "false" }, "No success"));
  select.value = call.outcome?.success === true ? "true" : call.outcome?.success === false ? "false" : "";
  const value = h("input", { type: "number", step: "any", name: "value", "aria-label": "Outcome value", placeholder: "Value" });
  value.value = call.outcome?.value ?? "";
  const status = h("span", { class: "status-text", role: "status" });
  const form = h("form", { class: "outcome-form", "aria-label": "Set the outcome" }, select, value,
    h("button", { class: "btn small", type: "submit" }, "Save outcome"), status);
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    try {
      const body = { success: select.value === "" ? null : select.value === "true",
        value: value.value === "" ? null : Number(value.value), source: "qa" };
      call.outcome = await api(`/api/calls/${encodeURIComponent(callId)}/outcome`, { method: "PUT", body });
      current.replaceChildren("Outcome", outcomeBadgeOf(call.outcome));
      status.textContent = "Saved.";
    } catch (err) {
      status.textContent = err.message;
    }
  });
  setChildren(box, current, form);
}

const me = await signIn();
renderTopbar(me, "qa");
try {
  const data = await api(`/api/qa/calls/${encodeURIComponent(callId)}`);
  renderHeader(data.call);
  renderOutcome(data.call, me);
  const segments = [...(data.transcript?.segments || [])].sort((a, b) => a.start - b.start);
  const cells = renderLines(segments);
  const audio = $("audio");
  if (data.audio_url) audio.src = data.audio_url;
  else { audio.hidden = true; $("no-audio").hidden = false; }
  window.nextline = { replay: new Replay({ audio, timeline: $("timeline"), playhead: $("playhead"), follow: $("follow") },
    segments, cells.lineButtons, data.call.duration) };
  await loadReview(data, cells);
} catch (err) {
  $("call-title").textContent = err.status === 403 ? "This call belongs to another agent" : "Call not available";
  $("call-meta").textContent = err.message;
}
