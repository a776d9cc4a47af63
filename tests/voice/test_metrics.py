"""Prometheus metrics: call events counted and timed through the hub, scrape-time load, /metrics."""

from __future__ import annotations

from collections import Counter
from types import SimpleNamespace

import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from voice.live.scheduler import Percentiles, SchedulerMetrics
from voice.server.hub import EventHub
from voice.server.metrics import ServerMetrics, reason_class

pytestmark = pytest.mark.unit


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of an exposition, keyed by name and sorted labels (parsed, as Prometheus would)."""
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def publish_call(hub: EventHub, call_id: str, clock: list[float]) -> None:
    """A call whose events are emitted at chosen wall times (the hub stamps time.time())."""
    def at(t: float, event: dict) -> None:
        clock[0] = t
        hub.publish(call_id, event)

    at(1000.0, {"type": "call.started", "audio_time": 0.0, "source": "twilio", "legs": {}})
    at(1004.3, {"type": "transcript.partial", "audio_time": 3.0, "role": "customer"})
    at(1005.6, {"type": "transcript.final", "audio_time": 5.0, "role": "customer",
                "words": [{"text": "hello"}, {"text": "there"}]})
    at(1005.7, {"type": "suggestion", "audio_time": 5.0, "latency_ms": {"total": 12.0, "encode": 4.0,
                                                                        "batch_size": 3}})
    at(1009.0, {"type": "error", "audio_time": None, "source": "StreamingAsrProcessor", "fatal": False})
    at(1010.0, {"type": "call.ended", "audio_time": 10.0, "reason": "hang up: BYE from agent"})


def test_events_through_the_hub_become_counts_and_lags(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = [0.0]
    monkeypatch.setattr("voice.server.hub.time.time", lambda: clock[0])
    hub, metrics = EventHub(), ServerMetrics()
    hub.observers.append(metrics.observe_event)
    publish_call(hub, "c1", clock)
    metrics.observe_feedback(["shown", "accepted", "shown"])
    got = samples(metrics.exposition().decode())

    assert got[("nextline_calls_started_total", (("source", "twilio"),))] == 1
    assert got[("nextline_calls_ended_total", (("reason", "hang"),))] == 1
    assert got[("nextline_transcript_finals_total", (("role", "customer"),))] == 1
    assert got[("nextline_transcript_final_words_total", (("role", "customer"),))] == 2
    # the final came 0.6 s after its audio (1005.6 - (1000 + 5.0)), the partial 1.3 s
    final_lag = ("nextline_event_lag_seconds_sum", (("type", "transcript.final"),))
    assert got[final_lag] == pytest.approx(0.6)
    assert got[("nextline_event_lag_seconds_bucket", (("le", "0.5"), ("type", "transcript.final")))] == 0
    assert got[("nextline_event_lag_seconds_bucket", (("le", "0.75"), ("type", "transcript.final")))] == 1
    assert got[("nextline_event_lag_seconds_sum", (("type", "transcript.partial"),))] == pytest.approx(1.3)
    assert got[("nextline_suggestion_latency_seconds_sum", (("stage", "total"),))] == pytest.approx(0.012)
    assert ("nextline_suggestion_latency_seconds_sum", (("stage", "batch_size"),)) not in got
    assert got[("nextline_call_errors_total", (("fatal", "false"), ("source", "StreamingAsrProcessor")))] == 1
    assert got[("nextline_suggestion_feedback_total", (("event", "shown"),))] == 2
    # the call's start is forgotten at its end: a late event of it is counted but not timed
    clock[0] = 1011.0
    hub.publish("c1", {"type": "transcript.final", "audio_time": 10.0, "role": "agent", "words": []})
    again = samples(metrics.exposition().decode())
    assert again[("nextline_event_lag_seconds_count", (("type", "transcript.final"),))] == 1
    assert again[("nextline_transcript_finals_total", (("role", "agent"),))] == 1


def test_a_malformed_event_never_reaches_the_call() -> None:
    hub, metrics = EventHub(), ServerMetrics()
    hub.observers.append(metrics.observe_event)
    hub.publish("c2", {"type": "call.started", "audio_time": 0.0})
    event = hub.publish("c2", {"type": "transcript.final", "audio_time": "late", "words": 3})
    assert event["seq"] == 2 and len(hub.history("c2")) == 2


def test_end_reasons_become_a_few_label_values() -> None:
    assert [reason_class(r) for r in ("stop", "hang up: BYE", "error: audio decoding failed", "", "  42")] == [
        "stop", "hang", "error", "unknown", "unknown"]


def fake_services(calls: int, counts: Counter[str]) -> SimpleNamespace:
    percentiles = Percentiles(count=4, p50=80.0, p95=200.0, max=250.0)
    scheduler_metrics = SchedulerMetrics(
        workers=1, queued_finals=2, queued_partials=5, running=1, busy_fraction=0.9, partial_spacing=0.5,
        finals_done=10, partials_done=40, partials_coalesced=7, partials_cancelled=1, failures=0,
        decode_ms={"final": percentiles}, wait_ms={"final": percentiles})
    scheduler = SimpleNamespace(metrics=lambda: scheduler_metrics)
    return SimpleNamespace(manager=SimpleNamespace(sessions=dict.fromkeys(range(calls))),
                           asr=SimpleNamespace(scheduler=scheduler, early_final_counts=counts))


def test_scrape_reads_the_live_services_each_time() -> None:
    counts: Counter[str] = Counter(started=3, adopted=2)
    services = fake_services(calls=2, counts=counts)
    metrics = ServerMetrics()
    metrics.attach(services)
    got = samples(metrics.exposition().decode())
    assert got[("nextline_active_calls", ())] == 2
    assert got[("nextline_asr_queue_depth", (("kind", "partial"),))] == 5
    assert got[("nextline_asr_decodes_total", (("kind", "final"),))] == 10
    assert got[("nextline_asr_partials_dropped_total", (("why", "coalesced"),))] == 7
    assert got[("nextline_asr_decode_seconds_recent", (("kind", "final"), ("quantile", "0.95")))] == 0.2
    assert got[("nextline_asr_early_finals_total", (("outcome", "adopted"),))] == 2
    assert got[("process_resident_memory_bytes", ())] > 0
    counts["started"] += 1
    services.manager.sessions.clear()
    got = samples(metrics.exposition().decode())
    assert got[("nextline_asr_early_finals_total", (("outcome", "started"),))] == 4
    assert got[("nextline_active_calls", ())] == 0


def test_metrics_route_answers_while_models_load(tmp_path) -> None:
    from voice.config import ServerConfig
    from voice.server.app import create_app

    app = create_app(ServerConfig(data_dir=str(tmp_path), sip_port=-1))
    response = TestClient(app).get("/metrics")  # outside `with`: no lifespan, the services never load
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/plain")
    got = samples(response.text)
    assert ("process_cpu_seconds_total", ()) in got and ("nextline_active_calls", ()) not in got
