"""Our own session refreshes (RFC 4028 10, we are the refresher) against scripted peers on
127.0.0.1: what the UPDATE says, what its 2xx changes, and which failures are retried.

Several calls run side by side on one server so the seconds of real time are spent once. Our
minimum is lowered to 1 s through ``sip_min_session_expires`` so the timers run in seconds."""

from __future__ import annotations

import asyncio
import itertools
from dataclasses import dataclass, field

import pytest

from telephony.sip import session_timer
from telephony.sip.message import SipMessage, response_to
from telephony.sip.session_timer import DIALOG_GONE, REFRESH_FAILED, SESSION_EXPIRED, retry_delay
from tests.telephony.sip_peer import PCMU_OFFER, SipPeer, sip_server

pytestmark = pytest.mark.e2e
WE_REFRESH = {"Supported": "timer", "Allow": "INVITE, ACK, BYE, UPDATE"}


def run(coroutine, timeout: float = 40.0):
    return asyncio.run(asyncio.wait_for(coroutine, timeout))


@dataclass
class Seen:
    """Requests we sent to one peer: (seconds after our 200 to its INVITE, the request)."""

    requests: list[tuple[float, SipMessage]] = field(default_factory=list)

    def of(self, method: str) -> list[tuple[float, SipMessage]]:
        return [(at, request) for at, request in self.requests if request.method == method]


async def refreshed_call(
    port: int, interval: int, answers: list[tuple[int, str, dict]], horizon: float
) -> tuple[Seen, SipPeer]:
    """A call that makes us the refresher (``refresher=uas`` in its INVITE); our UPDATEs get
    ``answers`` in turn ((status, reason, headers) to answer with; later ones get a bare 200);
    records what we send until our BYE (answered 200) or ``horizon`` s after our 200."""
    seen, loop = Seen(), asyncio.get_running_loop()
    async with SipPeer(port) as peer:
        timer = {"Session-Expires": f"{interval};refresher=uas", **WE_REFRESH}
        await peer.invite(PCMU_OFFER.format(port=7000), headers=timer)
        answered_at, answered = loop.time(), {}
        while (left := answered_at + horizon - loop.time()) > 0:
            try:
                request = await asyncio.wait_for(peer.requests.get(), left)
            except TimeoutError:
                break
            cseq = request.get("CSeq")
            if cseq not in answered:  # a retransmission gets the same answer again
                seen.requests.append((loop.time() - answered_at, request))
                status, reason, headers = answers.pop(0) if answers and request.method == "UPDATE" else (200, "OK", {})
                answered[cseq] = response_to(request, status, reason, headers=tuple(headers.items()))
            peer.send_raw(answered[cseq].to_bytes())
            if request.method == "BYE":
                break
    return seen, peer


def test_our_refresh_says_refresher_uac_and_its_2xx_sets_the_interval_and_the_refresher() -> None:
    """RFC 4028 7.4: in our UPDATE we are the UAC; 7.2: the 2xx's Session-Expires (or its absence) rules."""
    stays_ours = (200, "OK", {"Session-Expires": "4;refresher=uac", "Require": "timer"})
    taken_over = (200, "OK", {"Session-Expires": "10;refresher=uas", "Require": "timer"})
    dropped = (200, "OK", {})  # no Session-Expires: no session timer any more

    async def scenario():
        async with sip_server(sip_min_session_expires=1) as (server, _):
            port = server.ports["udp"]
            results = await asyncio.gather(
                *(refreshed_call(port, 2, [answer], horizon=3.6) for answer in (stays_ours, taken_over, dropped))
            )
            probes = []
            for _, peer in results[1:]:  # the far end refreshes now, or nobody: what our 2xx says
                async with SipPeer(port) as again:
                    again.call_id, again.from_tag, again.to_tag = peer.call_id, peer.from_tag, peer.to_tag
                    again.request("UPDATE", cseq=2, headers={"Supported": "timer"})
                    probes.append(await again.response(200))
            return [seen for seen, _ in results], probes, list(server.reports)

    (ours, theirs, none), probes, reports = run(scenario())
    first_at, first = ours.requests[0]
    assert first.method == "UPDATE" and first.get("Session-Expires") == "2;refresher=uac" and 0.8 < first_at < 1.3
    (second_at, second), *_ = ours.of("UPDATE")[1:]
    assert second.get("Session-Expires") == "4;refresher=uac" and 1.8 < second_at - first_at < 2.4  # half of 4 s
    for seen in (theirs, none):  # one UPDATE at 1 s, then nothing: no refresh and no BYE of ours
        assert [request.method for _, request in seen.requests] == ["UPDATE"]
        assert seen.requests[0][1].get("Session-Expires") == "2;refresher=uac"
    assert probes[0].get("Session-Expires") == "10;refresher=uac" and probes[0].get("Require") == "timer"
    assert probes[1].get("Session-Expires") is None and probes[1].get("Require") is None
    assert reports == []  # all three calls were up until the server stopped


