// QA uploads: send a recording, then follow its job (transcribing -> reviewing -> done).

import { api } from "../api.js";
import { h, setChildren } from "../dom.js";

const $ = (id) => document.getElementById(id);
const STATUS = { receiving: "Uploading", queued: "Queued", transcribing: "Transcribing", reviewing: "Running the suggestion model",
  done: "Done", failed: "Failed" };
const POLL_MS = 1000;
const MAX_RETRY_MS = 15000; // failed polls are retried after 1, 2, 4, 8, then every 15 s
// Headerless PCM carries no rate or channel count: the form asks for them (POST ?raw_rate=&raw_channels=).
const RAW_SUFFIXES = [".raw", ".pcm", ".sln", ".s16"];

function isHeaderless(file) {
  return Boolean(file) && RAW_SUFFIXES.some((suffix) => file.name.toLowerCase().endsWith(suffix));
}

/** Show the PCM fields only for a headerless file; disabled fields are neither checked nor sent. */
function showRawFields(form) {
  const fields = $("raw-fields");
  const raw = isHeaderless(form.elements.file.files[0]);
  fields.hidden = !raw;
  fields.disabled = !raw;
}

function jobItem(job) {
  const link = job.call_id && job.status === "done"
    ? h("a", { href: `/qa/calls/${encodeURIComponent(job.call_id)}` }, "Open") : null;
  const running = !["done", "failed"].includes(job.status);
  const detail = job.status === "failed" ? job.error
    : job.warning || (running ? `${STATUS[job.status]}… ${Math.round(job.elapsed)} s` : `${Math.round(job.elapsed)} s`);
  return h("li", { class: "job", dataset: { status: job.status } },
    h("div", { class: "job-top" },
      running ? h("span", { class: "spinner", "aria-hidden": "true" }) : null,
      h("span", { class: "job-name", title: job.filename }, job.filename),
      h("span", { class: `badge ${job.status === "done" ? "ok" : job.status === "failed" ? "bad" : ""}` }, STATUS[job.status] || job.status),
      link),
    h("span", { class: "sub" }, detail));
}

/** Bind the upload form and keep the job list fresh while jobs run; `onDone` reloads the call list. */
export function startUploads({ onDone }) {
  const form = $("upload");
  let finished = new Set();
  let timer = null;
  let busy = false; // a poll is on its way
  let again = false; // asked for another poll while one was on its way
  let failures = 0;
  let pollError = null; // the message a failed poll put up (an upload's own error is left alone)

  /** Poll now (or right after the poll on its way), whatever the timer said. */
  function pollNow() {
    if (busy) {
      again = true;
      return;
    }
    clearTimeout(timer);
    refresh();
  }

  async function refresh() {
    timer = null;
    busy = true;
    again = false;
    let next = null; // ms until the next poll; null: none while no job runs
    try {
      const { jobs } = await api("/api/qa/uploads");
      failures = 0;
      if (pollError !== null && $("upload-error").textContent === pollError) $("upload-error").textContent = "";
      pollError = null;
      setChildren($("jobs"), jobs.slice(0, 8).map(jobItem));
      const nowDone = jobs.filter((j) => j.status === "done").map((j) => j.job_id);
      if (nowDone.some((id) => !finished.has(id))) onDone();
      finished = new Set(nowDone);
      if (jobs.some((j) => !["done", "failed"].includes(j.status))) next = POLL_MS;
    } catch (err) {
      // One failed poll (a restart, a proxy's 502) must not stop the list for good: try again,
      // less often while it keeps failing; the message goes once a poll succeeds.
      failures += 1;
      pollError = `Could not refresh the uploads: ${err.message}`;
      $("upload-error").textContent = pollError;
      next = Math.min(MAX_RETRY_MS, POLL_MS * 2 ** (failures - 1));
    } finally {
      busy = false;
    }
    if (again) next = 0;
    if (next !== null) timer = setTimeout(refresh, next);
  }

  form.elements.file.addEventListener("change", () => showRawFields(form));
  form.addEventListener("reset", () => setTimeout(() => showRawFields(form)));
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    $("upload-error").textContent = "";
    const file = form.elements.file.files[0];
    if (!file) return;
    const query = new URLSearchParams({ filename: file.name });
    if (form.elements.agent_id.value.trim()) query.set("agent_id", form.elements.agent_id.value.trim());
    if (isHeaderless(file)) {
      query.set("raw_rate", form.elements.raw_rate.value.trim());
      query.set("raw_channels", form.elements.raw_channels.value.trim());
    }
    const button = form.querySelector("button");
    button.disabled = true;
    button.textContent = "Uploading…";
    try {
      await api(`/api/qa/uploads?${query}`, { method: "POST", body: file,
        headers: { "Content-Type": file.type || "application/octet-stream" } });
      form.reset();
    } catch (err) {
      $("upload-error").textContent = err.message;
    } finally {
      button.disabled = false;
      button.textContent = "Upload and analyse";
      pollNow();
    }
  });
  pollNow();
}
