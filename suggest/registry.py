"""Per-tenant model registry on disk: ``<root>/<tenant>/<version>/`` (one model per folder).

Versions are UTC timestamps (``20250101T120000Z``), so they sort in training order (a hand-named
version, ``--out models/<tenant>/baseline``, sorts before every timestamp); a model is
referred to by its directory or as ``<tenant>/<version>``. ``<tenant>`` alone is the model the
tenant serves: the version promoted into ``<root>/<tenant>/CURRENT`` (``voice registry promote``),
else the newest, so that a newly trained model goes live only once promoted when a tenant uses
promotion. A tenant named by a caller (a live call's metadata) is resolved with
:meth:`ModelRegistry.served`, which reads names inside the registry only, never paths.

A version is reserved by creating its hidden ``.<version>.partial`` folder, so two trainings
never share a version. Training writes the model into a hidden folder of its own
(``.<version>.<random>``) and renames it when done, so a half-written model is never listed or
served; the reservation is removed then (or when the training fails). ``id@revision`` strings
are rejected: a version is a path component, never a remote revision.
"""

from __future__ import annotations

import itertools
import os
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from suggest.errors import ConfigError, ModelFormatError
from suggest.model import load_model

DEFAULT_ROOT = Path("models")
CURRENT_FILE = "CURRENT"
"""In a tenant's folder: the name of the version it serves (absent: the newest)."""
_SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}\Z")  # not "$": it matches before a final "\n"
_STAMP = re.compile(r"^\d{8}T\d{6}Z\Z")
"""A version ``new_version`` makes: ``<stamp>`` or ``<stamp>-<n>`` (n >= 2, same second)."""


@dataclass(frozen=True)
class ModelEntry:
    """One registered model."""

    tenant: str
    version: str
    path: Path
    created: str
    metrics: dict[str, object]
    problem: str = ""
    """Why this release cannot read the model (empty: it can)."""


