"""``stake_to_lock``: the stake a result locks, as the market contract computes it."""

from __future__ import annotations

import pytest

from gpumarket.protocol import stake_to_lock

TOKEN = 1_000_000


@pytest.mark.parametrize(
    ("amount", "floor", "multiple", "locked"),
    [
        (40_000, TOKEN, 20, TOKEN),  # 0.8 tokens scaled: under the floor
        (50_000, TOKEN, 20, TOKEN),  # exactly the floor
        (6 * TOKEN, TOKEN, 20, 120 * TOKEN),  # the multiple
        (6 * TOKEN, 100 * TOKEN, 0, 100 * TOKEN),  # a multiple of 0: the flat floor
        (0, 0, 20, 0),
    ],
)
def test_the_floor_or_the_multiple_whichever_is_more(
    amount: int, floor: int, multiple: int, locked: int
) -> None:
    assert stake_to_lock(amount, floor, multiple) == locked


def test_a_product_over_64_bits_is_exact_not_wrapped() -> None:
    # 255 x 0x0101010101010102 = 2^64 + 254: a 64-bit product would wrap to 254
    assert stake_to_lock(0x0101010101010102, TOKEN, 255) == 2**64 + 254


def test_negative_figures_are_refused() -> None:
    with pytest.raises(ValueError, match="zero or more"):
        stake_to_lock(-1, TOKEN, 20)
