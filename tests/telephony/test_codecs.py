"""G.711 tables: bit-exact against the ITU/Sun reference values and, where present, audioop."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from telephony import codecs
from telephony.errors import UnsupportedMediaError

pytestmark = pytest.mark.unit

# Reference points of the G.711 decoders (ITU-T G.711 tables, as in audioop and the Sun code).
ULAW_KNOWN = {0x00: -32124, 0x0F: -16764, 0x7E: -8, 0x7F: 0, 0x80: 32124, 0xFE: 8, 0xFF: 0}
ALAW_KNOWN = {0x00: -5504, 0x55: -8, 0x2A: -32256, 0xAA: 32256, 0xD5: 8, 0x80: 5504}


def _audioop():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        return pytest.importorskip("audioop")  # gone in Python 3.13


def test_decode_known_codes() -> None:
    for code, value in ULAW_KNOWN.items():
        assert codecs.ulaw_decode(bytes([code]))[0] == value
    for code, value in ALAW_KNOWN.items():
        assert codecs.alaw_decode(bytes([code]))[0] == value


def test_encode_known_samples() -> None:
    assert (
        codecs.ulaw_encode(np.array([0, 32767, -32768, 8], dtype=np.int16)) == b"\xff\x80\x00\xfe"
    )
    assert (
        codecs.alaw_encode(np.array([0, 32767, -32768, -8], dtype=np.int16)) == b"\xd5\xaa\x2a\x55"
    )


def test_tables_match_audioop_for_every_code_and_sample() -> None:
    audioop = _audioop()
    every_code = bytes(range(256))
    assert codecs.ulaw_decode(every_code).tobytes() == audioop.ulaw2lin(every_code, 2)
    assert codecs.alaw_decode(every_code).tobytes() == audioop.alaw2lin(every_code, 2)
    every_sample = np.arange(-32768, 32768, dtype=np.int16)
    assert codecs.ulaw_encode(every_sample) == audioop.lin2ulaw(every_sample.tobytes(), 2)
    assert codecs.alaw_encode(every_sample) == audioop.lin2alaw(every_sample.tobytes(), 2)


def test_round_trip_is_idempotent_on_codes() -> None:
    every_code = bytes(range(256))
    for name in ("PCMU", "PCMA"):
        decoded = codecs.decode(name, every_code)
        again = codecs.decode(name, codecs.encode(name, decoded))
        assert np.array_equal(decoded, again)


def test_unknown_codec_is_a_typed_error() -> None:
    with pytest.raises(UnsupportedMediaError):
        codecs.decode("G729", b"\x00")
