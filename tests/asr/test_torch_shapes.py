"""Shape buckets of the torch decoder: few sizes, every real size covered by one."""

from __future__ import annotations

import pytest

from asr.torch_shapes import ShapePlan, round_up, row_bucket, row_buckets

pytestmark = pytest.mark.unit

TINY = ShapePlan(max_rows=256, align_rows=128, max_prompt=226, max_align=227, max_new_tokens=224)


def test_rows_round_up_to_powers_of_two_within_the_cap() -> None:
    assert [row_bucket(n, 256) for n in (1, 2, 3, 5, 16, 17, 200, 256)] == [
        1, 2, 4, 8, 16, 32, 256, 256
    ]  # fmt: skip
    assert row_bucket(70, 100) == 100 and row_bucket(130, 100) == 130  # beyond the cap: as is
    assert row_buckets(256) == [1, 2, 4, 8, 16, 32, 64, 128, 256]
    assert row_buckets(100) == [1, 2, 4, 8, 16, 32, 64, 100]


def test_every_width_falls_in_a_bucket_of_the_grid() -> None:
    assert round_up(1, 32) == 32 and round_up(32, 32) == 32 and round_up(33, 32) == 64
    assert TINY.prompt_widths() == [32, 64, 96, 128, 160, 192, 224, 256]
    assert all(TINY.width(n) in TINY.prompt_widths() for n in range(1, 227))
    assert all(TINY.width(n) in TINY.align_widths() for n in range(1, 228))
    assert all(TINY.rows(n) in TINY.row_grid() for n in range(1, 257))
    assert all(TINY.align_rows_for(n) in TINY.align_grid() for n in range(1, 129))


def test_one_cache_length_holds_the_widest_prompt_and_every_new_token() -> None:
    assert TINY.cache_length == 256 + 224
    assert TINY.cache_length >= TINY.width(TINY.max_prompt) + TINY.max_new_tokens
