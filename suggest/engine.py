"""The serving engine: load a model once per process, suggest per finished turn.

``SuggestionEngine.load(dir)`` reads the model and its ONNX encoder; ``suggest(context)``
returns the top-k next agent lines with action, score, why, model version and a latency
breakdown. Per call, a fixed-size :class:`~suggest.state.CallState` is kept (LRU-bounded), so a
warm call embeds only its newest turn and a turn-100 suggestion costs what a turn-5 one does. A
short trail of its last consumed turns (:class:`~suggest.trail.Trail`) keeps that true when a
history comes back with its tail reordered or cut (late finals, an older request served after a
newer one); a history rewritten further back is rebuilt (its chained fingerprint differs).
``suggest_batch`` serves many calls with one embedding pass (see ``suggest.batching``).
"""

from __future__ import annotations

import hashlib
import itertools
import math
import re
import threading
import time
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from numbers import Real
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from suggest.encoder import SentenceEncoder, load_encoder
from suggest.errors import ModelFormatError, SuggestError
from suggest.model import SuggestionModel, load_model
from suggest.realise import Realisation
from suggest.state import CONTEXT_LIMIT, CallState
from suggest.trail import TRAIL as TRAIL  # re-exported: the trail's length
from suggest.trail import Step, Trail, chain_fingerprint, same_turns, turn_fingerprint

if TYPE_CHECKING:
    from suggest.nlu.entities import EntityExtractor

from suggest.types import (
    ROLES,
    IntentPrediction,
    LatencyBreakdown,
    SuggestContext,
    Suggestion,
    SuggestResult,
    Turn,
)


class InvalidContextError(SuggestError):
    """A context the engine cannot use (unknown role, non-text turn)."""


@dataclass(frozen=True)
class EngineConfig:
    """Serving options (not part of the model)."""

    k: int = 3
    """Suggestions per request unless the context asks otherwise."""
    encoder_parallel: int = 2
    """Texts of one batch embedded at once (threads, one core each): the 2-core target."""
    max_calls: int = 10_000
    """Call states kept (least recently used are dropped; a dropped call is rebuilt cold)."""
    extract_entities: bool = False
    """Run the entity extractor on turns that arrive without entities (costs ms per turn)."""


@dataclass
class _Pending:
    """One context in a batch: its state and the turns still to consume."""

    context: SuggestContext
    state: CallState
    new_turns: Sequence[Turn]
    lock: threading.Lock
    trail: Trail | None = None
    """The call's trail, advanced with the state; None for a state that is not the call's."""
    known: list[np.ndarray | None] = field(default_factory=list)
    """Per new turn, its embedding when it is a turn the trail took back (None: to encode)."""


