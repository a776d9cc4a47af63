"""Which suggestion model serves a call: one model, the tenant's promoted (else newest) model in a
registry, or an A/B arm.

Each model is loaded once per process, off the event loop, and served by one micro-batcher shared
by all its calls (concurrent requests from many calls become one batched embedding pass). A model
that cannot be loaded costs its calls their suggestions, never the calls themselves.

A tenant's new model (a promotion, or a newer training) takes over the tenant's calls once it has
loaded; until then, and for good if it cannot be loaded, new calls keep the model the tenant was
served before in this process, so a model change never leaves agents without suggestions.

Each loaded model counts the calls it serves. One that no new call would get (no tenant's served
model or its fallback, no A/B arm, not the configured model) is closed and dropped once its last
call has ended (the processor's ``end_call``), so promotions do not pile up engines and batchers;
a call keeps its model until it ends, whatever was promoted meanwhile.

An A/B split serves only the calls of its models' tenants (and calls that name no tenant, see
:meth:`SuggestionRouter.in_experiment`); every other tenant keeps its own served model.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import Executor, Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from voice.config import ServerConfig
from voice.frames import CallStartedFrame
from voice.processor import FrameProcessor

log = logging.getLogger(__name__)


LOAD_RETRY_SECONDS = 60.0
"""A model that failed to load is tried again after this long (an operator may have fixed it)."""
INTENT_WAIT_SECONDS = 5.0
"""How long a customer turn's intent waits for its model to finish loading (then: none)."""


class _ModelSlot:
    """One model directory, loaded once in the background and shared by every call it serves.

    Loading (about a second) never runs on the event loop: a call that starts meanwhile gets its
    suggestions as soon as the model is ready, and a model that cannot be loaded gives its calls
    an error per suggestion (shown, logged) instead of failing them.
    """

    def __init__(self, model_dir: str, loader: ThreadPoolExecutor) -> None:
        self.model_dir = model_dir
        self.started = time.monotonic()
        self.fallback_logged = False
        self.active = 0
        """Calls given this slot that have not ended yet (changed under the router's lock)."""
        self.ready: Future[_Served] = loader.submit(self._load)
        self.ready.add_done_callback(self._report)

    def _load(self) -> _Served:
        from suggest.batching import MicroBatcher
        from suggest.engine import SuggestionEngine

        engine = SuggestionEngine.load(self.model_dir)
        return _Served(engine, MicroBatcher(engine))

    def _report(self, ready: Future[_Served]) -> None:
        if ready.exception() is not None:
            log.error("suggestion model %s cannot be loaded (%s); its calls go on without suggestions",
                      self.model_dir, ready.exception())

    def failed(self) -> bool:
        """Loading finished with an error."""
        return self.ready.done() and self.ready.exception() is not None

    def serving(self) -> bool:
        """Loaded and ready."""
        return self.ready.done() and self.ready.exception() is None

    def submit(self, context: Any) -> Future[Any]:
        """The processor's ``SuggestionService``: queued on the model's micro-batcher once loaded."""
        if self.ready.done() and not self.failed():
            return self.ready.result().batcher.submit(context)
        answer: Future[Any] = Future()

        def when_ready(ready: Future[_Served]) -> None:
            try:
                _chain(ready.result().batcher.submit(context), answer)
            except Exception as exc:  # noqa: BLE001 - the load failed: this suggestion fails, the call goes on
                answer.set_exception(exc)

        self.ready.add_done_callback(when_ready)
        return answer

    def classify(self, text: str) -> tuple[str, float] | None:
        """The customer turn's intent (on an NLU worker thread); None while the model is unusable."""
        try:
            engine = self.ready.result(timeout=INTENT_WAIT_SECONDS).engine
        except Exception:  # noqa: BLE001 - still loading or failed: the turn goes on without an intent
            return None
        prediction = engine.reported_intents([text])[0]  # none for a turn no intent covers
        return (prediction.name, prediction.confidence) if prediction is not None else None

    def end_call(self, call_id: str) -> None:
        """Forget an ended call's state in the engine, which keeps it per call id until told
        (``SuggestionEngine.end_call``). Measured with the bundled model: about 10 KB for a
        three-turn call, 27 KB from 20 turns on (the state plus a trail of 8 turns' embeddings),
        kept for up to ``EngineConfig.max_calls`` (10,000) ended calls per model."""
        if self.serving():
            self.ready.result().engine.end_call(call_id)

    def close(self) -> None:
        """Stop the micro-batcher (if the model ever loaded), after serving what it holds."""
        if self.ready.done() and not self.failed():
            self.ready.result().batcher.close()

    def idle_since_load(self) -> bool:
        """Done loading and unused: may be dropped (a failed one only once it would be retried,
        so that a broken model is not loaded again for every call)."""
        if self.active or not self.ready.done():
            return False
        return not self.failed() or time.monotonic() - self.started > LOAD_RETRY_SECONDS


