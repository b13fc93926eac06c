"""bench/economics.py at small scale: the payoff condition and the detection targets hold at
the market's defaults, honest providers are never slashed, cheating earns less than honesty."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture(scope="module")
def econ() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "bench_economics", ROOT / "bench" / "economics.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["bench_economics"] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def params(econ: ModuleType) -> Any:
    return econ.load_params()


@pytest.fixture(scope="module")
def tallies(econ: ModuleType, params: Any) -> dict[str, Any]:
    rates = econ.Rates(params.settings)
    result: dict[str, Any] = econ.run_strategies(
        params, rates, jobs=300, trials=4, seed=1, cost_ratio=0.7, lo=0.01, hi=100.0
    )
    return result


def test_the_defaults_meet_the_payoff_condition(econ: ModuleType, params: Any) -> None:
    p = params.p_min
    # p (1 - fee + m) >= 1: with d = 1, V = 0 and C <= A a cheat never pays
    assert p * (1 - params.fee + params.stake_multiple) >= 1
    assert params.stake_multiple >= econ.required_multiple(params, p)
    assert econ.cheat_gain(params, p, cost_ratio=1.0) < 0
    assert econ.required_rate(0.10, 2_000) == pytest.approx(0.0461, abs=1e-4)
    assert econ.required_rate(0.01, 20_000) == pytest.approx(0.0461, abs=1e-4)
    assert p >= econ.required_rate(0.10, 2_000)
    assert p >= econ.required_rate(0.01, 20_000)
    assert params.premium_bps > 0


def test_cheaters_are_caught_before_the_targets(econ: ModuleType, params: Any) -> None:
    rates = econ.Rates(params.settings)
    for cheat, jobs in econ.DETECTION_TARGETS:
        found = econ.detection(rates, cheat, 1.0, [jobs])
        assert found.caught_by[jobs] >= econ.CERTAINTY
        assert found.median < found.tail <= jobs
    # the more a provider cheats, the sooner it is caught
    assert econ.detection(rates, 1.0, 1.0).tail < econ.detection(rates, 0.5, 1.0).tail


def test_honest_providers_are_never_slashed(tallies: dict[str, Any]) -> None:
    for name in ("honest", "honest, framed by a liar", "honest, non-deterministic"):
        assert tallies[name].slashes == 0
        assert tallies[name].jobs == 1_200
    assert tallies["honest, framed by a liar"].liar_lies > 0


def test_honest_profit_is_the_margin(params: Any, tallies: dict[str, Any]) -> None:
    honest = tallies["honest"]
    assert honest.profit == pytest.approx((1 - params.fee - 0.7) * honest.amount)
    assert honest.realised == pytest.approx(honest.profit, rel=1e-6)


def test_cheating_earns_less_than_honesty(econ: ModuleType, tallies: dict[str, Any]) -> None:
    honest = tallies["honest"]
    for name in ("cheats on 100 %", "lazy (never runs)", "colluding pair, 10 providers"):
        cheater = tallies[name]
        assert cheater.per_job(cheater.profit) < honest.per_job(honest.profit)
        assert cheater.per_job(cheater.profit_rank) < honest.per_job(honest.profit_rank)
        assert cheater.slashes > 0
        assert cheater.per_job(cheater.intake) > cheater.per_job(cheater.spend)


def test_colluding_pair_detection_falls_with_the_partners_share(
    econ: ModuleType, params: Any
) -> None:
    small = econ.Strategy("pair", cheat=1.0, market=10).caught_if_sampled
    large = econ.Strategy("pair", cheat=1.0, market=100).caught_if_sampled
    assert small < large < 1
    assert small == pytest.approx((8 / 9) * (7 / 8))
    share = econ.pair_break_even_share(params, params.p_min, 0.7)
    assert 0 < share < 1
    # just below the break-even share a pair's cheat still loses, just above it pays
    for s, pays in ((share * 0.9, False), (share * 1.1, True)):
        caught = params.p_min * (1 - s) ** 2
        confirmed = params.p_min * (1 - (1 - s) ** 2)
        gain = 0.7 + confirmed - caught * (1 - params.fee + params.stake_multiple)
        assert (gain > 0) is pays


def test_quick_run_prints_every_target(
    econ: ModuleType, capsys: pytest.CaptureFixture[str]
) -> None:
    assert econ.main(["--quick", "--jobs", "100", "--trials", "2"]) == 0
    out = capsys.readouterr().out
    for heading in ("## Profit per job", "## Jobs until first caught", "## Market", "## Targets"):
        assert heading in out
    assert "Gensyn" in out
    assert out.count("PASS") + out.count("FAIL") >= 6
