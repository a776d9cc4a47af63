"""Which entity values refill a suggestion: a name only from the customer's turns.

The state's entity-presence block still sees every turn's entities (trained models read it), but
the values a template is refilled with leave out names the agent said: "Hi, this is Sarah" must
not make the next suggestion call the customer Sarah.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from suggest.engine import SuggestionEngine
from suggest.nlu.types import Entity
from suggest.realise import ExemplarBank
from suggest.types import SuggestContext, Turn


def _person(text: str, name: str) -> tuple[Entity, ...]:
    start = text.index(name)
    return (Entity("PERSON", name, start, start + len(name), name),)


@pytest.mark.model
def test_a_name_the_agent_said_never_refills_a_suggestion(
    bundled_suggestion_model: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine = SuggestionEngine.load(bundled_suggestion_model)
    seen: list[dict[str, str]] = []
    original = ExemplarBank.realise

    def spy(self: ExemplarBank, action: int, where: np.ndarray, agent: Any, values: Any, last: Any) -> Any:
        seen.append(dict(values))
        return original(self, action, where, agent, values, last)

    monkeypatch.setattr(ExemplarBank, "realise", spy)
    greeting = "Hi, this is Sarah from Save the Children."
    turns = [Turn("agent", greeting, entities=_person(greeting, "Sarah"))]
    engine.suggest(SuggestContext("c1", tuple(turns), k=3))
    assert seen and all("PERSON" not in values for values in seen)

    reply = "Hello Sarah, I'm John."
    turns.append(Turn("customer", reply, entities=_person(reply, "John")))
    seen.clear()
    engine.suggest(SuggestContext("c1", tuple(turns), k=3))
    assert seen and all(values.get("PERSON") == "John" for values in seen)

    again = "Nice to meet you John, I'm Sarah."
    turns.append(Turn("agent", again, entities=_person(again, "Sarah")))
    seen.clear()
    engine.suggest(SuggestContext("c1", tuple(turns), k=3))
    assert seen and all(values.get("PERSON") == "John" for values in seen)
