"""Listings: ids are never cut, piped tables are never cut, cells are never markup."""

from __future__ import annotations

import io

import pytest
from rich.console import Console

from gpumarket.cli import output

JOB = "job_2631892eaf331ceb"
PROVIDER = "prv_cfe7bc7eaeb98c04"
IMAGE = "registry.example.com/team/[nightly]/trainer:2026-11-25-cuda12"
ROW = (JOB, "QUEUED", IMAGE, PROVIDER, "3.600000", "0.001635", "2026-11-25 10:42:43")
HEADERS = ("id", "state", "image", "provider", "price/h", "cost", "created")


def _listing(monkeypatch: pytest.MonkeyPatch, terminal: bool, width: int) -> str:
    out = io.StringIO()
    monkeypatch.setattr(
        output,
        "console",
        Console(file=out, force_terminal=terminal, width=width, soft_wrap=True, color_system=None),
    )
    output.print_listing(HEADERS, [ROW], keys=("id", "provider"))
    return out.getvalue()


def test_a_narrow_terminal_shortens_other_columns_never_the_ids(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    text = _listing(monkeypatch, terminal=True, width=80)
    assert JOB in text
    assert PROVIDER in text
    assert IMAGE not in text  # the image gave way
    assert max(len(line) for line in text.splitlines()) <= 80


def test_piped_nothing_is_cut_and_brackets_stay_text(monkeypatch: pytest.MonkeyPatch) -> None:
    text = _listing(monkeypatch, terminal=False, width=80)
    for value in ROW:
        assert value in text  # "[nightly]" printed as is, not taken for a style
    assert len(text.splitlines()) == 5  # top, header, rule, one row, bottom: nothing wrapped


def test_a_zero_is_a_value_not_a_missing_one() -> None:
    from decimal import Decimal

    assert output.or_dash(Decimal("0.000000")) == "0.000000"  # a run too short to cost anything
    assert output.or_dash(None) == "-"
