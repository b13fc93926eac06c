"""`gpumarket provider show ID` prints a provider's public record; `offers search` filters by
score and shows a newcomer as new."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from typer.testing import CliRunner

from gpumarket.cli.main import typer_app
from gpumarket.cli.offers import parse_query
from gpumarket.protocol import ProviderProfile


def _profile(score: float | None) -> ProviderProfile:
    return ProviderProfile(
        id="prv_1",
        address="0x" + "ab" * 20,
        region="eu",
        online=True,
        registered_at=datetime(2026, 11, 1, tzinfo=UTC),
        gpu_models={"RTX4090": 2},
        completed_jobs=120,
        failed_jobs=2,
        timed_out_jobs=1,
        reruns_passed=9,
        reruns_failed=1,
        disputes_lost=0,
        slashes=1,
        uptime_30d=0.93,
        newcomer=score is None,
        score=score,
        sampling_rate=0.5,
    )


def _serve(monkeypatch: pytest.MonkeyPatch, profile: ProviderProfile) -> list[str]:
    asked: list[str] = []

    class FakeClient:
        def __init__(self, url: str) -> None:
            pass

        def __enter__(self) -> FakeClient:
            return self

        def __exit__(self, *exc: object) -> None:
            pass

        def provider_profile(self, provider_id: str) -> ProviderProfile:
            asked.append(provider_id)
            return profile

    monkeypatch.setattr("gpumarket.sdk.Client", FakeClient)
    return asked


def test_show_prints_every_counter_behind_the_score(monkeypatch: pytest.MonkeyPatch) -> None:
    asked = _serve(monkeypatch, _profile(0.412))
    result = CliRunner().invoke(typer_app, ["provider", "show", "prv_1"])
    assert result.exit_code == 0, result.output
    assert asked == ["prv_1"]
    out = " ".join(result.output.split())
    for text in (
        "2x RTX4090",
        "score 0.412",
        "uptime over 30 days 93.0%",
        "p = 0.500",
        "120 completed, 2 failed, 1 timed out",
        "9 re-runs passed, 1 failed, 0 disputes lost, 1 slashes",
    ):
        assert text in out, text


def test_show_says_new_for_a_newcomer_and_prints_json(monkeypatch: pytest.MonkeyPatch) -> None:
    _serve(monkeypatch, _profile(None))
    text = CliRunner().invoke(typer_app, ["provider", "show", "prv_1"]).output
    assert "new (no score yet)" in text
    data = json.loads(CliRunner().invoke(typer_app, ["provider", "show", "prv_1", "--json"]).output)
    assert data["score"] is None and data["newcomer"] is True and data["slashes"] == 1


def test_search_takes_a_minimum_score() -> None:
    assert parse_query(["score>=0.8"]).min_score == 0.8
