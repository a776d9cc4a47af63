"""From what a benchmark client saw (its send times, the server's events) to latencies and texts.

The server's events are turned back into the frames ``voice.live.replay`` measures, on one
clock (wall seconds since the run started), so the live benchmark computes word-commit and
end-of-turn latencies exactly as ``bench_streaming.py`` does without a server:

- a word's commit latency: the ``emitted_at`` of the first event showing it committed (a
  partial's committed words, or the turn's final for words no partial committed) minus the
  wall time the client had sent the 20 ms chunk holding the word's end;
- end of turn -> final, two ways: from the *last word* (send time of the chunk holding the
  final's last word end: includes the VAD hang time) and from the *VAD close* (send time of
  the audio at ``end + min_silence_duration``: the turn's speech end as the VAD marks it plus
  its hang time, i.e. the moment the server could know the turn was over; the events do not
  carry the close itself, so it is placed from the VAD parameters, exact to one 32 ms step);
- the same two for the turn's ``suggestion`` event.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from voice.frames import SpeechStoppedFrame, TimedWord, TranscriptFinalFrame, TranscriptPartialFrame
from voice.live import replay
from voice.vad import VadParams

Event = dict[str, Any]
HANG = VadParams().min_silence_duration
MAX_TURN = 30.0
"""StreamingAsrProcessor's max_turn: a final this long was cut by length, not closed by VAD."""


@dataclass
class LegMeasure:
    """One leg of one call: what it showed and how late."""

    commit: list[float] = field(default_factory=list)
    commit_by_final: int = 0
    final_from_close: list[float] = field(default_factory=list)
    final_from_word: list[float] = field(default_factory=list)
    final_points: list[tuple[float, float]] = field(default_factory=list)
    """(turn end in call audio, VAD close -> final): does the lag grow over the call?"""
    lag_points: list[tuple[float, float]] = field(default_factory=list)
    suggestion_from_close: list[float] = field(default_factory=list)
    suggestion_from_word: list[float] = field(default_factory=list)
    texts: dict[str, str] = field(default_factory=dict)
    """final / partial / committed -> text."""


def _words(items: list[dict[str, Any]]) -> list[TimedWord]:
    return [TimedWord(w["text"], w["start"], w["end"], w.get("probability", 1.0)) for w in items]


def replay_log(
    call_id: str,
    leg: str,
    events: list[Event],
    sent_at: list[float],
    t0: float,
    chunk_seconds: float = 0.02,
) -> replay.ReplayLog:
    """The leg's events as the frames a replay would have recorded, on the clock ``t - t0``."""
    log = replay.ReplayLog(call_id, chunk_seconds, fed_at=[t - t0 for t in sent_at])
    audio_end = len(sent_at) * chunk_seconds
    for event in events:
        if event.get("leg") != leg:
            continue
        at = event["emitted_at"] - t0
        if event["type"] == "transcript.partial":
            frame: Any = TranscriptPartialFrame(
                leg=leg,
                committed=_words(event["committed"]),
                tentative=_words(event["tentative"]),
                audio_time=event["audio_time"],
                role=event["role"],
            )
            log.emitted.append(replay.Emitted(at, frame))
        elif event["type"] == "transcript.final":
            if event["end"] - event["start"] < MAX_TURN - 0.1:  # closed by the VAD
                closed = log.fed_time(min(event["end"] + HANG, audio_end))
                stop = SpeechStoppedFrame(
                    leg=leg, audio_time=event["end"], turn_start=event["start"]
                )
                log.emitted.append(replay.Emitted(closed, stop))
            frame = TranscriptFinalFrame(
                turn_id=event["turn_id"],
                leg=leg,
                text=event["text"],
                words=_words(event["words"]),
                start=event["start"],
                end=event["end"],
                audio_time=event["audio_time"],
                role=event["role"],
            )
            log.emitted.append(replay.Emitted(at, frame))
    return log


def measure_leg(log: replay.ReplayLog, leg: str, events: list[Event], t0: float) -> LegMeasure:
    """Latencies and texts of one leg (``events``: the whole call's, for its suggestions)."""
    out = LegMeasure()
    for commit in replay.commit_latencies(log, leg):
        out.commit.append(commit.latency)
        out.commit_by_final += commit.by_final
    out.lag_points = replay.partial_lags(log, leg)
    for final in replay.final_latencies(log, leg):
        out.final_from_close.append(final.from_close)
        out.final_points.append((final.end, final.from_close))
        if final.from_last_word is not None:
            out.final_from_word.append(final.from_last_word)
    finals = {
        e["turn_id"]: e for e in events if e["type"] == "transcript.final" and e["leg"] == leg
    }
    audio_end = len(log.fed_at) * log.frame_seconds
    for suggestion in (e for e in events if e["type"] == "suggestion" and e["turn_id"] in finals):
        final, at = finals[suggestion["turn_id"]], suggestion["emitted_at"] - t0
        out.suggestion_from_close.append(at - log.fed_time(min(final["end"] + HANG, audio_end)))
        if final["words"]:
            out.suggestion_from_word.append(at - log.fed_time(final["words"][-1]["end"]))
    out.texts = {
        "final": replay.final_text(log, leg),
        "partial": replay.partial_text(log, leg),
        "committed": replay.partial_text(log, leg, committed_only=True),
    }
    return out




def summarize(
    legs: dict[str, LegMeasure], refs: dict[str, str], offline: dict[str, str]
) -> dict[str, Any]:
    """One table row from a run's legs (keyed ``call/leg#n``; refs and offline by ``call/leg``)."""
    from asr.wer import pooled, word_errors

    def merged(name: str) -> list[Any]:
        return [v for m in legs.values() for v in getattr(m, name)]

    wers = {
        kind: 100
        * pooled([word_errors(refs[k.split("#")[0]], m.texts[kind]) for k, m in legs.items()]).wer
        for kind in ("final", "partial", "committed")
    }
    wers["offline"] = (
        100
        * pooled([word_errors(refs[k.split("#")[0]], offline[k.split("#")[0]]) for k in legs]).wer
    )
    commit, close, word = merged("commit"), merged("final_from_close"), merged("final_from_word")
    s_close, s_word = merged("suggestion_from_close"), merged("suggestion_from_word")
    return {
        "commit_p50": replay.percentile(commit, 50),
        "commit_p95": replay.percentile(commit, 95),
        "words": len(commit),
        "words_by_final": sum(m.commit_by_final for m in legs.values()),
        "final_close_p50": replay.percentile(close, 50),
        "final_close_p95": replay.percentile(close, 95),
        "final_word_p50": replay.percentile(word, 50),
        "final_word_p95": replay.percentile(word, 95),
        "finals": len(close),
        "suggestion_close_p50": replay.percentile(s_close, 50),
        "suggestion_close_p95": replay.percentile(s_close, 95),
        "suggestion_word_p50": replay.percentile(s_word, 50),
        "suggestion_word_p95": replay.percentile(s_word, 95),
        "suggestions": len(s_close),
        "wer": wers,
        "lag_p50": replay.percentile([lag for _, lag in merged("lag_points")], 50),
        "lag_growth": replay.growth(merged("lag_points")),
        "final_growth": replay.growth(merged("final_points")),
    }
