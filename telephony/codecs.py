"""G.711 mu-law (PCMU) and A-law (PCMA) through numpy lookup tables.

Why our own: ``audioop`` is deprecated and gone in Python 3.13, ``audioop-lts`` needs 3.13, and
the ``g711`` package builds from source and returns float32. Two 256-entry decode tables and two
65,536-entry encode tables (built once at import, about 10 ms) are bit-identical to
``audioop.ulaw2lin/alaw2lin/lin2ulaw/lin2alaw`` for every code and every int16 sample (tested),
and decoding is a single ``take``.
# tested: decoding 1 h of mu-law: numpy table 172 ms, audioop 59 ms, g711 225 ms (telephony.md).
"""

from __future__ import annotations

import numpy as np

from telephony.errors import UnsupportedMediaError

__all__ = ["decode", "encode", "ulaw_decode", "ulaw_encode", "alaw_decode", "alaw_encode"]

_SEG_ULAW_END = np.array([0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF, 0x1FFF])
_SEG_ALAW_END = np.array([0x1F, 0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF])


def _ulaw_decode_table() -> np.ndarray:
    code = ~np.arange(256, dtype=np.int32) & 0xFF
    magnitude = (((code & 0x0F) << 3) + 0x84) << ((code & 0x70) >> 4)
    return np.where(code & 0x80, 0x84 - magnitude, magnitude - 0x84).astype(np.int16)


def _alaw_decode_table() -> np.ndarray:
    code = np.arange(256, dtype=np.int32) ^ 0x55
    segment = (code & 0x70) >> 4
    mantissa = (code & 0x0F) << 4
    magnitude = np.where(
        segment == 0, mantissa + 8, (mantissa + 0x108) << np.maximum(segment - 1, 0)
    )
    return np.where(code & 0x80, magnitude, -magnitude).astype(np.int16)


def _ulaw_encode_table() -> np.ndarray:
    # The Sun reference coder (as in audioop): 14-bit magnitude, bias 33, clip at 8159.
    pcm = np.arange(-32768, 32768, dtype=np.int32) >> 2
    mask = np.where(pcm < 0, 0x7F, 0xFF)
    magnitude = np.minimum(np.abs(pcm), 8159) + 33
    segment = np.searchsorted(_SEG_ULAW_END, magnitude, side="left")
    value = (segment << 4) | ((magnitude >> (np.minimum(segment, 7) + 1)) & 0x0F)
    code = np.where(segment >= 8, 0x7F, value) ^ mask
    return _index_by_uint16(code)


def _alaw_encode_table() -> np.ndarray:
    pcm = np.arange(-32768, 32768, dtype=np.int32) >> 3
    mask = np.where(pcm >= 0, 0xD5, 0x55)
    magnitude = np.where(pcm >= 0, pcm, -pcm - 1)
    segment = np.searchsorted(_SEG_ALAW_END, magnitude, side="left")
    shift = np.where(segment < 2, 1, np.minimum(segment, 7))
    value = (segment << 4) | ((magnitude >> shift) & 0x0F)
    code = np.where(segment >= 8, 0x7F, value) ^ mask
    return _index_by_uint16(code)


def _index_by_uint16(code_for_sample: np.ndarray) -> np.ndarray:
    """Reorder a table indexed by sample+32768 so that int16.view(uint16) indexes it."""
    table = np.empty(65536, dtype=np.uint8)
    samples = np.arange(-32768, 32768, dtype=np.int32).astype(np.int16).view(np.uint16)
    table[samples] = code_for_sample.astype(np.uint8)
    return table


_ULAW_DECODE = _ulaw_decode_table()
_ALAW_DECODE = _alaw_decode_table()
_ULAW_ENCODE = _ulaw_encode_table()
_ALAW_ENCODE = _alaw_encode_table()


def ulaw_decode(data: bytes | np.ndarray) -> np.ndarray:
    """mu-law bytes -> int16 samples."""
    return _ULAW_DECODE[np.frombuffer(data, dtype=np.uint8)]


def alaw_decode(data: bytes | np.ndarray) -> np.ndarray:
    """A-law bytes -> int16 samples."""
    return _ALAW_DECODE[np.frombuffer(data, dtype=np.uint8)]


def ulaw_encode(pcm: np.ndarray) -> bytes:
    """int16 samples -> mu-law bytes."""
    return _ULAW_ENCODE[np.asarray(pcm, dtype=np.int16).view(np.uint16)].tobytes()


def alaw_encode(pcm: np.ndarray) -> bytes:
    """int16 samples -> A-law bytes."""
    return _ALAW_ENCODE[np.asarray(pcm, dtype=np.int16).view(np.uint16)].tobytes()


_DECODERS = {"PCMU": ulaw_decode, "PCMA": alaw_decode}
_ENCODERS = {"PCMU": ulaw_encode, "PCMA": alaw_encode}


def decode(codec: str, data: bytes) -> np.ndarray:
    """Decode G.711 ``data`` by codec name (``PCMU`` or ``PCMA``, case-insensitive).

    Raises:
        UnsupportedMediaError: another codec.
    """
    try:
        return _DECODERS[codec.upper()](data)
    except KeyError:
        raise UnsupportedMediaError(
            f"codec {codec!r} is not supported", hint="PCMU or PCMA"
        ) from None


def encode(codec: str, pcm: np.ndarray) -> bytes:
    """Encode int16 samples as G.711 by codec name (``PCMU`` or ``PCMA``)."""
    try:
        return _ENCODERS[codec.upper()](pcm)
    except KeyError:
        raise UnsupportedMediaError(
            f"codec {codec!r} is not supported", hint="PCMU or PCMA"
        ) from None
