"""Sizes and dstack-style ranges."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from gpumarket.protocol.units import SizeRange, format_size_mb, parse_size_mb


@pytest.mark.parametrize(
    ("text", "mb"),
    [
        ("24GB", 24576),
        ("512MB", 512),
        ("1.5TB", 1572864),
        ("16", 16384),
        ("8GiB", 8192),
        ("80G", 81920),
        (" 2 GB ", 2048),
    ],
)
def test_parse_size(text: str, mb: int) -> None:
    assert parse_size_mb(text) == mb


@pytest.mark.parametrize("text", ["", "GB", "24XB", "-1GB", "twelve"])
def test_parse_size_rejects(text: str) -> None:
    with pytest.raises(ValueError, match="not a size"):
        parse_size_mb(text)


def test_ranges() -> None:
    at_least = SizeRange.model_validate("24GB..")
    assert at_least.max_mb is None and at_least.contains(24564)  # an RTX 4090's NVML figure
    assert not at_least.contains(16 * 1024)
    between = SizeRange.model_validate("16GB..40GB")
    assert between.contains(24 * 1024) and not between.contains(80 * 1024)
    at_most = SizeRange.model_validate("..40GB")
    assert at_most.min_mb is None and at_most.contains(1)
    assert str(SizeRange(min_mb=1024, max_mb=2048)) == "1GB..2GB"
    assert format_size_mb(1536) == "1536MB"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("80GB..16GB", "lower end"),
        ("..", "at least one end"),
        ("1GB..2GB..3GB", "more than one"),
        ("fastGB..", "not a size"),
    ],
)
def test_bad_ranges_say_why(text: str, message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        SizeRange.model_validate(text)
