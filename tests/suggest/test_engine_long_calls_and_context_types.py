"""A warm call's request costs its new turns, not its length; odd context types are typed errors.

The live processor resends the same (frozen) ``Turn`` objects with each request. Every request
re-hashed the whole history (the trail's prefix fingerprint) and re-validated every turn, so turn
10,000 cost about ten times turn 5. Turns that are the very objects of the call's last request
are now compared by identity and not validated again; a history that differs is still hashed and
told apart (a rewritten turn far back rebuilds the call). An ``agent_id`` that is not a string and
entities that are not entities raised a bare TypeError / AttributeError. Uses the demo's bundled
(real, small) model with its encoder.
"""

from __future__ import annotations

from pathlib import Path

import pytest

import suggest.engine as engine_module
import suggest.trail as trail_module
from suggest.batching import MicroBatcher
from suggest.engine import InvalidContextError, SuggestionEngine
from suggest.nlu.types import Entity
from suggest.types import SuggestContext, Turn

pytestmark = pytest.mark.unit


@pytest.fixture(scope="module")
def engine(bundled_suggestion_model: Path) -> SuggestionEngine:
    return SuggestionEngine.load(bundled_suggestion_model)


def _turns(n: int, tag: str = "") -> tuple[Turn, ...]:
    return tuple(
        Turn("customer" if i % 2 == 0 else "agent", f"turn {i} about the donation{tag}") for i in range(n)
    )


def _counting(monkeypatch: pytest.MonkeyPatch, module: object, name: str) -> list[int]:
    calls: list[int] = []
    real = getattr(module, name)

    def counted(*args: object, **kwargs: object) -> object:
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(module, name, counted)
    return calls


def test_a_warm_call_neither_rehashes_nor_revalidates_the_turns_it_has_seen(
    engine: SuggestionEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    turns = _turns(60)
    engine.suggest(SuggestContext("warm", turns[:40]))
    hashed = _counting(monkeypatch, trail_module, "prefix_fingerprint")
    checked = _counting(monkeypatch, engine_module, "_encodable")
    for n in range(41, 61):
        result = engine.suggest(SuggestContext("warm", turns[:n]))
        assert result.latency.turns_encoded == 1
    assert hashed == []  # the same Turn objects: compared by identity
    assert len(checked) == 20  # one new turn per request validated, not the whole history


def test_the_micro_batcher_checks_only_a_warm_calls_new_turns_too(
    engine: SuggestionEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The live path goes through the batcher, which checks each context before queueing it."""
    turns = _turns(60)
    with MicroBatcher(engine, max_wait_ms=1.0) as batcher:
        batcher.submit(SuggestContext("warm-batched", turns[:40])).result(30)
        checked = _counting(monkeypatch, engine_module, "_encodable")
        for n in range(41, 61):
            batcher.submit(SuggestContext("warm-batched", turns[:n])).result(30)
    assert len(checked) <= 2 * 20  # the new turn, at submit and when served; not the history


def test_equal_turns_that_are_new_objects_are_still_checked(
    engine: SuggestionEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine.suggest(SuggestContext("copies", _turns(30)))
    hashed = _counting(monkeypatch, trail_module, "prefix_fingerprint")
    result = engine.suggest(SuggestContext("copies", _turns(31)))  # equal turns, other objects
    assert hashed and result.latency.turns_encoded == 1


def _same(a: object, b: object) -> None:
    assert [(s.text, round(s.score, 6)) for s in a.suggestions] == [  # type: ignore[attr-defined]
        (s.text, round(s.score, 6)) for s in b.suggestions  # type: ignore[attr-defined]
    ]


def test_a_history_rewritten_far_back_is_rebuilt_even_after_an_identity_hit(
    engine: SuggestionEngine, bundled_suggestion_model: Path
) -> None:
    turns = list(_turns(40))
    engine.suggest(SuggestContext("rewrite", tuple(turns[:39])))
    engine.suggest(SuggestContext("rewrite", tuple(turns)))  # identity fast path taken
    turns[3] = Turn("agent", "something else entirely, said much earlier")
    result = engine.suggest(SuggestContext("rewrite", tuple(turns)))
    assert result.latency.turns_encoded == 40  # rebuilt: it parts from the consumed history
    _same(result, SuggestionEngine.load(bundled_suggestion_model).suggest(SuggestContext("x", tuple(turns))))


def test_a_short_request_that_parts_from_the_call_forgets_the_turns_seen_before(
    engine: SuggestionEngine, bundled_suggestion_model: Path
) -> None:
    """A (long), then B (shorter than A's checked prefix, other words: rebuilt), then A's
    objects again: ``base`` is B's now, so A's turns must be hashed, not taken by identity."""
    a = _turns(40)
    b = _turns(12, tag=" (another stream)")
    engine.suggest(SuggestContext("parted", a[:39]))
    engine.suggest(SuggestContext("parted", a))
    engine.suggest(SuggestContext("parted", b))
    result = engine.suggest(SuggestContext("parted", a[:30]))
    fresh = SuggestionEngine.load(bundled_suggestion_model).suggest(SuggestContext("x", a[:30]))
    _same(result, fresh)
    assert result.intent == fresh.intent


@pytest.mark.parametrize("agent_id", [["x"], 7, {"id": "x"}])
def test_an_agent_id_that_is_not_a_string_is_an_invalid_context(
    engine: SuggestionEngine, agent_id: object
) -> None:
    context = SuggestContext("odd-agent", _turns(2), agent_id=agent_id)  # type: ignore[arg-type]
    with pytest.raises(InvalidContextError, match="agent_id"):
        engine.suggest(context)


@pytest.mark.parametrize(
    "entities",
    [
        ("MONEY",),
        (Entity("MONEY", 20, 0, 3, "20"),),  # type: ignore[arg-type]
        "MONEY",
        (None,),
    ],
)
def test_entities_that_are_not_entities_are_an_invalid_context(
    engine: SuggestionEngine, entities: object
) -> None:
    turns = (Turn("agent", "How much?"), Turn("customer", "I can give $20", entities=entities))  # type: ignore[arg-type]
    with pytest.raises(InvalidContextError, match="entities"):
        engine.suggest(SuggestContext("odd-entities", turns))
    ok = (Turn("customer", "I can give $20", entities=(Entity("MONEY", "$20", 11, 14, "20"),)),)
    assert engine.suggest(SuggestContext("fine-entities", ok)).suggestions