def test_refresh_failures_491_and_5xx_with_retry_after_are_retried_408_and_481_end_the_call_at_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Interval 15 s: our UPDATE at 7.5 s, BYE due at 15 - 15/3 = 10 s, so 2.5 s for a retry."""
    monkeypatch.setattr(session_timer.random, "randint", lambda low, high: 100)  # 491: 1.0 s
    busy = (503, "Service Unavailable", {"Retry-After": "0"})  # an overloaded SBC, every time
    outcomes = {
        "491": [(491, "Request Pending", {})],
        "503": [(503, "Service Unavailable", {"Retry-After": "1 (busy)"})],
        "500-too-late": [(500, "Server Internal Error", {"Retry-After": "5"})],
        "408": [(408, "Request Timeout", {})],
        "481": [(481, "Call/Transaction Does Not Exist", {})],
        "503-storm": [busy] * 10,
    }
    kept = (200, "OK", {"Session-Expires": "15;refresher=uac", "Require": "timer"})

    async def scenario():
        async with sip_server(sip_min_session_expires=1) as (server, _):
            port = server.ports["udp"]
            calls = (refreshed_call(port, 15, [*answers, kept], horizon=10.8) for answers in outcomes.values())
            results = await asyncio.gather(*calls)
            ended = {report.sip_call_id: report.reason for report in server.reports}
            return {name: (seen, ended.get(peer.call_id)) for name, (seen, peer) in zip(outcomes, results, strict=True)}

    results = run(scenario())
    for name, wait in (("491", (0.9, 1.4)), ("503", (0.9, 1.4))):
        seen, ended = results[name]
        (first_at, first), (retry_at, retry) = seen.requests
        assert (first.method, retry.method) == ("UPDATE", "UPDATE") and 7.3 < first_at < 7.9, name
        assert wait[0] <= retry_at - first_at < wait[1] and retry.get("Session-Expires") == "15;refresher=uac", name
        assert retry.cseq[0] == first.cseq[0] + 1 and ended is None, name  # alive past 10 s: refreshed
    for name, bye_at, reason in (("500-too-late", 10.0, SESSION_EXPIRED), ("408", 7.5, REFRESH_FAILED),
                                 ("481", 7.5, DIALOG_GONE)):
        seen, ended = results[name]
        assert [request.method for _, request in seen.requests] == ["UPDATE", "BYE"], name
        assert bye_at - 0.2 < seen.of("BYE")[0][0] < bye_at + 0.4 and ended == reason, name
    seen, ended = results["503-storm"]  # "Retry-After: 0" flooded it with UPDATEs every 20 ms
    sent = [at for at, _ in seen.of("UPDATE")]
    assert len(sent) == 3 and all(later - earlier >= 0.95 for earlier, later in itertools.pairwise(sent))
    assert seen.requests[-1][1].method == "BYE" and ended == SESSION_EXPIRED


def test_491_retry_delay_is_0_to_2_s_in_10_ms_steps_as_rfc_3261_14_1_gives_a_uac_not_owning_the_call_id() -> None:
    request = SipMessage(method="UPDATE", uri="sip:a@127.0.0.1", headers=[("CSeq", "2 UPDATE")])
    delays = {retry_delay(response_to(request, 491, "Request Pending")) for _ in range(2000)}
    assert all(d is not None and 0 <= d <= 2.0 and abs(d * 100 - round(d * 100)) < 1e-9 for d in delays)
    assert len(delays) > 150  # spread over the whole range, not one fixed wait
    assert retry_delay(response_to(request, 500, "Server Internal Error")) is None  # no Retry-After
    assert retry_delay(response_to(request, 486, "Busy Here", headers=(("Retry-After", "3"),))) is None


def test_422_to_our_refresh_is_retried_once_at_once_with_the_min_se_and_then_the_timer_runs_out(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """RFC 4028 7.4. Interval 4 s: our UPDATE at 2 s, BYE due at 4 - 4/3 = 2.67 s."""
    monkeypatch.setattr(session_timer.random, "randint", lambda low, high: 10)  # 491: 0.1 s

    def too_small(min_se: str | None) -> tuple[int, str, dict]:
        return 422, "Session Interval Too Small", {} if min_se is None else {"Min-SE": min_se}

    raised = (200, "OK", {"Session-Expires": "6;refresher=uac", "Require": "timer"})
    pending = (491, "Request Pending", {})
    outcomes = {
        "raised": [too_small("6"), raised],
        "491-after-422": [too_small("6"), pending, raised],
        "422-twice": [too_small("6"), too_small("8")],
        "no-min-se": [too_small(None)],
        "bad-min-se": [too_small("soon")],
        "huge-min-se": [too_small(str(2**31))],  # above MAX_SESSION_EXPIRES
        "not-raised": [too_small("4")],  # what we asked: the same UPDATE would get the same 422
        "after-two-491": [pending, pending, too_small("6")],  # the 422 retry would be the third
    }

    async def scenario():
        async with sip_server(sip_min_session_expires=1) as (server, _):
            port = server.ports["udp"]
            results = await asyncio.gather(*(refreshed_call(port, 4, a, horizon=5.6) for a in outcomes.values()))
            ended = {report.sip_call_id: report.reason for report in server.reports}
            return {name: (seen, ended.get(peer.call_id)) for name, (seen, peer) in zip(outcomes, results, strict=True)}

    results = run(scenario())
    for name, (seen, _) in results.items():
        first_at, first = seen.requests[0]
        assert first.method == "UPDATE" and 1.9 < first_at < 2.3, name
        assert first.get("Session-Expires") == "4;refresher=uac" and first.get("Min-SE") is None, name
    for name, updates in (("raised", 3), ("491-after-422", 4)):  # alive past 2.67 s: refreshed at 6 s
        seen, ended = results[name]
        assert [request.method for _, request in seen.requests] == ["UPDATE"] * updates and ended is None, name
        (first_at, first), (retry_at, retry), *_, (next_at, refresh) = seen.requests
        assert retry_at - first_at < 0.15 and retry.cseq[0] == first.cseq[0] + 1, name  # at once
        for request in seen.of("UPDATE")[1:]:  # the retries and the next refresh ask 6 s and say why
            assert request[1].get("Session-Expires") == "6;refresher=uac" and request[1].get("Min-SE") == "6", name
        assert 2.8 < next_at - seen.requests[-2][0] < 3.3, name  # half of 6 s: the 2xx set the interval
    for name, updates in (("422-twice", 2), ("after-two-491", 3), *((n, 1) for n in outcomes if "min-se" in n),
                          ("not-raised", 1)):
        seen, ended = results[name]
        assert [request.method for _, request in seen.requests] == ["UPDATE"] * updates + ["BYE"], name
        assert 2.5 < seen.of("BYE")[0][0] < 3.1 and ended == SESSION_EXPIRED, name
    assert results["422-twice"][0].requests[1][1].get("Min-SE") == "6"  # the 8 s of the second 422: no retry
    assert all(request.get("Min-SE") is None for _, request in results["after-two-491"][0].of("UPDATE"))


def test_raised_interval_is_the_min_se_of_a_422_only_when_usable_and_above_what_we_ask() -> None:
    request = SipMessage(method="UPDATE", uri="sip:a@127.0.0.1", headers=[("CSeq", "2 UPDATE")])
    timer = session_timer.SessionTimer(90, "uas")

    def answer(status: int, min_se: str | None) -> SipMessage:
        return response_to(request, status, "Whatever", headers=() if min_se is None else (("Min-SE", min_se),))

    assert session_timer.raised_interval(answer(422, "1800"), timer) == 1800
    assert session_timer.raised_interval(answer(422, " 0600 ;x=y"), timer) == 600  # delta-seconds *(;generic-param)
    for status, min_se in ((422, None), (422, ""), (422, "1e3"), (422, "-5"), (422, str(2**31)), (422, "9" * 5000),
                           (422, "90"), (422, "60"), (491, "1800")):
        assert session_timer.raised_interval(answer(status, min_se), timer) is None, (status, min_se)
    assert dict(timer.refresh_headers()) == {"Supported": "timer", "Session-Expires": "90;refresher=uac"}
    raised = session_timer.SessionTimer(90, "uas", min_se=1800)
    assert dict(raised.refresh_headers())["Session-Expires"] == "1800;refresher=uac"
    assert dict(raised.refresh_headers())["Min-SE"] == "1800" and raised.bye_after() == timer.bye_after()
    assert session_timer.raised_interval(answer(422, "1800"), raised) is None  # asked already