class SuggestionEngine:
    """Suggestions from one trained model; thread-safe; share one per process."""

    def __init__(
        self, model: SuggestionModel, encoder: SentenceEncoder, config: EngineConfig
    ) -> None:
        """Prefer :meth:`load`."""
        self.model = model
        self.encoder = encoder
        self.config = config
        self._calls: OrderedDict[str, tuple[CallState, threading.Lock]] = OrderedDict()
        self._trails: dict[str, Trail] = {}
        """Per call in ``_calls``: its trail, used under the call's lock."""
        self._calls_lock = threading.Lock()
        self._extractor: EntityExtractor | None = None

    @classmethod
    def load(cls, directory: str | Path, config: EngineConfig | None = None) -> SuggestionEngine:
        """Load a model directory (``models/<tenant>/<version>``); blocking, once per process."""
        config = config or EngineConfig()
        path = Path(directory)
        model = load_model(path)
        encoder = load_encoder(path / "encoder", parallel=config.encoder_parallel)
        weights = path / "encoder" / model.encoder.weights_file
        same = encoder.spec == model.encoder and weights.is_file()
        if not same or hashlib.sha256(weights.read_bytes()).hexdigest() != model.encoder.sha256:
            raise ModelFormatError(
                f"{path / 'encoder'} is not the encoder this model was trained with",
                hint="restore the model's encoder/ folder or retrain the model",
            )
        return cls(model, encoder, config)

    @property
    def model_version(self) -> str:
        """``<tenant>/<version>`` of the loaded model."""
        return self.model.version

    def suggest(self, context: SuggestContext) -> SuggestResult:
        """Top-k suggestions for the next agent turn of ``context``'s call."""
        return self.suggest_batch([context])[0]

    def suggest_batch(
        self, contexts: Sequence[SuggestContext], queue_ms: Sequence[float] | None = None
    ) -> list[SuggestResult]:
        """Suggestions for many calls with one embedding pass over all their new turns.

        ``queue_ms`` (per context, the micro-batcher's wait) is added to each result's latency:
        ``queue_ms`` also counts the earlier passes of this batch it waited for (a call asked
        twice is served in two passes), and ``total_ms`` runs until the whole batch is delivered.

        Raises:
            InvalidContextError: a context has a turn with an unknown role or non-text, or a
                call-start fact that is not a finite number within float32's range.
        """
        began = time.perf_counter()
        for context in contexts:
            self.check_context(context)
        results: list[SuggestResult | None] = [None] * len(contexts)
        waited = [0.0] * len(contexts)
        for wave in _waves(contexts):  # a call appearing twice is served in order
            earlier = (time.perf_counter() - began) * 1e3  # the passes this wave waited for
            for index, result in zip(wave, self._serve([contexts[i] for i in wave]), strict=True):
                results[index], waited[index] = result, earlier
        delivered = (time.perf_counter() - began) * 1e3
        queued = queue_ms if queue_ms is not None else [0.0] * len(contexts)
        return [
            _delivered(r, q + w, q + delivered)
            for r, q, w in zip(results, queued, waited, strict=True)
            if r is not None
        ]

    def classify_intents(self, texts: Sequence[str]) -> list[IntentPrediction]:
        """Customer intent of each text (nearest intent centroid), without touching call state."""
        sims = self.encoder.encode(texts) @ self.model.vocabulary.intent_centroids.T
        found = []
        for row in sims:
            info = self.model.intents[int(row.argmax())]
            found.append(IntentPrediction(info.id, info.name, float(row.max())))
        return found

    @property
    def intent_threshold(self) -> float | None:
        """The cosine to its intent's centroid at which training counted a customer turn covered
        (the manifest's ``metrics.intents.threshold``); None when the model does not record it."""
        metrics = self.model.manifest.get("metrics", {})
        threshold = metrics.get("intents", {}).get("threshold") if isinstance(metrics, dict) else None
        return float(threshold) if isinstance(threshold, int | float) else None

    def reported_intents(self, texts: Sequence[str]) -> list[IntentPrediction | None]:
        """The intent to show for each customer turn: :meth:`classify_intents`, or None for a turn
        with no words (empty, punctuation, redaction masks only) or one no intent covers (its best
        cosine under :attr:`intent_threshold`). Only what is shown: the policy's state keeps the
        nearest intent of every turn."""
        found: list[IntentPrediction | None] = [None] * len(texts)
        worded = [i for i, text in enumerate(texts) if _has_words(text)]
        threshold = self.intent_threshold
        for i, prediction in zip(worded, self.classify_intents([texts[i] for i in worded]), strict=True):
            if threshold is None or prediction.confidence >= threshold:
                found[i] = prediction
        return found

    def check_context(self, context: SuggestContext) -> None:
        """:func:`validate` ``context``, its turns already checked in the call's last request
        skipped (the micro-batcher checks before queueing: a warm long call costs what a short one
        does).

        Raises:
            InvalidContextError: as :func:`validate`.
        """
        validate(context, self._validated(context.call_id))

    def _validated(self, call_id: object) -> tuple[Turn, ...]:
        """The turns of the call's last request taken up (each validated then; see
        :attr:`Trail.seen`): :func:`validate` checks only the turns after those."""
        with self._calls_lock:
            trail = self._trails.get(call_id) if isinstance(call_id, str) else None
        return trail.seen if trail is not None else ()

    def end_call(self, call_id: str) -> None:
        """Forget a call's state (call it when the call ends)."""
        with self._calls_lock:
            self._calls.pop(call_id, None)
            self._trails.pop(call_id, None)

    def _serve(self, contexts: Sequence[SuggestContext]) -> list[SuggestResult]:
        """Answer contexts of distinct calls, each call's lock held until its answer is built."""
        started = time.perf_counter()
        locked: dict[int, _Pending] = {}
        try:
            # Locks are taken in call-id order, never in batch order: two workers serving [A, B]
            # and [B, A] would otherwise each hold one lock and wait for the other's forever.
            for index in sorted(range(len(contexts)), key=lambda i: contexts[i].call_id):
                locked[index] = self._pending(contexts[index])
            return self._answer([locked[i] for i in range(len(contexts))], started)
        finally:
            for p in locked.values():
                p.lock.release()

    def _answer(self, pending: Sequence[_Pending], started: float) -> list[SuggestResult]:
        """Encode, advance and rank every (locked) call of a batch; one result per call."""
        encoded_turns = self._encode(pending)
        encoded = time.perf_counter()
        features = self._features(pending)
        stated = time.perf_counter()
        intents = np.array([p.state.last_intent for p in pending])
        probabilities = self.model.policy.probabilities(features, self.model.feedback_bias[intents])
        ranked = np.argsort(-probabilities, axis=1)
        decided = time.perf_counter()
        results = []
        for i, p in enumerate(pending):
            begin = time.perf_counter()
            suggestions = self._realise(p, ranked[i], probabilities[i])
            done = time.perf_counter()
            latency = LatencyBreakdown(  # total_ms: this pass; the batch's replaces it (_delivered)
                total_ms=(decided - started + done - begin) * 1e3,
                encode_ms=(encoded - started) * 1e3,
                state_ms=(stated - encoded) * 1e3,
                policy_ms=(decided - stated) * 1e3,
                realise_ms=(done - begin) * 1e3,
                batch_size=len(pending),
                turns_encoded=encoded_turns[i],
            )
            results.append(
                SuggestResult(
                    call_id=p.context.call_id,
                    turn_index=len(p.context.turns),
                    suggestions=tuple(suggestions),
                    intent=self._intent(p.state),
                    model_version=self.model_version,
                    tenant=p.context.tenant,
                    latency=latency,
                )
            )
        return results

    def _encode(self, pending: Sequence[_Pending]) -> list[int]:
        """Embed, in one pass, the new turns whose embeddings are not known yet (filling
        ``known``); how many turns each call had embedded."""
        counts = [sum(e is None for e in p.known) for p in pending]
        missing = [(p, j) for p in pending for j, e in enumerate(p.known) if e is None]
        if missing:
            rows = self.encoder.encode([p.new_turns[j].text for p, j in missing])
            for (p, j), row in zip(missing, rows, strict=True):
                p.known[j] = row.copy()  # its own array: the trail keeps it, not the batch's
        return counts

    def _features(self, pending: Sequence[_Pending]) -> np.ndarray:
        """Advance every call's state by its new turns; one state vector per call."""
        vocabulary = self.model.vocabulary
        features = np.zeros((len(pending), self.model.specs.n_features), np.float32)
        for i, p in enumerate(pending):
            self._advance(p)
            p.state.set_context(p.context.context)
            p.state.features(vocabulary, vocabulary.style_of(p.context.agent_id), out=features[i])
        return features

    def _pending(self, context: SuggestContext) -> _Pending:
        """The call's state (locked) and the turns it has not consumed yet."""
        with self._calls_lock:
            entry = self._calls.get(context.call_id)
            if entry is None:
                entry = (CallState(self.model.specs), threading.Lock())
                self._calls[context.call_id] = entry
                self._trails[context.call_id] = Trail(CallState(self.model.specs), [])
                while len(self._calls) > self.config.max_calls:
                    self._trails.pop(self._calls.popitem(last=False)[0], None)
            self._calls.move_to_end(context.call_id)
            trail = self._trails[context.call_id]
        state, lock = entry
        lock.acquire()
        try:  # an error here must not leave the call locked for good
            with self._calls_lock:  # the state as the lock's last holder left it (it may replace it)
                current = self._calls.get(context.call_id)
            if current is not None and current[1] is lock:
                state = current[0]
            return self._resume(context, state, lock, trail)
        except BaseException:
            lock.release()
            raise

    def _resume(
        self, context: SuggestContext, state: CallState, lock: threading.Lock, trail: Trail
    ) -> _Pending:
        """Where ``context`` takes up the call's (locked) state: the turns it has not consumed.

        The history may differ from the consumed one in its last ``TRAIL`` turns; it is replayed
        from the trail then. Only a history parting earlier rebuilds the state from scratch.
        """
        turns, consumed, held = context.turns, state.turns, state
        cached: dict[str, np.ndarray] = {}  # embeddings of consumed turns a replay takes back
        keep = trail.kept(consumed, turns)
        if keep is None:  # not an extension of what we saw: rebuild
            trail.base, trail.steps = CallState(self.model.specs), []
            keep, state = 0, CallState(self.model.specs)
        elif keep < consumed:
            steps = keep - (consumed - len(trail.steps))
            earlier = trail.state_at(steps, self.model.vocabulary)
            if keep == len(turns):  # an older request answered late: the call's state stays
                return _Pending(context, earlier, (), lock)
            cached = {step.fingerprint: step.embedding for step in trail.steps}
            del trail.steps[steps:]
            state = earlier
        if state is not held:
            with self._calls_lock:  # unless the call was ended or dropped meanwhile
                if self._calls.get(context.call_id, (None, None))[1] is lock:
                    self._calls[context.call_id] = (state, lock)
        known = [cached.get(turn_fingerprint(t)) for t in turns[keep:]]
        return _Pending(context, state, turns[keep:], lock, trail, known)

    def _advance(self, pending: _Pending) -> None:
        """Consume the new turns; the state's fingerprint chains every turn consumed."""
        entities = self._entities(pending.new_turns)
        state = pending.state
        for turn, embedding, found in zip(pending.new_turns, pending.known, entities, strict=True):
            assert embedding is not None  # _encode filled it
            state.advance(turn.role, embedding, self.model.vocabulary, found)
            own = turn_fingerprint(turn)
            state.fingerprint = chain_fingerprint(state.fingerprint, own)
            if pending.trail is not None:
                step = Step(own, state.fingerprint, turn.role, embedding, found)
                pending.trail.push(step, self.model.vocabulary)

    def _entities(self, turns: Sequence[Turn]) -> list[list[tuple[str, str]]]:
        missing = [i for i, t in enumerate(turns) if t.entities is None]
        extracted: dict[int, list[tuple[str, str]]] = {}
        if missing and self.config.extract_entities:
            if self._extractor is None:
                from suggest.nlu.entities import EntityExtractor

                self._extractor = EntityExtractor.load()
            found = self._extractor.extract_batch([turns[i].text for i in missing])
            extracted = {
                i: [(e.label, e.text) for e in f] for i, f in zip(missing, found, strict=True)
            }
        return [
            [(e.label, e.text) for e in t.entities]
            if t.entities is not None
            else extracted.get(i, [])
            for i, t in enumerate(turns)
        ]

    def _realise(
        self, pending: _Pending, ranked: np.ndarray, probabilities: np.ndarray
    ) -> list[Suggestion]:
        state, context = pending.state, pending.context
        chosen = propose(
            self.model,
            state,
            ranked,
            agent_id=context.agent_id,
            k=self.config.k if context.k is None else context.k,
        )
        intent_name = self.model.intents[state.last_intent].name if state.last_intent >= 0 else ""
        suggestions = []
        for rank, (action, realised) in enumerate(chosen):
            info = self.model.actions[action]
            suggestions.append(
                Suggestion(
                    id=suggestion_id(context.call_id, len(context.turns), self.model_version, rank),
                    text=realised.text,
                    action=info.name,
                    action_id=action,
                    score=float(probabilities[action]),
                    why=self.model.why.explain(state.last_intent, action, intent_name, info.name),
                    source=self.model.bank.exemplars[realised.exemplar].source,
                )
            )
        return suggestions

    def _intent(self, state: CallState) -> IntentPrediction | None:
        if state.last_intent < 0:
            return None
        info = self.model.intents[state.last_intent]
        return IntentPrediction(info.id, info.name, state.intent_confidence)


