// The model's view of a finished call: suggestions beside the agent's actual words, the
// adherence summary and the export links.

import { h, percent, setChildren } from "../dom.js";

const HIGH = 0.6;
const MID = 0.4;

function similarityBadge(value) {
  const level = value >= HIGH ? "high" : value >= MID ? "mid" : "";
  return h("span", { class: `sim ${level}`, title: "Cosine similarity to what the agent said" },
    value === null || value === undefined ? "–" : value.toFixed(2));
}

/** Fill the cells beside agent lines: the review row of a turn goes beside its first segment. */
export function renderBeside(review, besideCells) {
  for (const cell of besideCells.values()) cell.replaceChildren();
  for (const row of review.rows) {
    const cell = besideCells.get((row.segments || [])[0]);
    if (!cell) continue;
    const items = (row.suggestions || []).map((s, rank) =>
      h("div", { class: `sugg${rank === row.best_rank ? " best" : ""}` },
        h("span", { class: "text" }, s.text),
        similarityBadge(s.similarity),
        h("span", { class: "action" }, `${rank + 1}. ${s.action || "suggestion"}${s.score !== undefined ? ` · ${percent(s.score)}` : ""}`)));
    setChildren(cell, h("span", { class: "visually-hidden" }, "Model suggestions for this turn:"), items);
  }
}

/** Show a note in every agent cell (while computing, or why there are no suggestions). */
export function noteBeside(besideCells, agentCells, text) {
  for (const index of agentCells) besideCells.get(index)?.replaceChildren(h("span", { class: "pending" }, text));
}

function stat(value, label) {
  return h("div", { class: "stat" }, h("span", { class: "value" }, value), h("span", { class: "label" }, label));
}

/** The per-call adherence summary and the CSV/JSON export links. */
export function renderSummary(review, callId, { summary, csv, json }) {
  const s = review.summary || {};
  setChildren(summary,
    stat(percent(s.adherence), `followed the model (${s.followed_turns ?? 0} of ${s.reviewed_turns ?? 0} agent turns)`),
    stat(s.mean_best_similarity === null || s.mean_best_similarity === undefined ? "–" : s.mean_best_similarity.toFixed(2), "mean best similarity"),
    stat(s.mean_top1_similarity === null || s.mean_top1_similarity === undefined ? "–" : s.mean_top1_similarity.toFixed(2), "mean top-1 similarity"),
    h("p", { class: "summary-note" },
      `A turn counts as followed when one of the top ${review.k} suggestions is at least ${s.threshold ?? HIGH} similar `,
      `to what the agent said. Model ${review.model_version}.`));
  const base = `/api/qa/calls/${encodeURIComponent(callId)}/review`;
  csv.href = `${base}.csv`;
  json.href = `${base}.json`;
  csv.hidden = json.hidden = false;
}

export function summaryMessage(summary, text, busy = false) {
  setChildren(summary, h("div", { class: "summary-note" }, busy ? h("span", { class: "spinner", "aria-hidden": "true" }) : null, " ", text));
}
