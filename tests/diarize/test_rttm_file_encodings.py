"""An RTTM or UEM file that is not UTF-8 is an ``AnnotationFormatError`` that says so (a raw
UnicodeDecodeError before); a byte-order mark does not hide the first line."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from diarize.errors import AnnotationFormatError
from diarize.rttm import read_rttm, read_uem

pytestmark = pytest.mark.unit

LINE = "SPEAKER ES2004a 1 0.50 1.75 <NA> <NA> MÉO069 <NA> <NA>\n"


def test_a_file_that_is_not_utf8_says_so(tmp_path: Path) -> None:
    rttm, uem = tmp_path / "a.rttm", tmp_path / "a.uem"
    rttm.write_bytes(LINE.encode("latin-1"))
    uem.write_bytes("ES2004a 1 0.0 10.0 # é\n".encode("latin-1"))
    for path, read in ((rttm, read_rttm), (uem, read_uem)):
        said = rf"^{re.escape(str(path))} is not UTF-8 text \(.*\) \(re-save it as UTF-8\)$"
        with pytest.raises(AnnotationFormatError, match=said):
            read(path)


def test_a_byte_order_mark_does_not_hide_the_first_line(tmp_path: Path) -> None:
    rttm = tmp_path / "a.rttm"
    rttm.write_text(LINE, encoding="utf-8-sig")
    annotation = read_rttm(rttm)["ES2004a"]
    assert annotation.labels() == ["MÉO069"] and annotation.get_timeline().duration() == pytest.approx(1.75)
