"""With ``unit: agent``, an agent already recorded in the experiment is served its recorded arm.

After a weight change under the same experiment name, a restarted server hashed an agent into
the other arm and served it that arm, while the recorded assignment (what ``voice ab report``
counts the agent's calls in) stayed the old one: its calls counted for the arm they were not
served, with only a log line. The router now reads the experiment's recorded assignments when it
starts recording and serves an agent its recorded arm. Uses the demo's bundled (real, small)
model with its encoder and a real SQLite database.
"""

from __future__ import annotations

import json
import shutil
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from suggest.ab import ABSplit

pytestmark = pytest.mark.unit

ARMS = (("control", "acme/v1"), ("treatment", "acme/v2"))


def _split(path: Path, weights: tuple[float, float]) -> dict[str, object]:
    data = {"experiment": "acme-agents", "unit": "agent", "arms": [
        {"name": name, "model": model, "weight": w} for (name, model), w in zip(ARMS, weights, strict=True)]}
    path.write_text(json.dumps(data))
    return data


def test_a_recorded_agent_keeps_its_arm_after_the_weights_change(
    bundled_suggestion_model: Path, tmp_path: Path
) -> None:
    from voice.config import ServerConfig
    from voice.frames import CallStartedFrame
    from voice.live.suggestions import SuggestionRouter
    from voice.store import Store
    from voice.store.feedback import FeedbackStore

    root = tmp_path / "models"
    for (_, model) in ARMS:
        target = root / model
        shutil.copytree(bundled_suggestion_model, target)
        manifest = json.loads((target / "manifest.json").read_text())
        manifest.update(tenant="acme", version=target.name)
        (target / "manifest.json").write_text(json.dumps(manifest))
    split_file = tmp_path / "split.json"
    before = ABSplit.from_dict(_split(split_file, (0.5, 0.5)))
    after = ABSplit.from_dict(_split(tmp_path / "later.json", (0.1, 0.9)))
    agent = next(a for a in (f"agent-{i}" for i in range(1000))
                 if before.assign("c", a).name == "control" and after.assign("c", a).name == "treatment")

    served = []
    with Store.open(f"sqlite:///{tmp_path / 'n.db'}") as store:
        for run, weights in enumerate(((0.5, 0.5), (0.1, 0.9))):
            _split(split_file, weights)  # the same experiment name, new weights: a restart
            router = SuggestionRouter.load(ServerConfig(models_root=str(root), ab_split=str(split_file)))
            writer = ThreadPoolExecutor(1, "db-writer")
            try:
                router.record_assignments(FeedbackStore(store), writer)
                _, processor = router.for_call(CallStartedFrame(call_id=f"call-{run}", tenant="acme",
                                                                agent_id=agent))
                assert processor is not None
                served.append(processor.arm)
                new_agent = next(f"new-{i}" for i in range(1000) if after.assign("c", f"new-{i}").name == "treatment")
                if run == 1:  # an agent not recorded before gets the split's arm
                    assert router.for_call(CallStartedFrame(call_id="call-new", tenant="acme",
                                                            agent_id=new_agent))[1].arm == "treatment"
                writer.shutdown(wait=True)
            finally:
                router.close()
        recorded = FeedbackStore(store).assignments("acme-agents")
    assert served == ["control", "control"]
    assert recorded[agent] == "control"


def test_an_unreadable_store_falls_back_to_the_split(
    bundled_suggestion_model: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    import logging

    from voice.config import ServerConfig
    from voice.frames import CallStartedFrame
    from voice.live.suggestions import SuggestionRouter

    class DownStore:
        def assignments(self, _experiment: str) -> dict[str, str]:
            raise OSError("database is down")

        def assign(self, *_args: object) -> str:
            raise OSError("database is down")

    root = tmp_path / "models"
    for (_, model) in ARMS:
        shutil.copytree(bundled_suggestion_model, root / model)
    split = ABSplit.from_dict(_split(tmp_path / "split.json", (0.5, 0.5)))
    router = SuggestionRouter.load(ServerConfig(models_root=str(root), ab_split=str(tmp_path / "split.json")))
    writer = ThreadPoolExecutor(1, "db-writer")
    try:
        with caplog.at_level(logging.WARNING, logger="voice.live.suggestions"):
            router.record_assignments(DownStore(), writer)
        assert "cannot be read" in caplog.text
        _, processor = router.for_call(CallStartedFrame(call_id="c1", tenant="acme", agent_id="agent-7"))
        assert processor is not None and processor.arm == split.assign("c1", "agent-7").name
        writer.shutdown(wait=True)
    finally:
        router.close()
