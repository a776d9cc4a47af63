"""Reference files that are not plain UTF-8, or whose STM times are not numbers, give a
``ReferenceError`` that says what is wrong, never a raw UnicodeDecodeError or ValueError; a
byte-order mark (Notepad, Excel) is not part of the first word."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from asr.references import ReferenceError, read_stm, read_tsv, read_txt, stm_text

pytestmark = pytest.mark.unit

TEXT = "Café au lait, s'il vous plaît"


@pytest.mark.parametrize("name", ["ref.txt", "ref.stm", "transcription.tsv"])
def test_a_file_that_is_not_utf8_says_so(tmp_path: Path, name: str) -> None:
    path = tmp_path / name
    path.write_bytes(f"key\treference\nx 1 A 0.0 1.0 {TEXT}\n".encode("latin-1"))
    read = {".txt": read_txt, ".stm": read_stm, ".tsv": read_tsv}[path.suffix]
    said = rf"^{re.escape(str(path))} is not UTF-8 text \(.*\) \(re-save it as UTF-8\)$"
    with pytest.raises(ReferenceError, match=said):
        read(path)


def test_a_byte_order_mark_is_not_part_of_the_reference(tmp_path: Path) -> None:
    txt, stm, tsv = tmp_path / "a.txt", tmp_path / "a.stm", tmp_path / "transcription.tsv"
    txt.write_text(TEXT, encoding="utf-8-sig")
    stm.write_text(f"a 1 A 0.0 1.0 {TEXT}\n", encoding="utf-8-sig")
    tsv.write_text(f"key\treference\na.wav\t{TEXT}\n", encoding="utf-8-sig")
    assert read_txt(txt) == TEXT
    assert stm_text(stm) == TEXT and read_stm(stm)[0].uri == "a"
    assert read_tsv(tsv) == {"a.wav": TEXT}  # the key column is "key", not "\ufeffkey"


@pytest.mark.parametrize("times", ["zero 1.0", "0.0 nan", "inf 2.0"])
def test_an_stm_time_that_is_not_a_finite_number_is_a_reference_error(tmp_path: Path, times: str) -> None:
    stm = tmp_path / "a.stm"
    stm.write_text(f"a 1 A 0.0 1.0 fine\na 1 A {times} hello there\n", encoding="utf-8")
    bad = next(t for t in times.split() if t not in ("0.0", "1.0", "2.0"))
    with pytest.raises(ReferenceError, match=rf"'{bad}' is not a time in seconds in the STM line 'a 1 A {times} "):
        read_stm(stm)
