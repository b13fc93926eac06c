"""The offer-search query language: each key takes its one operator, and what an unquoted
term leaves behind in a shell gets a hint, not a puzzle."""

from __future__ import annotations

from decimal import Decimal

import pytest

from gpumarket.cli.offers import parse_query
from gpumarket.errors import InvalidRequest


def test_terms_become_the_spec_a_dry_run_checks() -> None:
    spec = parse_query(["gpu=A100,H100", "vram>=40", "price<=2.5", "region=eu", "count>=2"])
    assert spec.max_price_per_hour == Decimal("2.5") and spec.region == "eu"
    gpu = spec.resources.gpu
    assert gpu is not None and gpu.models == ["A100", "H100"] and gpu.count == 2


def test_a_key_takes_only_its_own_operator() -> None:
    with pytest.raises(InvalidRequest, match=r"vram takes >=, e.g. vram>=40"):
        parse_query(["vram<=40"])


def test_a_term_cut_short_by_the_shell_says_to_quote_it() -> None:
    # `gpumarket offers search vram>=40` in bash runs `offers search vram` with stdout in "=40"
    with pytest.raises(InvalidRequest, match=r"quote terms with > or <.*'vram>=40'"):
        parse_query(["vram"])
    with pytest.raises(InvalidRequest, match=r"is not KEY OP VALUE"):
        parse_query(["fast"])
