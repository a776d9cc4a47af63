"""QA reviews: at every agent turn of a finished call, what the model would have suggested.

The table is computed once per call and model version (``voice.batch.review`` runs the
suggestion engine's batch path) and cached in the database; the adherence summary and the CSV
and JSON exports are derived from it. All model work runs on one worker thread, never on the
event loop, and one call at a time (the same call asked twice waits for the first answer).
"""

from __future__ import annotations

import csv
import io
import json
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from voice.errors import VoiceError
from voice.store.qa import CallReview, QaStore

ADHERENCE_THRESHOLD = 0.6
"""Cosine at or above which an agent turn counts as following one of the suggestions."""


class ReviewUnavailableError(VoiceError):
    """No suggestion model is configured (or it cannot be loaded) for this call's tenant."""


class CallNotReviewableError(VoiceError):
    """The call has no stored transcript yet (still running, or failed)."""


@dataclass(frozen=True)
class ModelChoice:
    """Which model reviews a tenant's calls."""

    path: Path
    version: str


class ReviewService:
    """Computes, caches and exports suggested-vs-actual tables."""

    def __init__(self, config: Any, qa: QaStore, store: Any, *, k: int = 3) -> None:
        self.config = config
        self.qa = qa
        self.store = store
        self.k = k
        self._executor = ThreadPoolExecutor(1, "qa-review")
        self._suggesters: dict[Path, Any] = {}
        self._inflight: dict[str, Future[CallReview]] = {}
        self._lock = threading.Lock()
        self.loader: Callable[[Path], Any] = _load_reviewer
        """Loads a model directory into an object with ``review(transcript, k=, agent_id=, tenant=)``."""

    def model_for(self, tenant: str | None) -> ModelChoice:
        """The model for a tenant, chosen as live calls choose it (voice/live/suggestions.py): the
        server's ``--suggest-model``, else the version the tenant serves in the registry under
        ``--models-root`` (the one promoted with ``voice registry promote``, else the newest).

        The tenant comes from the call (the far end names it), so it is resolved as a registry
        name only (:meth:`suggest.registry.ModelRegistry.served`), never joined as a path: a
        tenant such as ``..`` gets no model, not a folder outside the registry.

        Raises:
            ReviewUnavailableError: none configured or found.
        """
        from suggest.errors import SuggestError
        from suggest.registry import ModelRegistry

        root = Path(self.config.models_root) if self.config.models_root else None
        if self.config.suggest_model:
            try:  # a directory, <tenant>/<version> or <tenant>, as `voice serve` resolves it
                path = (ModelRegistry(root) if root else ModelRegistry()).resolve(self.config.suggest_model)
            except SuggestError:  # reported when it is loaded
                path = Path(self.config.suggest_model)
            return ModelChoice(path, _model_version(path))
        if root is None:
            raise ReviewUnavailableError("no suggestion model for this call",
                                         hint="start the server with --suggest-model DIR or --models-root DIR")
        name = tenant or "default"
        try:
            path = ModelRegistry(root).served(name)
        except (SuggestError, OSError) as exc:  # not a registry name, no model, a promoted version gone
            raise ReviewUnavailableError(f"no suggestion model for this call's tenant {name!r}",
                                         hint="`voice registry list` shows the model each tenant serves") from exc
        return ModelChoice(path, _model_version(path))

    def cached(self, call_id: str, tenant: str | None) -> CallReview | None:
        """The stored review under the current model, if computed before (blocking, fast)."""
        try:
            version = self.model_for(tenant).version
        except ReviewUnavailableError:
            return self.qa.review(call_id)
        return self.qa.review(call_id, version)

    def submit(self, call_id: str, tenant: str | None) -> Future[CallReview]:
        """Compute (or fetch) the review on the worker thread; concurrent asks share one future."""
        with self._lock:
            future = self._inflight.get(call_id)
            if future is not None:
                return future
            future = self._executor.submit(self.compute, call_id, tenant)
            self._inflight[call_id] = future
        # Outside the lock: a future that is already done runs the callback right here, and the
        # callback takes the lock (a plain Lock: the event loop deadlocked on itself).
        future.add_done_callback(lambda done: self._forget(call_id, done))
        return future

    def compute(self, call_id: str, tenant: str | None) -> CallReview:
        """Run the model over the call's stored transcript and store the table (blocking).

        Raises:
            ReviewUnavailableError: no model.
            CallNotReviewableError: no stored transcript.
        """
        from voice.store.store import CallNotFoundError

        choice = self.model_for(tenant)
        existing = self.qa.review(call_id, choice.version)
        if existing is not None and existing.k == self.k:
            return existing
        try:
            transcript = self.store.get_transcript(call_id)
        except CallNotFoundError as exc:
            raise CallNotReviewableError(f"call {call_id!r} has no stored transcript yet",
                                         hint="QA replay works on finished calls") from exc
        suggester = self._suggester(choice)
        call = self.qa.call(call_id)
        rows = suggester.review(transcript, k=self.k, agent_id=call.agent_id, tenant=call.tenant or "default")
        review = CallReview(call_id, choice.version, self.k, rows, adherence_summary(rows),
                            datetime.now(UTC))
        self.qa.save_review(review)
        return review

    def close(self) -> None:
        """Finish the current review and stop the worker."""
        self._executor.shutdown(wait=True, cancel_futures=True)

    def _suggester(self, choice: ModelChoice) -> Any:
        suggester = self._suggesters.get(choice.path)
        if suggester is None:
            try:
                suggester = self.loader(choice.path)
            except VoiceError as exc:
                raise ReviewUnavailableError(f"cannot load the suggestion model {choice.path}: {exc}",
                                             hint="check the model directory (voice evaluate --model DIR)") from exc
            self._suggesters[choice.path] = suggester
        return suggester

    def _forget(self, call_id: str, future: Future[CallReview]) -> None:
        with self._lock:
            if self._inflight.get(call_id) is future:  # a newer ask for the call keeps its own entry
                del self._inflight[call_id]


