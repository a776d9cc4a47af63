"""Prometheus metrics of the live server, served at ``GET /metrics`` (text exposition format).

Two sources:

- the call events the hub publishes, counted and timed as they pass, so every ingress (Twilio,
  AudioHook, SIP, SIPREC, WebRTC) is covered without touching it;
- snapshots read at scrape time: active calls, the decode scheduler's queue and load, early
  finals, and the process's CPU and memory (prometheus_client's own collectors).

Labels stay low-cardinality (event type, role, ingress, end-reason class, latency stage), never
a call id, an agent or a tenant's free text. Each app has its own registry, so several apps in one
process (tests) do not collide.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from typing import Any

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Histogram,
    PlatformCollector,
    ProcessCollector,
    generate_latest,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

log = logging.getLogger(__name__)

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
LAG_BUCKETS = (0.1, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 2.5, 3.0, 4.0, 6.0, 10.0, 20.0)
"""Seconds behind the call's audio; the goals (0.7 s to a final, 1.5-2.5 s to commit) fall inside."""
SUGGESTION_BUCKETS = (0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0)
"""Seconds; the goal is p50 <= 20 ms, p99 <= 100 ms."""
TIMED_EVENTS = ("transcript.partial", "transcript.final", "nlu", "suggestion")
MAX_TRACKED_CALLS = 10_000
"""Call starts remembered for lag; a call that never ends (a crashed ingress) ages out."""
_WORD = re.compile(r"[a-z]+")


def reason_class(reason: str) -> str:
    """A call-end reason reduced to its first word ('hang up: BYE' -> 'hang'), for a label.

    Ingresses word their reasons freely; the first word keeps the classes apart (stop, bye,
    hangup, error, shutdown, closed, ...) without letting free text into the label set.
    """
    match = _WORD.search(reason.lower())
    return match.group(0)[:24] if match else "unknown"


class ServerMetrics:
    """The registry behind ``/metrics`` and the event observer that feeds it."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        ProcessCollector(registry=self.registry)
        PlatformCollector(registry=self.registry)
        r = self.registry
        self.calls_started = Counter("nextline_calls_started", "Calls started, by ingress.", ["source"], registry=r)
        self.calls_ended = Counter("nextline_calls_ended", "Calls ended, by the first word of the reason.",
                                   ["reason"], registry=r)
        self.finals = Counter("nextline_transcript_finals", "Final turn transcripts, by speaker role.",
                              ["role"], registry=r)
        self.final_words = Counter("nextline_transcript_final_words", "Words in final turn transcripts.",
                                   ["role"], registry=r)
        self.suggestions = Counter("nextline_suggestion_events", "Suggestion events sent to agents' screens.",
                                   registry=r)
        self.errors = Counter("nextline_call_errors", "Error events of calls, by the processor that reported them.",
                              ["source", "fatal"], registry=r)
        self.feedback = Counter("nextline_suggestion_feedback", "Agent feedback on suggestions.", ["event"],
                                registry=r)
        self.event_lag = Histogram(
            "nextline_event_lag_seconds",
            "Wall-clock delay of an event behind the call audio that caused it (emitted_at minus the call's "
            "start plus audio_time); live calls arrive in real time, so this is the processing delay.",
            ["type"], buckets=LAG_BUCKETS, registry=r)
        self.suggestion_latency = Histogram(
            "nextline_suggestion_latency_seconds",
            "Suggestion latency from a finished turn's request to its result, by stage (total, queue, encode, "
            "policy, realise).", ["stage"], buckets=SUGGESTION_BUCKETS, registry=r)
        self._call_start: dict[str, float] = {}
        self._services: _ServicesCollector | None = None

    def attach(self, services: Any) -> None:
        """Read the live services (calls, scheduler, early finals) at every scrape from now on."""
        if self._services is None:
            self._services = _ServicesCollector(services)
            self.registry.register(self._services)

    def exposition(self) -> bytes:
        """The current metrics in Prometheus' text format."""
        return generate_latest(self.registry)

    def observe_event(self, event: dict[str, Any]) -> None:
        """Count and time one published call event (never raises: metrics must not break a call)."""
        try:
            self._observe(event)
        except Exception:  # a malformed event is the producer's bug, not the call's
            log.exception("metrics: could not observe event %s", event.get("type"))

    def observe_feedback(self, events: list[str]) -> None:
        """Count stored feedback actions (shown / accepted / dismissed / edited)."""
        for kind in events:
            self.feedback.labels(event=kind).inc()

    def _observe(self, event: dict[str, Any]) -> None:
        kind, call_id = event.get("type"), str(event.get("call_id", ""))
        if kind == "call.started":
            self._call_start[call_id] = float(event["emitted_at"])
            if len(self._call_start) > MAX_TRACKED_CALLS:
                del self._call_start[next(iter(self._call_start))]
            self.calls_started.labels(source=str(event.get("source") or "unknown")).inc()
            return
        if kind == "call.ended":
            self._call_start.pop(call_id, None)
            self.calls_ended.labels(reason=reason_class(str(event.get("reason") or ""))).inc()
            return
        if kind == "error":
            self.errors.labels(source=str(event.get("source") or "unknown"), fatal=str(bool(event.get("fatal"))).lower()
                               ).inc()
            return
        if kind in TIMED_EVENTS:
            self._time(kind, call_id, event)
        if kind == "transcript.final":
            role = str(event.get("role") or "unknown")
            self.finals.labels(role=role).inc()
            self.final_words.labels(role=role).inc(len(event.get("words") or ()))
        elif kind == "suggestion":
            self.suggestions.inc()
            for stage, ms in (event.get("latency_ms") or {}).items():
                if stage != "batch_size" and isinstance(ms, int | float):
                    self.suggestion_latency.labels(stage=stage).observe(ms / 1000.0)

    def _time(self, kind: str, call_id: str, event: dict[str, Any]) -> None:
        started, audio_time = self._call_start.get(call_id), event.get("audio_time")
        if started is None or not isinstance(audio_time, int | float):
            return
        lag = float(event["emitted_at"]) - (started + float(audio_time))
        self.event_lag.labels(type=kind).observe(max(lag, 0.0))


