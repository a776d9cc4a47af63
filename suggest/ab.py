"""A/B experiments: deterministic assignment of calls or agents to model versions.

Assignment hashes ``<experiment>:<unit id>`` into [0, 1) and walks the arms' cumulative weights,
so the same call (or agent) always gets the same arm, in any process, without storing anything;
the arm is still recorded with every suggestion (``SuggestResult.arm``) and in the database.
:func:`experiment_records` picks the experiment's calls out of everything the database holds
(recorded assignments first, then the arm stamped on the suggestions); the report comparing the
arms is :mod:`suggest.ab_report`.
"""

from __future__ import annotations

import functools
import hashlib
import json
import math
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal

from suggest.errors import ConfigError
from suggest.types import SuggestContext, SuggestResult

Unit = Literal["call", "agent"]


@dataclass(frozen=True)
class ABArm:
    """One arm: a name, the model it serves, and its share of units."""

    name: str
    model: str
    """Model directory (or registry reference ``tenant/version``)."""
    weight: float


@dataclass(frozen=True)
class ABSplit:
    """An experiment: ``{"experiment", "unit", "arms": [{name, model, weight}]}``."""

    experiment: str
    unit: Unit
    arms: tuple[ABArm, ...]

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ABSplit:
        """Validate a parsed configuration.

        Raises:
            ConfigError: missing fields, unknown unit, duplicate arm names, or a weight that is
                not a finite positive number (NaN, Infinity, 0 or negative) or not a number at
                all (``"1"``, ``true``).
        """
        try:
            arms = tuple(
                ABArm(str(a["name"]), str(a["model"]), _weight(a["name"], a.get("weight", 1.0)))
                for a in data["arms"]
            )
            split = cls(
                experiment=str(data["experiment"]), unit=data.get("unit", "call"), arms=arms
            )
        except (KeyError, TypeError, ValueError) as error:
            raise ConfigError(
                f"bad A/B split ({error!r})",
                hint='{"experiment": "e1", "unit": "call", '
                '"arms": [{"name": "control", "model": "models/t/v1", "weight": 0.5}, ...]}',
            ) from error
        if split.unit not in ("call", "agent"):
            raise ConfigError(f"unit {split.unit!r} is not 'call' or 'agent'")
        if len(arms) < 1 or len({a.name for a in arms}) != len(arms):
            raise ConfigError(
                "a split needs at least one arm, each with its own name",
                hint="e.g. arms control and treatment",
            )
        for arm in arms:
            # NaN compares False with everything and Infinity swallows every other share: both
            # would silently send all calls to one arm.
            if not (math.isfinite(arm.weight) and arm.weight > 0):
                raise ConfigError(
                    f"arm {arm.name!r} has weight {arm.weight!r}; weights must be finite "
                    "numbers above 0",
                    hint="e.g. weights 0.9 and 0.1",
                )
        return split

    @classmethod
    def load(cls, path: Path) -> ABSplit:
        """Read a JSON (or YAML) split file.

        Raises:
            ConfigError: what ``from_dict`` refuses, or a file nested too deeply to parse.
            ValueError: the file is not JSON (``json.JSONDecodeError``) or not UTF-8.
            yaml.YAMLError: a YAML file that does not parse.
        """
        text = path.read_text(encoding="utf-8")
        try:
            if path.suffix in (".yaml", ".yml"):
                import yaml

                data = yaml.load(text, Loader=_split_loader())  # noqa: S506 (a SafeLoader)
            else:
                data = json.loads(text)
        except RecursionError:  # the parsers recurse once per nesting level
            raise ConfigError(f"{path} is not a split: nested too deeply",
                              hint="see `voice ab assign --help` for the split's fields") from None
        return cls.from_dict(data)

    def unit_id(self, call_id: str, agent_id: str | None) -> str:
        """The id that is assigned: the call, or the agent (no agent: the call)."""
        return agent_id if self.unit == "agent" and agent_id else call_id

    def arm_named(self, name: str) -> ABArm | None:
        """The arm called ``name``; None when the split has no such arm (e.g. it was renamed)."""
        return next((a for a in self.arms if a.name == name), None)

    def model_tenants(self) -> frozenset[str] | None:
        """Tenants of the arms' models: what a suggestion's ``model_version`` must start with.
        None when an arm's tenant cannot be told (a model folder not on this machine)."""
        tenants = {model_tenant(a.model) for a in self.arms}
        return None if None in tenants else frozenset(t for t in tenants if t is not None)

    def assign(self, call_id: str, agent_id: str | None = None) -> ABArm:
        """The arm of a call (or of its agent): deterministic, proportional to the weights."""
        key = f"{self.experiment}:{self.unit_id(call_id, agent_id)}".encode()
        point = int.from_bytes(hashlib.sha256(key).digest()[:8], "big") / 2**64
        top = max(a.weight for a in self.arms)  # scaled first: two weights of 1e308 sum to inf
        shares = [a.weight / top for a in self.arms]
        total = sum(shares)
        cumulative = 0.0
        for arm, share in zip(self.arms, shares, strict=True):
            cumulative += share / total
            if point < cumulative:
                return arm
        return self.arms[-1]


