"""QA replay picks the tenant's model as live calls do: through the registry under
``--models-root``, by tenant *name* (the far end names the tenant), and the version the tenant
serves (promoted, else newest). Before, the tenant was joined onto the root as a path: a call of
tenant ``..`` was reviewed with whatever folder sat next to the registry, and a promotion was
ignored (the newest folder always won)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from tests.server.harness import Env, fake_reviewer_loader, make_services, new_app, scripted
from voice.server.console import console_for
from voice.server.review import ReviewService, ReviewUnavailableError
from voice.store.agents import AgentStore

pytestmark = pytest.mark.unit


def _model(folder: Path, tenant: str, version: str) -> Path:
    """A folder the registry lists as a model (it only looks for the manifest)."""
    folder.mkdir(parents=True)
    (folder / "manifest.json").write_text(json.dumps({"tenant": tenant, "version": version}), encoding="utf-8")
    return folder


@pytest.fixture
def layout(tmp_path: Path) -> Path:
    """``base/models`` with two acme versions; models beside the registry that no tenant owns."""
    base = tmp_path / "base"
    _model(base / "models" / "acme" / "20250101T000000Z", "acme", "20250101T000000Z")
    _model(base / "models" / "acme" / "20250201T000000Z", "acme", "20250201T000000Z")
    _model(base / "zz-outside", "outside", "stolen")  # sorted after "models": the old code's pick
    _model(base / "outside-tenant" / "v1", "outside", "v1")
    _model(base / "models" / "zz-outside", "outside", "no-version")  # the old pick for tenant "."
    return base


def _service(base: Path) -> ReviewService:
    config = make_services(base / "data", models_root=str(base / "models")).config
    return ReviewService(config, qa=None, store=None)  # type: ignore[arg-type]


@pytest.mark.parametrize("tenant", ["..", "../outside-tenant", "acme/..", "{base}/outside-tenant", "."])
def test_a_tenant_that_is_not_a_registry_name_gets_no_model(layout: Path, tenant: str) -> None:
    service = _service(layout)
    try:
        with pytest.raises(ReviewUnavailableError, match="no suggestion model"):
            service.model_for(tenant.format(base=layout))
    finally:
        service.close()


def test_the_tenant_is_reviewed_with_the_version_it_serves(layout: Path) -> None:
    service = _service(layout)
    try:
        newest = service.model_for("acme")
        assert newest.path == layout / "models" / "acme" / "20250201T000000Z"
        assert newest.version == "acme/20250201T000000Z"
        (layout / "models" / "acme" / "CURRENT").write_text("20250101T000000Z\n", encoding="utf-8")
        promoted = service.model_for("acme")  # `voice registry promote acme/20250101T000000Z`
        assert promoted.path == layout / "models" / "acme" / "20250101T000000Z"
        assert promoted.version == "acme/20250101T000000Z"
        (layout / "models" / "acme" / "CURRENT").write_text("../../zz-outside\n", encoding="utf-8")
        with pytest.raises(ReviewUnavailableError):  # a CURRENT pointing out of the registry
            service.model_for("acme")
        with pytest.raises(ReviewUnavailableError):  # a tenant without models
            service.model_for("globex")
    finally:
        service.close()


@pytest.fixture
def registry_env(layout: Path) -> Iterator[Env]:
    """The app serving reviews from ``layout/models``; sue supervises every tenant."""
    services = make_services(layout / "data", models_root=str(layout / "models"))
    tokens = {"sue": AgentStore(services.store).add("sue", role="supervisor")[1]}
    app = new_app(services)
    with TestClient(app) as client:
        loaded: list[Path] = []

        def loader(path: Path) -> object:
            loaded.append(path)
            return fake_reviewer_loader(path)

        console_for(app).reviews.loader = loader
        env = Env(client, services, tokens)
        env.loaded = loaded  # type: ignore[attr-defined]
        yield env


def test_a_call_of_tenant_dot_dot_is_not_reviewed_with_a_model_outside_the_registry(registry_env: Env) -> None:
    env = registry_env
    scripted(env, "CA-dots", "alice", end=True, tenant="..")
    scripted(env, "CA-acme", "alice", end=True, tenant="acme")
    dots = env.client.post("/api/qa/calls/CA-dots/review", headers=env.headers("sue"))
    acme = env.client.post("/api/qa/calls/CA-acme/review", headers=env.headers("sue"))
    assert dots.status_code == 409 and "no suggestion model" in dots.json()["detail"]
    assert acme.status_code == 200 and acme.json()["model_version"] == "acme/20250201T000000Z"
    root = Path(env.services.config.models_root)
    assert env.loaded == [root / "acme" / "20250201T000000Z"]  # type: ignore[attr-defined]