class _ServicesCollector(Collector):
    """Scrape-time snapshot of the live services: active calls, decode scheduler, early finals."""

    def __init__(self, services: Any) -> None:
        self.services = services

    def collect(self) -> Iterator[Metric]:
        yield GaugeMetricFamily("nextline_active_calls", "Calls in progress.",
                                value=len(self.services.manager.sessions))
        asr = self.services.asr
        scheduler = getattr(asr, "scheduler", None)  # a runtime without one (tests) exports none
        if scheduler is not None:
            yield from _scheduler_metrics(scheduler.metrics())
        yield from _counts(getattr(asr, "early_final_counts", None), "nextline_asr_early_finals",
                           "Whole-turn decodes started at a pause before the VAD closed the turn, and those "
                           "the close then used as the final.", "outcome", ("started", "adopted"))
        yield from _counts(getattr(asr, "stand_in_counts", None), "nextline_asr_finals_not_decoded",
                           "Closed turns whose final was not decoded (failed, shed under overload, or given up at "
                           "the call's end): their streamed words stood in, or they had none and were not "
                           "transcribed.",
                           "stand_in", ("streamed", "untranscribed"))


def _counts(counts: Any, name: str, documentation: str, label: str, values: tuple[str, ...]) -> Iterator[Metric]:
    """One counter family of a runtime's ``counts`` by ``label``; none for a runtime without them."""
    if counts is None:
        return
    family = CounterMetricFamily(name, documentation, labels=[label])
    for value in values:
        family.add_metric([value], counts[value])
    yield family


def _scheduler_metrics(m: Any) -> Iterator[Metric]:
    queue = GaugeMetricFamily("nextline_asr_queue_depth", "Decode jobs waiting for a worker.", labels=["kind"])
    queue.add_metric(["final"], m.queued_finals)
    queue.add_metric(["partial"], m.queued_partials)
    yield queue
    yield GaugeMetricFamily("nextline_asr_decodes_running", "Decodes running now.", value=m.running)
    yield GaugeMetricFamily("nextline_asr_workers", "Decode workers.", value=m.workers)
    yield GaugeMetricFamily("nextline_asr_busy_ratio", "Share of decode-worker time spent decoding, recent window.",
                            value=m.busy_fraction)
    yield GaugeMetricFamily("nextline_asr_partial_spacing_seconds",
                            "Extra seconds between a stream's partial decodes under load (0 when idle).",
                            value=m.partial_spacing)
    done = CounterMetricFamily("nextline_asr_decodes", "Decode jobs finished.", labels=["kind"])
    done.add_metric(["final"], m.finals_done)
    done.add_metric(["partial"], m.partials_done)
    yield done
    yield CounterMetricFamily("nextline_asr_finals_cheap", "Finals decoded greedily without context because "
                              "more finals waited than the workers' limit (nextline_asr_queue_depth{kind=\"final\"} "
                              "is the backlog).", value=m.finals_cheap)
    yield CounterMetricFamily("nextline_asr_finals_shed", "Finals not decoded because more finals waited than the "
                              "workers' shedding limit (oldest first; their streamed words stand in, see "
                              "nextline_asr_finals_not_decoded).", value=m.finals_shed)
    dropped = CounterMetricFamily("nextline_asr_partials_dropped",
                                  "Partial decodes not run: replaced by a newer one, or cancelled.", labels=["why"])
    dropped.add_metric(["coalesced"], m.partials_coalesced)
    dropped.add_metric(["cancelled"], m.partials_cancelled)
    yield dropped
    yield CounterMetricFamily("nextline_asr_decode_failures", "Decode jobs that raised.", value=m.failures)
    for name, by_kind, what in (("decode", m.decode_ms, "Decode time per job"),
                                ("wait", m.wait_ms, "Submission to a worker taking the job")):
        family = GaugeMetricFamily(f"nextline_asr_{name}_seconds_recent",
                                   f"{what}, recent window, by kind and quantile.", labels=["kind", "quantile"])
        for kind, p in by_kind.items():
            family.add_metric([kind, "0.5"], p.p50 / 1000.0)
            family.add_metric([kind, "0.95"], p.p95 / 1000.0)
        yield family