_MASK = re.compile(r"\[[A-Z_]+\]")


def _has_words(text: str) -> bool:
    """Whether a turn says anything to classify: a letter or digit outside redaction masks."""
    return any(c.isalnum() for c in _MASK.sub(" ", text))


def propose(
    model: SuggestionModel, state: CallState, ranked: np.ndarray, *, agent_id: str | None, k: int
) -> list[tuple[int, Realisation]]:
    """The first ``k`` actions of ``ranked`` that have a usable wording here, with that wording."""
    where = state.context_vector()
    chosen: list[tuple[int, Realisation]] = []
    for action in ranked:
        if len(chosen) == k:
            break
        realised = model.bank.realise(
            int(action), where, agent_id, state.refill_values, state.last_agent
        )
        if realised is not None:
            chosen.append((int(action), realised))
    return chosen


def validate(context: SuggestContext, checked: Sequence[Turn] = ()) -> None:
    """Reject contexts the engine cannot read, with a hint.

    ``checked``: turns validated before (the call's previous request). When ``context`` starts
    with the very same objects (``Turn`` is frozen), only the turns after them are checked: a
    warm call's request checks its new turns only (at turn 10,000: 0.1 ms, not 1.3 ms).

    Raises:
        InvalidContextError: the call id is not a string, the agent id not a string or None, a
            turn's role is not agent/customer, its text is not a string or not valid Unicode
            (a lone surrogate), its entities not a sequence of entities (label and text as
            strings), ``k`` is not a positive number, or a call-start fact is not a number the
            model's float32 features can hold.
    """
    if not isinstance(context.call_id, str):
        raise InvalidContextError(
            f"call id {context.call_id!r} is a {type(context.call_id).__name__}",
            hint="send the call id as a string",
        )
    if context.agent_id is not None and not isinstance(context.agent_id, str):
        raise InvalidContextError(
            f"call {context.call_id!r}: agent_id {context.agent_id!r} is a "
            f"{type(context.agent_id).__name__}",
            hint="send the agent id as a string, or leave it out",
        )
    _validate_facts(context)
    if context.k is not None and (
        isinstance(context.k, bool) or not isinstance(context.k, int) or context.k < 1
    ):
        raise InvalidContextError(
            f"call {context.call_id!r}: k={context.k!r} suggestions asked for",
            hint="ask for k >= 1 suggestions, or leave k out for the engine's default",
        )
    turns = context.turns
    start = len(checked) if same_turns(turns, checked, len(checked)) else 0
    for index, turn in enumerate(itertools.islice(turns, start, None), start):
        if turn.role not in ROLES or not isinstance(turn.text, str):
            raise InvalidContextError(
                f"call {context.call_id!r} turn {index}: "
                f"role {turn.role!r} / text {type(turn.text).__name__}",
                hint="turns need role 'agent' or 'customer' and text as a string",
            )
        if not _encodable(turn.text):
            raise InvalidContextError(
                f"call {context.call_id!r} turn {index}: text is not valid Unicode "
                "(it holds a lone surrogate such as '\\ud800')",
                hint="fix the transcript source: text must be encodable as UTF-8",
            )
        if turn.entities is not None and not _entities_readable(turn.entities):
            raise InvalidContextError(
                f"call {context.call_id!r} turn {index}: entities {turn.entities!r:.200} are not "
                "entities (each with a string label and text)",
                hint="send entities as suggest.nlu.Entity records, or leave them out (None)",
            )