def _model_version(path: Path) -> str:
    """``<tenant>/<version>`` from the model's manifest (what live suggestions record), else the folder name."""
    try:
        manifest = json.loads((path / "manifest.json").read_text(encoding="utf-8"))
        return f"{manifest.get('tenant', 'default')}/{manifest['version']}"
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return path.name


def _load_reviewer(path: Path) -> Any:
    from voice.batch.review import load_reviewer  # engine imports stay in voice.batch

    return load_reviewer(path)


def adherence_summary(rows: list[dict[str, Any]], threshold: float = ADHERENCE_THRESHOLD) -> dict[str, Any]:
    """Per-call adherence: how closely the agent's turns matched what the model suggested."""
    scored = [r for r in rows if r.get("suggestions")]
    best = [float(r.get("best_similarity") or 0.0) for r in scored]
    top1 = [float(r["suggestions"][0].get("similarity") or 0.0) for r in scored]
    followed = sum(b >= threshold for b in best)
    actions: dict[str, int] = {}
    for r in scored:
        if r.get("best_similarity", 0.0) >= threshold:
            action = r["suggestions"][r.get("best_rank", 0)].get("action") or "?"
            actions[action] = actions.get(action, 0) + 1
    return {
        "agent_turns": len(rows), "reviewed_turns": len(scored), "threshold": threshold,
        "followed_turns": followed,
        "adherence": round(followed / len(scored), 4) if scored else None,
        "mean_best_similarity": round(sum(best) / len(best), 4) if best else None,
        "mean_top1_similarity": round(sum(top1) / len(top1), 4) if top1 else None,
        "followed_actions": dict(sorted(actions.items(), key=lambda kv: -kv[1])),
    }


def review_json(review: CallReview) -> dict[str, Any]:
    """The export (and API) form of a review."""
    return {"call_id": review.call_id, "model_version": review.model_version, "k": review.k,
            "created_at": review.created_at.isoformat(timespec="seconds"), "summary": review.summary,
            "rows": review.rows}


def review_csv(review: CallReview) -> str:
    """One line per agent turn: the actual words, then each suggestion with its similarity."""
    out = io.StringIO()
    writer = csv.writer(out)
    header = ["call_id", "turn", "start", "end", "actual", "best_similarity"]
    for rank in range(1, review.k + 1):
        header += [f"suggestion_{rank}", f"action_{rank}", f"score_{rank}", f"similarity_{rank}"]
    writer.writerow(header)
    for row in review.rows:
        line = [_cell(review.call_id), row.get("turn"), row.get("start"), row.get("end"), _cell(row.get("actual")),
                row.get("best_similarity")]
        suggestions = list(row.get("suggestions") or [])[: review.k]
        suggestions += [{}] * (review.k - len(suggestions))
        for s in suggestions:
            line += [_cell(s.get("text")), _cell(s.get("action")), s.get("score"), s.get("similarity")]
        writer.writerow(line)
    return out.getvalue()


def _cell(value: Any) -> Any:
    """Defuse spreadsheet formulas: a cell starting with = + - @ would run in Excel."""
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value
    return value
