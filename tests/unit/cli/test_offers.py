"""The offer-search query language: each key takes its one operator, and what an unquoted
term leaves behind in a shell gets a hint, not a puzzle. The table shows what matching ranks
by, and an empty book says so."""

from __future__ import annotations

from decimal import Decimal

import pytest
from typer.testing import CliRunner

from gpumarket.cli.main import typer_app
from gpumarket.cli.offers import parse_query
from gpumarket.errors import InvalidRequest
from gpumarket.protocol import MatchExplanation, Offer, ProviderVerdict


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


def _book(monkeypatch: pytest.MonkeyPatch, result: MatchExplanation, book: list[Offer]) -> None:
    class FakeClient:
        def __init__(self, url: str) -> None:
            pass

        def __enter__(self) -> FakeClient:
            return self

        def __exit__(self, *exc: object) -> None:
            pass

        def match(self, spec: object) -> MatchExplanation:
            return result

        def offers(self, limit: int = 100) -> list[Offer]:
            return book

    monkeypatch.setattr("gpumarket.sdk.Client", FakeClient)


def test_search_shows_what_matching_ranks_by(monkeypatch: pytest.MonkeyPatch) -> None:
    verdict = ProviderVerdict(
        provider_id="prv_1", gpu_model="A100", region="eu", price_per_hour="2.4", matches=True
    )
    offer = Offer(
        provider_id="prv_1",
        gpu_model="A100",
        vram_mb=81920,
        tflops=19.5,
        total_count=4,
        free_count=3,
        price_per_hour="2.4",
        region="eu",
        reputation=0.97,
        score=0.97,
    )
    result = MatchExplanation(matches=[verdict], rejections=[], providers_considered=1)
    _book(monkeypatch, result, [offer])
    output = CliRunner().invoke(typer_app, ["offers", "search", "gpu=A100"]).output
    for heading in ("count", "VRAM", "TFLOPS", "price/TFLOPS-h", "score"):
        assert heading in output
    row = next(line for line in output.splitlines() if "prv_1" in line)
    for cell in ("3/4", "80 GB", "19.5", "2.4", "0.1231", "0.97", "eu"):
        assert cell in row


def test_an_empty_book_says_so(monkeypatch: pytest.MonkeyPatch) -> None:
    _book(monkeypatch, MatchExplanation(matches=[], rejections=[], providers_considered=0), [])
    result = CliRunner().invoke(typer_app, ["offers", "search"])
    assert result.exit_code == 0
    assert result.output.strip() == "the offer book is empty: no provider is online now"