def _entities_readable(entities: object) -> bool:
    """A tuple or list of records with a string ``label`` and ``text`` (what the state reads)."""
    return isinstance(entities, tuple | list) and all(
        isinstance(getattr(e, "label", None), str) and isinstance(getattr(e, "text", None), str)
        for e in entities
    )


def _validate_facts(context: SuggestContext) -> None:
    """Each call-start fact must be a finite number within :data:`~suggest.state.CONTEXT_LIMIT`:
    a larger one (1e39, past float32's range) turned every score into NaN."""
    facts = context.context
    if not isinstance(facts, Mapping):
        raise InvalidContextError(
            f"call {context.call_id!r}: context is a {type(facts).__name__}, not name -> number",
            hint="send call-start facts as an object of names to numbers, or leave them out",
        )
    for name, value in facts.items():
        number = _as_float(value)
        if number is None or not math.isfinite(number) or abs(number) > CONTEXT_LIMIT:
            raise InvalidContextError(
                f"call {context.call_id!r}: call-start fact {name!r}={value!r} is not a number "
                f"within +-{CONTEXT_LIMIT:.3g}",
                hint="send call-start facts as finite numbers the model can hold (float32), "
                "or leave the fact out",
            )


def _as_float(value: object) -> float | None:
    """A real number (not a bool) as a float; None otherwise, or past float's range."""
    if not isinstance(value, Real) or isinstance(value, bool):
        return None
    try:
        return float(value)
    except OverflowError:  # an int of 400 digits
        return None


