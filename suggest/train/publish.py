"""Writing a trained model folder so that it appears whole: each training saves into a hidden
folder of its own next to ``--out`` and renames it into place, never over a model another
training published meanwhile."""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
from collections.abc import Iterator
from pathlib import Path

from suggest.errors import TrainingError
from suggest.model import SuggestionModel, save_model
from suggest.registry import staging_dir


def save_out_of_sight(
    model: SuggestionModel, out_dir: Path, encoder_dir: Path, *, in_place: bool
) -> Path:
    """Save ``model`` where it is built; return that folder (``out_dir`` itself when
    ``in_place``: the --out folder existed when the training started, and is rewritten).

    A new model is written out of sight and appears whole (:func:`publish`): a server resolving
    the tenant's newest model never loads it half-written. Each training writes into a hidden
    folder of its own, so two trainings given the same new ``--out`` never write into one folder
    and never overwrite each other: the second to finish is refused at :func:`publish`, even
    when the first published before the second saved.
    """
    if in_place:
        save_model(model, out_dir, encoder_dir)
        return out_dir
    work = _own_staging_dir(out_dir)
    with discarded_on_failure(work):
        save_model(model, work, encoder_dir)
    return work


def _own_staging_dir(out_dir: Path) -> Path:
    """A new hidden folder ``.<name>.<random>`` next to ``out_dir``, created for this run alone.

    Like ``tempfile.mkdtemp`` (an atomic ``mkdir`` of a random name), but with the default
    permissions: the folder becomes the published model, which a server of another user reads.
    Never ``.<name>.partial``, the registry's reservation of the version (``staging_dir``).
    """
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    while True:
        candidate = out_dir.parent / f".{out_dir.name}.{secrets.token_hex(6)}"
        try:
            candidate.mkdir()
        except FileExistsError:  # 48 random bits: practically never
            continue
        return candidate


@contextlib.contextmanager
def discarded_on_failure(work: Path | None) -> Iterator[None]:
    """Remove the staging folder ``work`` (None: nothing to remove) if the block fails."""
    try:
        yield
    except BaseException:
        if work is not None:
            shutil.rmtree(work, ignore_errors=True)
        raise


def publish(work: Path, out_dir: Path) -> None:
    """Rename the finished model into place; never over a model another training published.

    Raises:
        TrainingError: ``out_dir`` appeared meanwhile (two trainings given the same ``--out``).
    """
    refused = TrainingError(
        f"{out_dir} was written by another training while this one ran; "
        f"this model is left in {work}",
        hint="give each training its own --out (or none: versions are then unique)",
    )
    try:
        out_dir.mkdir()  # atomic: fails if another run published here first
    except FileExistsError as error:
        raise refused from error
    try:
        os.replace(work, out_dir)  # onto the empty folder just made
    except OSError as error:  # another run wrote into it between the mkdir and the rename
        raise refused from error
    with contextlib.suppress(OSError):  # the version exists now: its registry reservation goes
        staging_dir(out_dir).rmdir()
