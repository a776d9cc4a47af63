// Playback for QA replay: the audio element, the speaker-turn timeline and the transcript follow
// each other. Clicking a line or the timeline seeks; playing highlights the line being spoken.

import { clock, h } from "../dom.js";

const KEY_STEP_S = 5;

export class Replay {
  /**
   * @param {{audio: HTMLAudioElement, timeline: HTMLElement, playhead: HTMLElement, follow: HTMLInputElement}} parts
   * @param {Array<{start: number, end: number, role: string}>} segments sorted by start
   * @param {Map<number, HTMLElement>} lineButtons segment index -> its line button
   * @param {number} duration best known length of the call in seconds
   */
  constructor({ audio, timeline, playhead, follow }, segments, lineButtons, duration) {
    Object.assign(this, { audio, timeline, playhead, follow, segments, lineButtons });
    this.duration = Math.max(duration || 0, ...segments.map((s) => s.end), 1);
    this.current = -1;
    this.blocks = new Map();
    this.drawTimeline();
    audio.addEventListener("loadedmetadata", () => {
      if (isFinite(audio.duration) && audio.duration > this.duration) { this.duration = audio.duration; this.drawTimeline(); }
    });
    audio.addEventListener("timeupdate", () => this.sync());
    audio.addEventListener("seeked", () => this.sync());
    audio.addEventListener("play", () => this.loop());
    timeline.addEventListener("click", (e) => this.seekFromPointer(e));
    timeline.addEventListener("keydown", (e) => this.onTimelineKey(e));
    for (const [index, button] of lineButtons) button.addEventListener("click", () => this.seek(this.segments[index].start, true));
    this.sync();
  }

  drawTimeline() {
    this.blocks.clear();
    for (const lane of this.timeline.querySelectorAll(".lane")) lane.querySelector(".lane-track").replaceChildren();
    this.segments.forEach((segment, index) => {
      const lane = this.timeline.querySelector(`.lane[data-role="${segment.role}"] .lane-track`)
        || this.timeline.querySelector(".lane[data-role=customer] .lane-track");
      const block = h("span", { class: "seg", title: `${clock(segment.start)} ${segment.text || ""}`.slice(0, 140) });
      block.style.left = `${(segment.start / this.duration) * 100}%`;
      block.style.width = `${(Math.max(segment.end - segment.start, 0.05) / this.duration) * 100}%`;
      lane.append(block);
      this.blocks.set(index, block);
    });
    this.timeline.setAttribute("aria-valuemax", String(Math.round(this.duration)));
  }

  /** Move playback to `seconds` (and play when asked; a browser without audio output just seeks). */
  seek(seconds, play = false) {
    this.audio.currentTime = Math.max(0, Math.min(seconds, this.duration));
    this.sync();
    if (play && this.audio.src) this.audio.play().catch(() => null);
  }

  seekFromPointer(event) {
    const track = this.timeline.querySelector(".lane-track").getBoundingClientRect();
    const fraction = (event.clientX - track.left) / track.width;
    if (fraction >= 0 && fraction <= 1) this.seek(fraction * this.duration);
  }

  onTimelineKey(event) {
    const t = this.audio.currentTime;
    const moves = { ArrowLeft: t - KEY_STEP_S, ArrowRight: t + KEY_STEP_S, Home: 0, End: this.duration };
    if (event.key in moves) {
      event.preventDefault();
      this.seek(moves[event.key]);
    } else if (event.key === " " || event.key === "Enter") {
      event.preventDefault();
      if (this.audio.paused) this.audio.play().catch(() => null); else this.audio.pause();
    }
  }

  loop() {
    this.sync();
    if (!this.audio.paused) requestAnimationFrame(() => this.loop());
  }

  sync() {
    const t = this.audio.currentTime || 0;
    const track = this.timeline.querySelector(".lane-track");
    this.playhead.style.left = `${track.offsetLeft + (t / this.duration) * track.clientWidth}px`;
    this.timeline.setAttribute("aria-valuenow", String(Math.round(t)));
    this.timeline.setAttribute("aria-valuetext", `${clock(t)} of ${clock(this.duration)}`);
    this.highlight(this.indexAt(t));
  }

  indexAt(t) {
    // The last segment that started at or before t (binary search: long calls have many lines).
    let lo = 0, hi = this.segments.length - 1, found = -1;
    while (lo <= hi) {
      const mid = (lo + hi) >> 1;
      if (this.segments[mid].start <= t + 0.05) { found = mid; lo = mid + 1; } else hi = mid - 1;
    }
    return found;
  }

  highlight(index) {
    if (index === this.current) return;
    this.lineButtons.get(this.current)?.removeAttribute("aria-current");
    this.blocks.get(this.current)?.classList.remove("current");
    this.current = index;
    const button = this.lineButtons.get(index);
    if (!button) return;
    button.setAttribute("aria-current", "true");
    this.blocks.get(index)?.classList.add("current");
    if (this.follow.checked && !this.audio.paused) button.scrollIntoView({ block: "center", behavior: "smooth" });
  }
}