def _encodable(text: str) -> bool:
    """Whether ``text`` is valid Unicode: lone surrogates (from broken JSON) break the encoder."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def suggestion_id(call_id: str, turn_index: int, model_version: str, rank: int) -> str:
    """Stable id of one suggestion (feedback refers to it)."""
    return hashlib.blake2b(
        f"{call_id}|{turn_index}|{model_version}|{rank}".encode(), digest_size=8
    ).hexdigest()


def _delivered(result: SuggestResult, queue_ms: float, total_ms: float) -> SuggestResult:
    """``result`` with the batch's timing: ``queue_ms`` the micro-batcher's wait plus the earlier
    passes of its batch it waited for (a call asked twice in one batch is served in two passes);
    ``total_ms`` from entering the micro-batcher to the whole batch's delivery."""
    return replace(result, latency=replace(result.latency, queue_ms=queue_ms, total_ms=total_ms))


def _waves(contexts: Sequence[SuggestContext]) -> list[list[int]]:
    """Index groups in which each call id appears at most once: its n-th request is in wave n."""
    waves: list[list[int]] = []
    occurrences: dict[str, int] = {}
    for index, context in enumerate(contexts):
        n = occurrences.get(context.call_id, 0)
        occurrences[context.call_id] = n + 1
        if n == len(waves):
            waves.append([])
        waves[n].append(index)
    return waves
