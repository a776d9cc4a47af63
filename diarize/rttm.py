"""RTTM and UEM files: read into and write from ``pyannote.core`` annotations.

RTTM (NIST): ``SPEAKER <uri> <channel> <start> <duration> <NA> <NA> <speaker> <NA> <NA>``.
UEM: ``<uri> <channel> <start> <end>``. Files are UTF-8: AMI speaker labels such as ``MÉO069``
must survive a read and a write unchanged (a byte-order mark is dropped; another encoding is
refused with an error that says so). Our own parser rather than pyannote.database's:
its pandas-based loader is slower to import and reports malformed lines less precisely.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import TextIO

from pyannote.core import Annotation, Segment, Timeline

from diarize.errors import AnnotationFormatError

RTTM_MIN_FIELDS = 8
"""Fields up to and including the speaker name; trailing confidence fields are optional."""


def read_rttm(path: str | Path) -> dict[str, Annotation]:
    """Speaker turns of every recording (URI) in an RTTM file; non-SPEAKER lines are skipped.

    Raises:
        AnnotationFormatError: the file is not UTF-8, or a SPEAKER line is short or has non-numeric times.
    """
    annotations: dict[str, Annotation] = {}
    lines_read: dict[str, int] = {}
    for number, fields in _records(path):
        if fields[0] != "SPEAKER":
            continue
        if len(fields) < RTTM_MIN_FIELDS:
            raise AnnotationFormatError(
                f"{path}:{number}: SPEAKER line with {len(fields)} fields",
                hint="expected SPEAKER <uri> <chan> <start> <dur> <NA> <NA> <speaker> ...",
            )
        uri, start, duration, speaker = fields[1], fields[3], fields[4], fields[7]
        onset = _seconds(start, path, number)
        segment = Segment(onset, onset + _seconds(duration, path, number))
        annotation = annotations.setdefault(uri, Annotation(uri=uri))
        # One track per line: len(annotation) counts distinct segments, so a third speaker on
        # the same segment would take (and overwrite) the second one's track.
        track = lines_read.get(uri, 0)
        annotation[segment, track] = speaker
        lines_read[uri] = track + 1
    return annotations


def write_rttm(annotations: Annotation | Iterable[Annotation], out: str | Path | TextIO) -> None:
    """Write one or several annotations as RTTM (UTF-8, times in seconds to the millisecond).

    Raises:
        AnnotationFormatError: a URI or speaker label contains whitespace (RTTM cannot hold it).
    """
    if isinstance(annotations, Annotation):
        annotations = [annotations]
    lines = [line for annotation in annotations for line in _rttm_lines(annotation)]
    if isinstance(out, (str, Path)):
        Path(out).write_text("".join(lines), encoding="utf-8")
    else:
        out.writelines(lines)


def read_uem(path: str | Path) -> dict[str, Timeline]:
    """Scored regions per URI from a UEM file.

    Raises:
        AnnotationFormatError: the file is not UTF-8, or a line does not have four fields or its times are not numbers.
    """
    regions: dict[str, Timeline] = {}
    for number, fields in _records(path):
        if len(fields) != 4:
            raise AnnotationFormatError(
                f"{path}:{number}: UEM line with {len(fields)} fields",
                hint="expected <uri> <channel> <start> <end>",
            )
        uri = fields[0]
        segment = Segment(_seconds(fields[2], path, number), _seconds(fields[3], path, number))
        regions[uri] = regions.get(uri, Timeline(uri=uri)).add(segment)
    return regions


def _rttm_lines(annotation: Annotation) -> list[str]:
    uri = annotation.uri or "audio"
    lines = []
    for segment, _, label in annotation.itertracks(yield_label=True):
        for name, value in (("uri", uri), ("speaker label", str(label))):
            if not value or any(ch.isspace() for ch in value):
                raise AnnotationFormatError(
                    f"RTTM cannot hold the {name} {value!r}", hint="use labels without spaces"
                )
        lines.append(
            f"SPEAKER {uri} 1 {segment.start:.3f} {segment.duration:.3f} "
            f"<NA> <NA> {label} <NA> <NA>\n"
        )
    return lines


def _records(path: str | Path) -> Iterable[tuple[int, list[str]]]:
    """(line number, whitespace-split fields) of the non-blank, non-comment lines."""
    try:
        text = Path(path).read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as error:
        raise AnnotationFormatError(
            f"{path} is not UTF-8 text ({error.reason} at byte {error.start})", hint="re-save it as UTF-8"
        ) from error
    for number, line in enumerate(text.splitlines(), start=1):
        fields = line.split()
        if fields and not fields[0].startswith((";", "#")):
            yield number, fields


def _seconds(value: str, path: str | Path, number: int) -> float:
    try:
        return float(value)
    except ValueError:
        message = f"{path}:{number}: {value!r} is not a time in seconds"
        raise AnnotationFormatError(message) from None
