"""An A/B split of one tenant on a multi-tenant server: only that tenant's calls are in it.

Every other tenant's call is served its own model (never one built from another company's agents'
lines) and is not counted in the experiment's report, whatever its suggestions say.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from suggest.ab import ABSplit, CallFacts, experiment_records
from suggest.ab_report import ab_report
from suggest.types import SuggestContext, Turn
from voice.config import ServerConfig
from voice.frames import CallStartedFrame
from voice.live.suggestions import SuggestionRouter

pytestmark = pytest.mark.model

V1, V2 = "20260101T000000Z", "20260102T000000Z"


def _publish(bundled: Path, root: Path, tenant: str, version: str) -> Path:
    """A copy of the bundled model registered as ``tenant/version`` (its manifest says so too, as
    ``voice train --tenant`` writes it: every suggestion records ``tenant/version``)."""
    target = root / tenant / version
    shutil.copytree(bundled, target)
    manifest = json.loads((target / "manifest.json").read_text())
    manifest.update(tenant=tenant, version=version)
    (target / "manifest.json").write_text(json.dumps(manifest))
    return target


def _split_file(tmp_path: Path) -> Path:
    path = tmp_path / "acme-split.json"
    path.write_text(json.dumps({"experiment": "acme-new-model", "unit": "call", "arms": [
        {"name": "control", "model": f"acme/{V1}", "weight": 0.5},
        {"name": "treatment", "model": f"acme/{V2}", "weight": 0.5},
    ]}))
    return path


def _context(started: CallStartedFrame) -> SuggestContext:
    return SuggestContext(call_id=started.call_id, tenant=started.tenant, k=2, turns=(
        Turn("agent", "Hi! Would you consider donating to Save the Children today?"),
        Turn("customer", "I don't know, money is really tight for me right now."),
    ))


def test_other_tenants_get_their_own_model_and_stay_out_of_the_report(
    bundled_suggestion_model: Path, tmp_path: Path
) -> None:
    root = tmp_path / "models"
    arms = {"control": _publish(bundled_suggestion_model, root, "acme", V1),
            "treatment": _publish(bundled_suggestion_model, root, "acme", V2)}
    globex = _publish(bundled_suggestion_model, root, "globex", V1)
    split = _split_file(tmp_path)
    router = SuggestionRouter.load(ServerConfig(models_root=str(root), ab_split=str(split)))
    calls: list[CallFacts] = []
    try:
        for i in range(12):
            for tenant in ("acme", "globex"):
                started = CallStartedFrame(call_id=f"{tenant}-{i}", tenant=tenant, agent_id=f"{tenant}-agent")
                model, arm = router.choose(started)
                if tenant == "globex":
                    assert (model, arm) == (str(globex), None)  # its own model, outside the experiment
                else:
                    assert arm is not None and model == str(arms[arm])
                _, processor = router.for_call(started)
                assert processor is not None and processor.arm == arm
                result = processor.service.submit(_context(started)).result(timeout=60)
                assert result.model_version.split("/")[0] == tenant  # never another company's model
                calls.append(CallFacts(started.call_id, started.agent_id, tenant, served_arm=arm,
                                       served_model=result.model_version, success=i % 2 == 0,
                                       shown=len(result.suggestions), accepted=1))
        assert router.choose(CallStartedFrame(call_id="x", tenant="initech")) == (None, None)
    finally:
        router.close()

    # A globex call stamped with an acme arm (as the old router served it) is not counted either.
    calls.append(CallFacts("globex-leaked", "globex-agent", "globex", served_arm="treatment",
                           served_model=f"acme/{V2}", success=True, shown=3, accepted=3))
    experiment = experiment_records(ABSplit.load(split), calls, {})
    assert sorted(r.call_id for r in experiment.records) == sorted(f"acme-{i}" for i in range(12))
    reports = ab_report(experiment.records, ["control", "treatment"])
    assert sum(r.calls for r in reports) == 12
    assert experiment.notes == ["13 calls of another tenant than the split's models: not counted"]


def test_a_call_that_names_no_tenant_is_in_the_split_unless_default_has_its_own_model(
    bundled_suggestion_model: Path, tmp_path: Path
) -> None:
    """Single-tenant deployment: the ingress names no tenant (the frame says ``default``), every
    call is the tenant's whose experiment runs."""
    root = tmp_path / "models"
    arms = {"control": _publish(bundled_suggestion_model, root, "acme", V1),
            "treatment": _publish(bundled_suggestion_model, root, "acme", V2)}
    router = SuggestionRouter.load(ServerConfig(models_root=str(root), ab_split=str(_split_file(tmp_path))))
    try:
        for tenant in ("default", ""):
            model, arm = router.choose(CallStartedFrame(call_id=f"call-{tenant}", tenant=tenant))
            assert arm is not None and model == str(arms[arm])
        own = _publish(bundled_suggestion_model, root, "default", V1)  # "default" is a tenant here
        assert router.choose(CallStartedFrame(call_id="c", tenant="default")) == (str(own), None)
    finally:
        router.close()
    split = ABSplit.load(_split_file(tmp_path))
    unnamed = [CallFacts("c1", tenant="default", success=True, from_outcome_file=True),
               CallFacts("c2", tenant=None, served_arm="control", served_model=f"acme/{V1}", shown=1)]
    assert [r.call_id for r in experiment_records(split, unnamed, {}).records] == ["c1", "c2"]


def test_a_recorded_assignment_does_not_bring_another_tenants_call_into_the_report() -> None:
    split = ABSplit.from_dict({"experiment": "e", "unit": "agent", "arms": [
        {"name": "control", "model": f"acme/{V1}"}, {"name": "treatment", "model": f"acme/{V2}"}]})
    calls = [CallFacts("acme-1", "agent-7", "acme", success=True, from_outcome_file=True),
             CallFacts("globex-1", "agent-7", "globex", success=False, from_outcome_file=True),
             CallFacts("globex-2", "agent-7", "globex", served_arm="control", served_model="globex/v3",
                       shown=2)]
    experiment = experiment_records(split, calls, {"agent-7": "control"})  # agent ids clash
    assert [(r.call_id, r.arm) for r in experiment.records] == [("acme-1", "control")]
    assert experiment.notes == ["2 calls of another tenant than the split's models: not counted"]