@functools.cache
def _split_loader() -> type:
    """PyYAML's SafeLoader, also reading YAML 1.2 floats (``1e3``, ``1.0e3``) as numbers: YAML 1.1
    reads them as strings, which ``_weight`` would refuse (they loaded as weights before)."""
    import re

    import yaml

    class Loader(yaml.SafeLoader):
        pass

    Loader.add_implicit_resolver(
        "tag:yaml.org,2002:float",
        re.compile(r"^[-+]?(?:[0-9][0-9_]*)?\.?[0-9_]*[eE][-+]?[0-9]+$"),
        list("-+0123456789."),
    )
    return Loader


def _weight(name: object, value: object) -> float:
    """An arm's weight as a float; a string or a boolean is refused (``"1"`` and ``true`` are not
    numbers in the split's format), and so is an integer too large for a float."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ConfigError(
            f"arm {name!r} has weight {value!r}, a {type(value).__name__}; weights must be finite "
            "numbers above 0",
            hint='e.g. "weight": 0.9 and "weight": 0.1, without quotes',
        )
    try:
        return float(value)
    except OverflowError:
        return math.inf  # refused with the other non-finite weights


class ABRouter:
    """Serves each call from its arm's engine and stamps the arm on the result."""

    def __init__(self, split: ABSplit, load_engine: Callable[[str], Any]) -> None:
        """``load_engine(model)`` returns an object with ``suggest(context)``."""
        self.split = split
        self.engines = {arm.name: load_engine(arm.model) for arm in split.arms}

    def suggest(self, context: SuggestContext) -> SuggestResult:
        """The suggestion of the call's arm, with ``arm`` set."""
        arm = self.split.assign(context.call_id, context.agent_id)
        return replace(self.engines[arm.name].suggest(context), arm=arm.name)


@dataclass(frozen=True)
class CallRecord:
    """What the report needs of one call of the experiment."""

    call_id: str
    arm: str
    success: bool | None
    """Outcome from the CRM; None while unknown (counted for acceptance only)."""
    shown: int
    accepted: int
    unit: str = ""
    """The id the split assigned (the agent with unit ``agent``); empty: the call itself."""


UNNAMED_TENANT = "default"
"""The tenant of a call whose ingress names none (``CallStartedFrame.tenant``'s default)."""


def of_split_tenants(tenant: str | None, tenants: frozenset[str] | None) -> bool:
    """Whether a call of ``tenant`` may be in an experiment whose models are ``tenants``'.

    A call of another named tenant never is: it is served its own tenant's model. A call whose
    tenant is not known (None), or not named (``""`` or ``"default"``: a single-tenant deployment
    whose ingress names no tenant, every call being that tenant's) may be; so may every call when
    the split's tenants cannot be told (None).
    """
    if tenants is None or not tenant or tenant in tenants:
        return True
    return tenant == UNNAMED_TENANT


def model_tenant(reference: str) -> str | None:
    """The tenant of an arm's model: a model folder's manifest says it; a registry reference
    (``tenant`` or ``tenant/version``) starts with it. None: a folder that is not here."""
    manifest = Path(reference) / "manifest.json"
    if manifest.is_file():
        try:
            tenant = json.loads(manifest.read_text(encoding="utf-8")).get("tenant")
        except (OSError, ValueError, AttributeError):
            tenant = None  # unreadable here: unknown, like a folder of another machine
        return tenant if isinstance(tenant, str) and tenant else None
    parts = reference.split("/")
    if Path(reference).is_absolute() or reference.startswith(".") or len(parts) > 2:
        return None
    return parts[0]