class ModelRegistry:
    """Find, list and allocate model directories under ``root``."""

    def __init__(self, root: Path = DEFAULT_ROOT) -> None:
        """Use ``root`` (default ``./models``)."""
        self.root = root

    def new_version(self, tenant: str, now: datetime | None = None) -> Path:
        """A fresh directory for the tenant's next model, reserved for this caller alone.

        The version's hidden reservation folder (see :func:`staging_dir`) is created here with an
        atomic ``mkdir``: two trainings started in the same second get ``<stamp>`` and
        ``<stamp>-2`` instead of writing into one folder.
        """
        check_name(tenant, "tenant")
        stamp = (now or datetime.now(UTC)).strftime("%Y%m%dT%H%M%SZ")
        folder = self.root / tenant
        folder.mkdir(parents=True, exist_ok=True)
        for n in itertools.count(1):
            candidate = folder / (stamp if n == 1 else f"{stamp}-{n}")
            if candidate.exists():
                continue
            try:
                staging_dir(candidate).mkdir()
            except FileExistsError:  # another training holds this version
                continue
            if not candidate.exists():  # not published between the check and the mkdir
                return candidate
            staging_dir(candidate).rmdir()
        raise AssertionError("unreachable: itertools.count never ends")

    def versions(self, tenant: str) -> list[ModelEntry]:
        """The tenant's models, oldest first (folders without a manifest, and hidden ones being
        written, are ignored; one this release cannot read is listed with ``problem`` set)."""
        entries = []
        for path in _published(self.root / check_name(tenant, "tenant")):
            try:  # read whole, as the server would: a missing or truncated file is a problem
                manifest = load_model(path).manifest
            except ModelFormatError as error:
                entries.append(ModelEntry(tenant, path.name, path, "", {}, problem=str(error)))
                continue
            metrics = manifest.get("metrics", {})
            entries.append(
                ModelEntry(tenant, path.name, path, str(manifest.get("created", "")), metrics)
            )
        return entries

    def _newest(self, tenant: str) -> Path | None:
        published = _published(self.root / tenant)
        return published[-1] if published else None

    def promoted(self, tenant: str) -> str | None:
        """The version promoted for ``tenant`` (None: it serves its newest).

        Raises:
            ConfigError: the tenant, or the version named in its ``CURRENT`` file, is not a safe
                folder name (a ``CURRENT`` of ``../x`` must never point outside the registry).
        """
        marker = self.root / check_name(tenant, "tenant") / CURRENT_FILE
        if not marker.is_file():
            return None
        version = marker.read_text(encoding="utf-8").strip()
        return check_name(version, f"version promoted in {marker}") if version else None

    def promote(self, tenant: str, version: str) -> Path:
        """Make ``version`` the model ``tenant`` serves (atomically; new calls take it up).

        The model is loaded first, as the server will load it (schema, every file digest, its
        encoder), so that a model that cannot be served is never promoted.

        Raises:
            ModelFormatError: no such model of the tenant, or one that cannot be loaded.
        """
        from suggest.engine import SuggestionEngine

        directory = self.root / check_name(tenant, "tenant") / check_name(version, "version")
        SuggestionEngine.load(directory)
        scratch = directory.parent / f".{CURRENT_FILE}.{os.getpid()}"
        scratch.write_text(version + "\n", encoding="utf-8")
        os.replace(scratch, directory.parent / CURRENT_FILE)
        return directory

    def tenants(self) -> list[str]:
        """Tenants with at least one model."""
        if not self.root.is_dir():
            return []
        return sorted(
            p.name
            for p in self.root.iterdir()
            if p.is_dir() and _SAFE_NAME.match(p.name) and _published(p)
        )

    def resolve(self, reference: str | Path) -> Path:
        """A model directory from a path, ``tenant/version`` or ``tenant`` (see :meth:`served`).

        For references an operator gives (``--model``, ``suggest_model``): a model directory
        anywhere is accepted. A tenant named by a caller goes through :meth:`served` only.

        Raises:
            ConfigError: ``id@revision`` syntax.
            ModelFormatError: nothing matches.
        """
        text = str(reference)
        if "@" in text:
            raise ConfigError(
                f"{text!r}: revisions are not supported",
                hint="use a model directory or <tenant>/<version>",
            )
        path = Path(text)
        if (path / "manifest.json").is_file():
            return path
        parts = text.strip("/").split("/")
        if len(parts) == 2 and all(_SAFE_NAME.match(part) for part in parts):
            if (self.root / parts[0] / parts[1] / "manifest.json").is_file():
                return self.root / parts[0] / parts[1]
        a_folder = path.is_dir() and not (self.root / parts[0]).is_dir()
        if len(parts) == 1 and _SAFE_NAME.match(parts[0]) and not a_folder:
            return self.served(parts[0])
        if a_folder:  # e.g. a transcript --out folder, or a registry root given for a model
            raise ModelFormatError(
                f"{text!r} is a folder but not a model: it has no manifest.json",
                hint="pass a model directory (MODELS/<tenant>/<version>, as `voice train` writes) or <tenant>",
            )
        raise ModelFormatError(
            f"no model at {text!r} (registry {self.root})",
            hint="train one with `voice train` or pass its directory",
        )

    def served(self, tenant: str) -> Path:
        """The model ``tenant``'s calls are served: its promoted version, else its newest.

        Only ever a folder of this registry: the tenant is a name (from a call's metadata, which
        the far end controls), never read as a path.

        Raises:
            ConfigError: ``tenant`` (or its promoted version) is not a safe folder name.
            ModelFormatError: the tenant has no model, or its promoted version is gone.
        """
        promoted = self.promoted(check_name(tenant, "tenant"))
        if promoted is not None:
            if (self.root / tenant / promoted / "manifest.json").is_file():
                return self.root / tenant / promoted
            raise ModelFormatError(
                f"tenant {tenant!r} is promoted to {promoted!r}, which is not in {self.root}",
                hint=f"promote an existing version: voice registry promote {tenant}/<version>",
            )
        newest = self._newest(tenant)
        if newest is None:
            raise ModelFormatError(
                f"tenant {tenant!r} has no model in {self.root}",
                hint=f"train one with `voice train --tenant {tenant}`",
            )
        return newest


def _published(folder: Path) -> list[Path]:
    """Model folders under a tenant's folder, oldest first (no manifest read: this runs at every
    call start; hidden folders are models still being written)."""
    if not folder.is_dir():
        return []
    return sorted(
        (
            p
            for p in folder.iterdir()
            if not p.name.startswith(".") and (p / "manifest.json").is_file()
        ),
        key=lambda p: version_order(p.name),
    )


def version_order(version: str) -> tuple[bool, str, int]:
    """Sort key of a version name: ``<stamp>-10`` after ``<stamp>-9`` (a plain string sort puts
    it before), ``<stamp>`` itself first. A hand-named version (``voice train --out
    models/acme/baseline``) sorts before every timestamp, by its text: sorted by text alone,
    ``baseline`` came after ``2026...`` and stayed the newest, so no later training went live."""
    stamp, dash, suffix = version.rpartition("-")
    if dash and _STAMP.match(stamp) and suffix.isdigit():
        return True, stamp, int(suffix)
    if _STAMP.match(version):
        return True, version, 1
    return False, version, 1


def staging_dir(target: Path) -> Path:
    """The hidden folder that reserves ``target``'s version while a training runs (empty: the
    model itself is written into a hidden folder of the training's own)."""
    return target.parent / f".{target.name}.partial"


def check_name(value: str, what: str) -> str:
    """Tenant and version names become folder names: letters, digits, ``.``, ``_``, ``-`` only."""
    if not _SAFE_NAME.match(value):
        raise ConfigError(
            f"{what} {value!r} is not a safe folder name",
            hint="use letters, digits, '.', '_' or '-'",
        )
    return value