def _chain(source: Future[Any], target: Future[Any]) -> None:
    def copy(done: Future[Any]) -> None:
        if done.exception() is not None:
            target.set_exception(done.exception())  # type: ignore[arg-type]
        else:
            target.set_result(done.result())

    source.add_done_callback(copy)


@dataclass
class _Served:
    engine: Any
    batcher: Any


@dataclass
class SuggestionRouter:
    """Per-call choice of model (tenant and A/B arm) over shared engines loaded in the background."""

    config: ServerConfig
    registry: Any = None
    split: Any = None
    _slots: dict[str, _ModelSlot] = field(default_factory=dict)
    _arm_models: dict[str, str] = field(default_factory=dict)
    """A/B arm -> the model directory it serves, resolved once when the router is loaded."""
    _split_tenants: frozenset[str] | None = None
    """Tenants of the arms' models, resolved when the router is loaded (see :meth:`in_experiment`)."""
    _tenant_models: dict[str, list[str]] = field(default_factory=dict)
    """tenant -> the model directories its calls asked for, oldest first (for a change of model)."""
    _configured: str | None = None
    """The configured model (``suggest_model``) new calls get, as last resolved."""
    _assignments: Any = None
    """Where live A/B assignments are recorded (``voice.store.feedback.FeedbackStore``), or None."""
    _db_executor: Executor | None = None
    """The live server's database writer thread the assignments are written on."""
    _recorded: dict[str, str] = field(default_factory=dict)
    """unit id -> the arm recorded for it in this experiment (``unit: agent`` only): what an agent
    is served, whatever the split's weights say now (see :meth:`record_assignments`)."""
    _closed: bool = False
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _loader: ThreadPoolExecutor = field(default_factory=lambda: ThreadPoolExecutor(1, "model-load"))

    @classmethod
    def load(cls, config: ServerConfig) -> SuggestionRouter:
        """Prepare the router; a single configured model (or every A/B arm) is loaded now, and a
        broken one stops the start-up with its error (a tenant's registry models load on demand).
        """
        from suggest.ab import ABSplit
        from suggest.registry import ModelRegistry

        registry = ModelRegistry(Path(config.models_root)) if config.models_root else ModelRegistry()
        split = ABSplit.load(Path(config.ab_split)) if config.ab_split else None
        router = cls(config, registry, split)
        for arm in split.arms if split else []:
            # Pinned at start: an arm naming a tenant would otherwise follow every new training or
            # promotion, changing one arm's model in the middle of the experiment.
            router._arm_models[arm.name] = str(registry.resolve(arm.model))
            log.info("A/B arm %s serves %s", arm.name, router._arm_models[arm.name])
        if split is not None:
            router._split_tenants = frozenset(router._tenant_of(m) for m in router._arm_models.values())
            log.info("A/B split %s serves the calls of %s (and calls naming no tenant)", split.experiment,
                     ", ".join(sorted(router._split_tenants)))
        if config.suggest_model:
            router._configured = str(registry.resolve(config.suggest_model))
        for model in [*router._arm_models.values(), *([router._configured] if router._configured else [])]:
            router._slot(model).ready.result()
        return router

    def record_assignments(self, assignments: Any, executor: Executor) -> None:
        """Record the A/B arm of every call :meth:`for_call` serves from now on, at call start, on
        ``executor`` (the server's database writer): ``assignments.assign(experiment, unit,
        unit_id, arm, model)``. Unrecorded, ``voice ab report`` could count a call only once its
        suggestions were shown, which conditions the comparison on an event after assignment.

        With ``unit: agent`` the experiment's recorded assignments are read here (blocking, at
        start-up): an agent already recorded is served its recorded arm, the one `voice ab report`
        counts its calls in, even when the split's weights changed under the same experiment name
        and now hash it into another arm (its calls would otherwise count for the arm they were
        not served). An unreadable store is logged; agents then get the split's arm, and one
        recorded otherwise follows its record from the first call that reports it.
        """
        self._assignments, self._db_executor = assignments, executor
        split = self.split
        if split is None or split.unit != "agent":
            return  # a call id is assigned once: no call has a record before it starts
        try:
            recorded = dict(assignments.assignments(split.experiment))
        except Exception as exc:  # noqa: BLE001 - the store is down: serve the split, log it
            log.warning("A/B assignments of %s cannot be read (%s); agents are served the split's arm, "
                        "which is not the recorded one for an agent whose arm the weights moved",
                        split.experiment, exc)
            return
        with self._lock:
            self._recorded.update(recorded)
        moved = sum(split.assign(agent, agent).name != arm for agent, arm in recorded.items())
        if moved:
            log.warning("A/B split %s: %d of %d recorded agents hash into another arm now (its weights "
                        "changed); each is served its recorded arm", split.experiment, moved, len(recorded))

    def choose(self, started: CallStartedFrame) -> tuple[str | None, str | None]:
        """(model directory, arm name) for a call, or (None, None) when its tenant has no model.

        A call of the A/B split's tenants (:meth:`in_experiment`) gets its arm's model; any other
        call its tenant's model: the one promoted with ``voice registry promote``, else its newest.
        """
        if self.split is not None and self.in_experiment(started.tenant):
            arm = self._arm_of(started)
            return self._arm_models.get(arm.name) or str(self.registry.resolve(arm.model)), arm.name
        if self.config.suggest_model:
            return str(self.registry.resolve(self.config.suggest_model)), None
        try:  # the tenant comes from the far end: a registry name only, never a path
            return str(self.registry.served(started.tenant)), None
        except Exception:  # noqa: BLE001 - a tenant without a model simply gets no suggestions
            return None, None

    def _arm_of(self, started: CallStartedFrame) -> Any:
        """The call's arm: the one recorded for its unit (an agent) when it is an arm of the split,
        else the split's assignment."""
        split = self.split
        with self._lock:
            recorded = self._recorded.get(split.unit_id(started.call_id, started.agent_id))
        arm = split.arm_named(recorded) if recorded is not None else None
        return arm if arm is not None else split.assign(started.call_id, started.agent_id)

    def in_experiment(self, tenant: str) -> bool:
        """Whether the A/B split serves a call of ``tenant``: one of its arms' models' tenants (the
        registry folder a model is in, else its manifest's tenant). Another tenant's call is never
        served a model built from another company's agents: it gets its own tenant's model.

        A call that names no tenant (``""``, or ``"default"`` as the frame has it then) is in the
        experiment: in a single-tenant deployment the ingress names no tenant and every call is
        the deployment's, whose experiment it is (left out, the experiment would see no call).
        Only where ``default`` is a tenant of the registry, with models of its own, are its
        calls served those. ``voice ab report`` counts such calls alike (``of_split_tenants``).
        """
        from suggest.ab import of_split_tenants

        tenants = self._split_tenants if self._split_tenants is not None else self.split.model_tenants()
        if tenants is None or tenant in tenants:
            return True
        return of_split_tenants(tenant, tenants) and not self._serves_own_model(tenant)

    def _serves_own_model(self, tenant: str) -> bool:
        try:
            return bool(tenant) and self.registry is not None and bool(self.registry.served(tenant))
        except Exception:  # noqa: BLE001 - no model of its own (or not a registry name)
            return False

    def _tenant_of(self, model: str) -> str:
        """The tenant whose calls a model directory serves: its registry folder, else its
        manifest's tenant (a model without one records ``default``)."""
        from suggest.ab import UNNAMED_TENANT, model_tenant

        path = Path(model).resolve()
        if path.parent.parent == Path(self.registry.root).resolve():
            return path.parent.name
        return model_tenant(model) or UNNAMED_TENANT

    def for_call(self, started: CallStartedFrame) -> tuple[Any, FrameProcessor | None]:
        """The call's customer-intent classifier and suggestion processor (None, None when no model
        serves its tenant); the model is resolved once per call, and stays loaded for the call
        until the processor's ``end_call`` (which it calls when the call ends) releases it."""
        from voice.processors.suggest import SuggestProcessor

        model, arm = self.choose(started)
        if model is None:
            return None, None
        if arm is not None:
            self._record(started, arm)
        slot = self._hold(model, arm, started.tenant)
        self._sweep()  # e.g. a tenant back on a model still loaded: the one it leaves may go
        return slot.classify, SuggestProcessor(service=slot, arm=arm, end_call=self._ender(slot))

    def _record(self, started: CallStartedFrame, arm: str) -> None:
        """Queue the call's assignment on the database writer; never waits for it, and a failure
        is logged, never the call's (its suggestions are served all the same)."""
        if self._assignments is None or self._db_executor is None:
            return
        split = self.split
        unit_id = split.unit_id(started.call_id, started.agent_id)
        chosen = split.arm_named(arm)
        model = chosen.model if chosen is not None else self._arm_models.get(arm, "")
        try:
            written = self._db_executor.submit(self._assignments.assign, split.experiment, split.unit,
                                               unit_id, arm, model)
        except RuntimeError as exc:  # the writer is shut down: the server is stopping
            log.warning("A/B assignment of %s %s to arm %s not recorded: %s", split.unit, unit_id, arm, exc)
            return

        def recorded(done: Future[Any]) -> None:
            if done.exception() is not None:
                log.error("A/B assignment of %s %s to arm %s of %s not recorded (%s); `voice ab report` "
                          "will not count the call", split.unit, unit_id, arm, split.experiment, done.exception())
            elif done.result() != arm:
                log.warning("%s %s was recorded in arm %s of %s before; the report counts it there, "
                            "this call is served arm %s", split.unit, unit_id, done.result(), split.experiment, arm)
                if split.unit == "agent":  # e.g. another server recorded it first: its next calls follow
                    with self._lock:
                        self._recorded[unit_id] = done.result()

        written.add_done_callback(recorded)

    def _hold(self, model: str, arm: str | None, tenant: str) -> _ModelSlot:
        """The call's slot, counted as in use: chosen and counted under one lock, so that it can
        never be dropped in between."""
        with self._lock:
            wanted, fresh = self._slot_locked(model)
            slot = wanted
            if arm is not None:
                self._arm_models.setdefault(arm, model)
            elif self.config.suggest_model:
                self._configured = model
            else:
                slot = self._tenant_slot(tenant, wanted)
            slot.active += 1
        if fresh:  # outside the lock: a load already done runs the callback here and now
            wanted.ready.add_done_callback(self._loaded)
        return slot

    def _ender(self, slot: _ModelSlot) -> Callable[[str], None]:
        """The processor's ``end_call``: the engine forgets the call, and the call's hold on the
        slot is released (once: the processor calls it again when its pipeline closes)."""
        ended = False

        def end_call(call_id: str) -> None:
            nonlocal ended
            slot.end_call(call_id)
            with self._lock:
                if ended:
                    return
                ended = True
                slot.active -= 1
            self._sweep()

        return end_call

    def _tenant_slot(self, tenant: str, wanted: _ModelSlot) -> _ModelSlot:
        """(Under the lock.) The tenant's wanted model once it has loaded; meanwhile, or if it
        cannot be loaded, the newest model that served the tenant before (a model change never
        leaves calls without suggestions; with none, the calls wait for the wanted model).
        """
        seen = self._tenant_models.setdefault(tenant, [])
        if wanted.model_dir in seen:
            seen.remove(wanted.model_dir)
        seen.append(wanted.model_dir)
        previous = self._fallback(seen)
        if previous is None:
            return wanted
        if wanted.failed() and not wanted.fallback_logged:
            wanted.fallback_logged = True
            log.warning("tenant %s: %s cannot be served; its calls keep %s", tenant, wanted.model_dir,
                        previous.model_dir)
        return previous

    def _fallback(self, seen: list[str]) -> _ModelSlot | None:
        """(Under the lock.) While a tenant's wanted model (the last it asked for) is not
        serving, the newest earlier one that is; None when the wanted one serves, or none does."""
        wanted = self._slots.get(seen[-1])
        if wanted is not None and wanted.serving():
            return None
        earlier = [self._slots[m] for m in reversed(seen[:-1]) if m in self._slots]
        return next((slot for slot in earlier if slot.serving()), None)

    def _slot(self, model: str) -> _ModelSlot:
        """The slot of ``model``, loading it if needed; not held for a call, it is dropped once
        loaded if no tenant, arm or configuration wants it."""
        with self._lock:
            slot, fresh = self._slot_locked(model)
        if fresh:
            slot.ready.add_done_callback(self._loaded)
        return slot

    def _slot_locked(self, model: str) -> tuple[_ModelSlot, bool]:
        """(Under the lock.) The slot of ``model``, and whether it was created (loading) now."""
        slot = self._slots.get(model)
        if slot is None or (slot.failed() and time.monotonic() - slot.started > LOAD_RETRY_SECONDS):
            slot = self._slots[model] = _ModelSlot(model, self._loader)
            return slot, True
        return slot, False

    def _loaded(self, _ready: Future[_Served]) -> None:
        """A load finished: the tenant's model it replaces may go now."""
        self._sweep()

    def _kept(self) -> set[str]:
        """(Under the lock.) Models a new call may get: the A/B arms, the configured model, and
        each tenant's wanted model with, while that one is not serving, the one its calls keep."""
        kept = {*self._arm_models.values(), *([self._configured] if self._configured else [])}
        for seen in filter(None, self._tenant_models.values()):
            kept.add(seen[-1])
            fallback = self._fallback(seen)
            if fallback is not None:
                kept.add(fallback.model_dir)
        return kept

    def _sweep(self) -> None:
        """Close and drop every loaded model no new call would get and no call still uses."""
        with self._lock:
            if self._closed:
                return
            kept = self._kept()
            idle = [slot for model, slot in self._slots.items() if model not in kept and slot.idle_since_load()]
            for slot in idle:
                del self._slots[slot.model_dir]
            for seen in self._tenant_models.values():
                seen[:] = [model for model in seen if model in self._slots]
        for slot in idle:
            log.info("suggestion model %s no longer served: unloaded", slot.model_dir)
            try:  # off the event loop: closing joins the micro-batcher's threads
                self._loader.submit(slot.close)
            except RuntimeError:  # the loader is shut down: the router is closing
                slot.close()

    def close(self) -> None:
        """Stop every micro-batcher and the loader."""
        with self._lock:
            self._closed = True
        self._loader.shutdown(wait=True)
        for slot in list(self._slots.values()):
            slot.close()