@dataclass(frozen=True)
class CallFacts:
    """What the database and an outcome file say about one call, before deciding its arm."""

    call_id: str
    agent_id: str | None = None
    tenant: str | None = None
    """The call's tenant (outcome file or call row); None when unknown."""
    served_arm: str | None = None
    """The arm stamped on the call's suggestions; None: served outside any experiment."""
    served_model: str = ""
    """``<tenant>/<version>`` of the model that served its suggestions ("" when not recorded)."""
    success: bool | None = None
    shown: int = 0
    accepted: int = 0
    from_outcome_file: bool = False
    """Its outcome came from a file given for this experiment: without any other evidence it
    is assigned as the live router assigned it (by the split, with its agent id)."""


@dataclass
class ExperimentCalls:
    """The calls of one experiment, and why the other calls were left out."""

    records: list[CallRecord]
    notes: list[str]


_EXCLUDED_BECAUSE = {
    "no_arm": "calls whose suggestions carry no arm of this split (other experiments or none)",
    "other_model": "calls served by another tenant's model than the split's",
    "other_tenant": "calls of another tenant than the split's models",
    "unrecorded": "calls known only from the database's outcomes, with no recorded assignment "
    "or suggestion of this experiment (the live server records each call's arm at its start; "
    "calls served elsewhere need `voice ab assign --record`)",
    "stale_assignment": "calls recorded in an arm the split no longer has",
}


def experiment_records(
    split: ABSplit, calls: Iterable[CallFacts], assignments: Mapping[str, str]
) -> ExperimentCalls:
    """The calls that belong to ``split``'s experiment, each in its arm.

    ``assignments`` (unit id -> arm, as ``FeedbackStore.assignments`` records them) are the
    truth: with unit ``agent`` every call of an agent lands in the agent's arm. Without one, the
    arm stamped on a call's suggestions counts when it is an arm of the split and the model that
    served is one of the split's tenants; a call known only from an outcome file is assigned by
    the split, as the live router did. A call of a known tenant that is none of the split's
    models' tenants is never counted, whatever its suggestions or a recorded assignment say (the
    live router serves such a call its own tenant's model; see :func:`of_split_tenants`).
    Everything else is left out and counted in ``notes``.
    """
    records: list[CallRecord] = []
    excluded: Counter[str] = Counter()
    conflicts = hashed = 0
    tenants = split.model_tenants()
    for call in calls:
        recorded = assignments.get(split.unit_id(call.call_id, call.agent_id))
        arm, reason = _arm_of(split, call, recorded, tenants)
        if arm is None:
            excluded[reason] += 1
            continue
        if recorded is not None and call.served_arm not in (None, recorded):
            conflicts += 1
        if recorded is None and call.served_arm is None:
            hashed += 1
        records.append(
            CallRecord(
                call.call_id,
                arm,
                call.success,
                call.shown,
                call.accepted,
                split.unit_id(call.call_id, call.agent_id),
            )
        )
    notes = [f"{n} {_EXCLUDED_BECAUSE[r]}: not counted" for r, n in sorted(excluded.items())]
    if conflicts:
        notes.append(
            f"{conflicts} calls whose suggestions name another arm than the recorded "
            "assignment: counted in the recorded arm"
        )
    if hashed:
        notes.append(f"{hashed} outcome-file calls without a recorded arm: assigned by the split")
    return ExperimentCalls(sorted(records, key=lambda r: r.call_id), notes)


def _arm_of(
    split: ABSplit, call: CallFacts, recorded: str | None, tenants: frozenset[str] | None
) -> tuple[str | None, str]:
    """(arm, "") for a call of the experiment, else (None, the reason it is left out)."""
    if not of_split_tenants(call.tenant, tenants):
        return None, "other_tenant"
    if recorded is not None:
        return (recorded, "") if split.arm_named(recorded) else (None, "stale_assignment")
    if call.served_arm is not None:
        if split.arm_named(call.served_arm) is None:
            return None, "no_arm"
        served_tenant = call.served_model.split("/")[0]
        if tenants is not None and call.served_model and served_tenant not in tenants:
            return None, "other_model"
        return call.served_arm, ""
    if call.shown or not call.from_outcome_file:
        return None, "no_arm" if call.shown else "unrecorded"
    return split.assign(call.call_id, call.agent_id).name, ""
