"""Diarization error rate (DER) with pyannote.metrics, per file and pooled over files.

Scoring convention (the numbers in docs/results/diarization.md use it):

- ``collar=0.25`` as pyannote.metrics defines it: the collar's *total* width, so 0.125 s on
  each side of every reference boundary is not scored (NIST md-eval's ``-c 0.25`` removes
  0.25 s on each side; numbers from the two tools are not comparable);
- overlapping speech is scored (``skip_overlap=False``): in a phone call both parties talk at
  once often enough (back-channels, barge-in) that ignoring it would flatter the system;
- the scored region is the file's UEM when one is given, otherwise the whole recording
  ``[0, duration]`` (pyannote's fallback, the extent of reference and hypothesis, would not
  count false alarms before the first or after the last turn);
- pooled DER is total error time over total reference speech time across files, not the mean
  of per-file rates, so long calls weigh more than short ones.

Also finds (audio, RTTM, UEM) triples in evaluation directories: pyannote's ``sample.wav`` /
``sample.rttm``, AMI ``dev00.wav`` / ``dev00.rttm`` with ``all.uem``, SpokenWOZ ``<id>.wav`` /
``<id>.derived.rttm``. Loading audio is the caller's job (engines do not decode files).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from pyannote.core import Annotation, Segment, Timeline
from pyannote.metrics.diarization import DiarizationErrorRate

from diarize.errors import AnnotationFormatError
from diarize.rttm import read_rttm, read_uem

DEFAULT_COLLAR = 0.25
"""Total collar width in seconds (pyannote.metrics convention: half on each side)."""
AUDIO_SUFFIXES = (".wav", ".flac", ".ogg", ".opus", ".mp3")
RTTM_SUFFIXES = (".derived.rttm", ".rttm")
"""Longest first, so ``<id>.derived.rttm`` gives the stem ``<id>``."""


@dataclass(frozen=True)
class DerComponents:
    """Error times (seconds) of one file, or summed over files."""

    total: float
    """Scored reference speech (overlap counts once per speaker)."""
    missed: float
    """Reference speech the hypothesis has no (or too few) speakers for."""
    false_alarm: float
    """Hypothesis speech where the reference has none (or fewer speakers)."""
    confusion: float
    """Speech attributed to the wrong speaker after the optimal label mapping."""

    @property
    def error(self) -> float:
        """Missed + false alarm + confusion, in seconds."""
        return self.missed + self.false_alarm + self.confusion

    @property
    def der(self) -> float:
        """Diarization error rate (0 for a file without reference speech and no error)."""
        if self.total == 0.0:
            return 0.0 if self.error == 0.0 else float("inf")
        return self.error / self.total

    def __add__(self, other: DerComponents) -> DerComponents:
        return DerComponents(
            self.total + other.total,
            self.missed + other.missed,
            self.false_alarm + other.false_alarm,
            self.confusion + other.confusion,
        )


@dataclass(frozen=True)
class ReferenceFile:
    """One recording to evaluate: audio path, reference turns and the region to score."""

    uri: str
    """Recording name, as in the RTTM."""
    audio: Path
    """Audio file (decoded by the caller)."""
    reference: Annotation
    """Reference speaker turns."""
    uem: Timeline | None
    """Scored region from a UEM file; ``None``: the whole recording."""
    collection: str
    """Name of the directory the file was found in (the evaluation set)."""


def der_components(
    reference: Annotation,
    hypothesis: Annotation,
    uem: Timeline,
    *,
    collar: float = DEFAULT_COLLAR,
) -> DerComponents:
    """DER components of one file, scored inside ``uem`` with overlap included."""
    metric = DiarizationErrorRate(collar=collar, skip_overlap=False)
    detail = metric(reference, hypothesis, uem=uem, detailed=True)
    return DerComponents(
        total=float(detail["total"]),
        missed=float(detail["missed detection"]),
        false_alarm=float(detail["false alarm"]),
        confusion=float(detail["confusion"]),
    )


def pooled(components: Iterable[DerComponents]) -> DerComponents:
    """Sum of error and reference times over files (DER of the pool, not a mean of rates)."""
    total = DerComponents(0.0, 0.0, 0.0, 0.0)
    for item in components:
        total = total + item
    return total


def whole_recording(uri: str, duration: float) -> Timeline:
    """The scored region ``[0, duration]`` used when a file has no UEM."""
    return Timeline([Segment(0.0, duration)], uri=uri)


def find_reference_files(data_dir: str | Path) -> list[ReferenceFile]:
    """Every RTTM in ``data_dir`` that has an audio file of the same stem, sorted by name.

    Raises:
        FileNotFoundError: ``data_dir`` is not a directory.
        AnnotationFormatError: an RTTM has no turns for its file's URI.
    """
    directory = Path(data_dir)
    if not directory.is_dir():
        raise FileNotFoundError(f"{directory} is not a directory")
    shared_uem = read_uem(directory / "all.uem") if (directory / "all.uem").is_file() else {}
    found = []
    for rttm in sorted(directory.glob("*.rttm")):
        stem = _stem(rttm.name)
        audio = next((a for s in AUDIO_SUFFIXES if (a := directory / f"{stem}{s}").is_file()), None)
        if audio is None:
            continue
        annotations = read_rttm(rttm)
        if stem in annotations or not annotations:  # no turns: a silent reference
            uri = stem
        elif len(annotations) == 1:
            uri = next(iter(annotations))
        else:
            raise AnnotationFormatError(
                f"{rttm}: several recordings and none named {stem!r}",
                hint="name the RTTM after the recording it annotates",
            )
        reference = annotations.get(uri, Annotation(uri=uri))
        own_uem = directory / f"{stem}.uem"
        uems = read_uem(own_uem) if own_uem.is_file() else shared_uem
        found.append(ReferenceFile(uri, audio, reference, uems.get(uri), directory.name))
    return found


def _stem(name: str) -> str:
    for suffix in RTTM_SUFFIXES:
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return name
