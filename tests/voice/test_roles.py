"""Who is the agent: decided from what each party says in real customer-service calls."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import pytest

from voice.roles import SpokenTurn, decide_agent

pytestmark = pytest.mark.data


def _turns(path: Path) -> list[SpokenTurn]:
    words = json.loads(path.read_text())
    turns = []
    for speaker, group in itertools.groupby(words, key=lambda w: w["speaker"]):
        group = list(group)
        turns.append(SpokenTurn(speaker, group[0]["start"], " ".join(w["word"] for w in group)))
    return turns


@pytest.mark.parametrize("call", ["SNG0072", "MUL1423", "SNG0480", "SNG0696"])
def test_the_agent_of_each_spokenwoz_call_is_found_from_the_words(shared_data: Path, call: str) -> None:
    # In SpokenWOZ, speaker B (right channel) is the agent; A often speaks first ("hello"),
    # so the first-speaker rule alone would be wrong on these calls.
    turns = _turns(shared_data / f"diarization/spokenwoz_calls_8k/{call}.json")
    decision = decide_agent(turns, ["A", "B"])
    assert decision.agent == "B"
    assert decision.method == "phrases"
    assert decision.scores["B"] > decision.scores["A"]


def test_no_evidence_falls_back_to_the_first_speaker() -> None:
    turns = [SpokenTurn("S1", 0.5, "hello"), SpokenTurn("S0", 1.0, "hi there")]
    decision = decide_agent(turns, ["S0", "S1"])
    assert (decision.agent, decision.method) == ("S1", "first-speaker")
